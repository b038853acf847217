//! vpn [status] | vpn peer add|del|enable|disable NAME: the vpn service's
//! `vpn.*` methods, forwarded by the supervisor to `<state>/run/vpn.sock`.

use std::path::PathBuf;

use crate::client::NodeClient;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::CtlError;
use crate::output::{Output, table, text};

#[derive(Debug, Args)]
pub struct VpnArgs {
    #[command(subcommand)]
    cmd: Option<VpnCmd>,
}

#[derive(Debug, Subcommand)]
enum VpnCmd {
    /// Interface, key and per-peer handshake, traffic and endpoint (the default).
    Status,
    /// Road-warrior and site peers.
    #[command(subcommand)]
    Peer(PeerCmd),
}

#[derive(Debug, Subcommand)]
enum PeerCmd {
    /// Create a road-warrior peer: address from the pool, fresh keys; prints
    /// its wg-quick config and a QR code (the private key is shown only now).
    Add {
        name: String,
        /// What the client routes through the tunnel (default: the pool and
        /// the node's tunnel networks). Repeat or separate with commas.
        #[arg(long = "allowed-ips", value_delimiter = ',')]
        allowed_ips: Vec<String>,
        /// Write the wg-quick config to this file (mode 0600) instead of
        /// printing it.
        #[arg(long)]
        conf: Option<PathBuf>,
        /// Write the QR code as SVG to this file.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Do not print the QR code.
        #[arg(long)]
        no_qr: bool,
    },
    /// Remove a peer; its tunnel stops at once.
    Del { name: String },
    /// Let a disabled peer connect again.
    Enable { name: String },
    /// Keep a peer (its key and address) but refuse its tunnel at once.
    Disable { name: String },
}

fn ago(v: &Value) -> String {
    match v.as_u64() {
        None => "never".into(),
        Some(s) if s < 120 => format!("{s}s ago"),
        Some(s) if s < 7200 => format!("{}m ago", s / 60),
        Some(s) => format!("{}h ago", s / 3600),
    }
}

fn write_private(path: &PathBuf, content: &str) -> Result<(), CtlError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| CtlError::Io(format!("{}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(content.as_bytes()).map_err(err)
}

fn set_enabled(
    client: &mut NodeClient,
    out: &Output,
    name: &str,
    enabled: bool,
) -> Result<(), CtlError> {
    let v = client.call("vpn.peer_enable", json!({"name": name, "enabled": enabled}))?;
    let state = if enabled { "enabled" } else { "disabled" };
    out.show(&v, |v| println!("peer {} {state}", text(&v["name"])));
    Ok(())
}

impl VpnArgs {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self.cmd.unwrap_or(VpnCmd::Status) {
            VpnCmd::Status => {
                let v = client.call("vpn.status", json!({}))?;
                out.show(&v, |v| {
                    let state = match (v["enabled"].as_bool(), v["running"].as_bool()) {
                        (Some(true), Some(true)) => "up",
                        (Some(true), _) => "enabled but not running",
                        _ => "disabled",
                    };
                    println!("vpn        {state} ({})", text(&v["backend"]));
                    println!(
                        "interface  {} port {}",
                        text(&v["interface"]),
                        text(&v["listen_port"])
                    );
                    println!("public key {}", text(&v["public_key"]));
                    if !v["error"].is_null() {
                        println!("error      {}", text(&v["error"]));
                    }
                    let rows = v["peers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            let ips: Vec<String> = p["allowed_ips"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(text)
                                .collect();
                            let mut name = text(&p["name"]);
                            if p["enabled"].as_bool() == Some(false) {
                                name.push_str(" (disabled)");
                            }
                            vec![
                                name,
                                ips.join(","),
                                text(&p["endpoint"]),
                                ago(&p["latest_handshake_secs_ago"]),
                                text(&p["rx_bytes"]),
                                text(&p["tx_bytes"]),
                            ]
                        })
                        .collect();
                    table(
                        &["PEER", "ALLOWED IPS", "ENDPOINT", "HANDSHAKE", "RX", "TX"],
                        rows,
                    );
                });
            }
            VpnCmd::Peer(PeerCmd::Add {
                name,
                allowed_ips,
                conf,
                svg,
                no_qr,
            }) => {
                let v = client.call(
                    "vpn.peer_add",
                    json!({"name": name, "allowed_ips": allowed_ips}),
                )?;
                if let Some(path) = &conf {
                    write_private(path, &text(&v["config"]))?;
                }
                if let Some(path) = &svg {
                    write_private(path, &text(&v["qr_svg"]))?;
                }
                out.show(&v, |v| {
                    if conf.is_none() {
                        print!("{}", text(&v["config"]));
                    }
                    if !no_qr {
                        println!("\n{}", text(&v["qr"]));
                    }
                    eprintln!("peer {} added with address {}", text(&v["name"]), text(&v["address"]));
                    if v["enabled"].as_bool() != Some(true) {
                        eprintln!("note: the vpn is disabled; set vpn.enabled = true for the peer to connect");
                    }
                });
            }
            VpnCmd::Peer(PeerCmd::Del { name }) => {
                let v = client.call("vpn.peer_del", json!({"name": name}))?;
                out.show(&v, |v| println!("peer {} removed", text(&v["name"])));
            }
            VpnCmd::Peer(PeerCmd::Enable { name }) => set_enabled(client, out, &name, true)?,
            VpnCmd::Peer(PeerCmd::Disable { name }) => set_enabled(client, out, &name, false)?,
        }
        Ok(())
    }
}
