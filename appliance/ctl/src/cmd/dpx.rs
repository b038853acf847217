//! dpx [status] | dpx records: the dpx service's `dpx.*` methods, forwarded
//! by the supervisor to `<state>/run/dpx.sock`.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::CtlError;
use crate::client::NodeClient;
use crate::output::{Output, table, text};

#[derive(Debug, Args)]
pub struct DpxArgs {
    #[command(subcommand)]
    cmd: Option<DpxCmd>,
}

#[derive(Debug, Subcommand)]
enum DpxCmd {
    /// Zone, port, SOA serial, record counts, TSIG keys, answers by type
    /// and response code since the service started, and the dyndns
    /// client's state (the default).
    Status,
    /// Every record served besides the SOA, configured and dynamic.
    Records,
}

impl DpxArgs {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self.cmd.unwrap_or(DpxCmd::Status) {
            DpxCmd::Status => {
                let v = client.call("dpx.status", json!({}))?;
                out.show(&v, |v| {
                    let c = &v["client"];
                    if !c.is_null() {
                        println!(
                            "dyndns    {} {} ({}{})",
                            text(&c["hostname"]),
                            text(&c["address"]),
                            text(&c["state"]),
                            [("answer", &c["last_answer"]), ("error", &c["last_error"])]
                                .iter()
                                .filter(|(_, x)| !x.is_null())
                                .map(|(k, x)| format!(", {k}: {}", text(x)))
                                .collect::<String>()
                        );
                    }
                    if v["zone"].is_null() {
                        println!("no zone (set dpx.zone to serve one)");
                        return;
                    }
                    println!("zone      {}", text(&v["zone"]));
                    println!("port      {}", text(&v["port"]));
                    println!("serial    {}", text(&v["serial"]));
                    println!(
                        "records   {} configured, {} dynamic",
                        text(&v["static_records"]),
                        text(&v["dynamic_records"])
                    );
                    let keys: Vec<String> = v["tsig_keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    println!(
                        "tsig keys {}",
                        if keys.is_empty() {
                            "-".into()
                        } else {
                            keys.join(", ")
                        }
                    );
                    let q = &v["queries"];
                    println!(
                        "answers   {} since start; by type: {}; by code: {}",
                        text(&q["total"]),
                        counts(&q["by_type"]),
                        counts(&q["by_rcode"])
                    );
                });
            }
            DpxCmd::Records => {
                let v = client.call("dpx.records", json!({}))?;
                out.show(&v, |v| {
                    let rows = v["records"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| {
                            ["name", "type", "ttl", "data", "source"]
                                .iter()
                                .map(|k| text(&r[*k]))
                                .collect()
                        })
                        .collect();
                    table(&["NAME", "TYPE", "TTL", "DATA", "SOURCE"], rows);
                });
            }
        }
        Ok(())
    }
}

/// `{"A": 3, "MX": 1}` as `A 3, MX 1`; `-` when empty.
fn counts(v: &serde_json::Value) -> String {
    let parts: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, n)| format!("{k} {}", text(n)))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}
