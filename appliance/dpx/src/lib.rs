//! ARDPX: the node's authoritative DNS for the cluster zone (`dpx.zone`).
//! Records come from the configuration, from the node itself (its name,
//! its VPN address, the `_arsrv._tcp` discovery SRV) and from dynamic
//! updates: RFC 2136 signed with TSIG, and the dyndns2 updates the web
//! service forwards over `<state>/run/dpx.sock`. Dynamic records and the
//! SOA serial live in `<state>/dpx.db`, so they are served again after a
//! restart.
//! The [`client`] keeps this node's own name current at an upstream
//! dyndns2 provider.
//!
//! This crate owns the `dpx_*` tables and the DNS listener; it never writes
//! configuration and never serves HTTP (`/nic/update` and the reverse proxy
//! are the web service's, which reaches this one only through the socket).
//!
//! Layout: [`zone`] turns config into records, [`update`] is RFC 2136 as
//! pure functions, [`db`] the tables, `server` the hickory wiring, `udp`
//! the UDP listener, `answers` the answers encoded with the zone, `cache`
//! the listener's answer cache and `control` the `dpx.*` methods.

mod answers;
mod cache;
pub mod client;
mod control;
pub mod db;
#[cfg(test)]
mod equivalence;
#[cfg(any(test, feature = "fuzzing"))]
pub mod harness;
mod names;
mod server;
mod stats;
mod udp;
pub mod update;
pub mod zone;

use std::net::IpAddr;
use std::path::Path;

use alpharen_store::config::{DyndnsClient, TsigAlgorithm};
use alpharen_store::{Config, StoreError, View};
use base64::Engine;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as Alg;
use hickory_proto::rr::{Name, TSigner};

use server::{Core, Key, Zone};

/// Default DNS ports (docs/architecture.md, Ports).
pub const PORT_PROD: u16 = 53;
pub const PORT_DEV: u16 = 5353;
/// Accepted clock difference for TSIG-signed updates, in seconds.
const TSIG_FUDGE: u16 = 300;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("from the supervisor: {0}")]
    View(#[from] alpharen_rpc::RpcError),
    #[error(transparent)]
    Zone(#[from] zone::ZoneError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// What the service runs with; rebuilt on SIGHUP.
struct Settings {
    port: u16,
    /// UDP listener threads, each with its own socket.
    udp_workers: usize,
    zone: Option<Zone>,
    client: Option<ClientSettings>,
}

/// `[dpx.client]` with its password secret.
type ClientSettings = (DyndnsClient, Option<String>);

impl Settings {
    fn load(view: &View, dev: bool) -> Result<Settings, Error> {
        let config = &view.config;
        let port = config
            .dpx
            .port
            .unwrap_or(if dev { PORT_DEV } else { PORT_PROD });
        let zone = match &config.dpx.zone {
            None => None,
            Some(name) => Some(configured_zone(view, config, name, dev)?),
        };
        let client = config.dpx.client.as_ref().map(|c| {
            (
                c.clone(),
                view.secret(DyndnsClient::PASSWORD_SECRET)
                    .map(str::to_string),
            )
        });
        let udp_workers = match config.dpx.udp_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        Ok(Settings {
            port,
            udp_workers,
            zone,
            client,
        })
    }
}

fn configured_zone(view: &View, config: &Config, name: &str, dev: bool) -> Result<Zone, Error> {
    let origin = zone::origin(name)?;
    let found = if dev {
        vec![IpAddr::from([127, 0, 0, 1])]
    } else {
        alpharen_store::host::global_addresses(None)
    };
    let addresses = zone::node_addresses(config, &found);
    let mut keys = Vec::new();
    for k in &config.dpx.tsig_keys {
        let secret = k.secret_name();
        let Some(text) = view.secret(&secret) else {
            tracing::warn!(key = %k.name, secret, "TSIG key has no secret; updates with it are refused");
            continue;
        };
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text.trim()) else {
            tracing::warn!(key = %k.name, secret, "TSIG secret is not base64; updates with it are refused");
            continue;
        };
        let alg = match k.algorithm {
            TsigAlgorithm::HmacSha256 => Alg::HmacSha256,
            TsigAlgorithm::HmacSha512 => Alg::HmacSha512,
        };
        let key_err = |e: &dyn std::fmt::Display| zone::ZoneError {
            what: format!("TSIG key {}", k.name),
            message: e.to_string(),
        };
        let key_name = Name::from_ascii(format!("{}.", k.name.trim_end_matches('.')))
            .map_err(|e| key_err(&e))?;
        let signer = TSigner::new(bytes, alg, key_name, TSIG_FUDGE).map_err(|e| key_err(&e))?;
        keys.push(Key {
            signer,
            policy: update::Policy::new(&k.names, &k.types, &origin)?,
        });
    }
    Ok(Zone {
        primary: zone::node_name(config, &origin)?,
        statics: zone::static_records(config, &origin, &addresses)?,
        origin,
        dynamic: Vec::new(),
        serial: 0,
        keys,
    })
}

/// `alpharen serve dpx`: runs until SIGTERM.
pub fn serve(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("tokio runtime"))?;
    rt.block_on(run(state_dir, dev))
}

async fn view(state_dir: &Path) -> Result<View, Error> {
    Ok(alpharen_rpc::view::view(state_dir, "dpx").await?)
}

async fn run(state_dir: &Path, dev: bool) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let settings = Settings::load(&view(state_dir).await?, dev)?;
    let core = Core::new(alpharen_store::open_service_db(
        state_dir,
        "dpx",
        db::SCHEMA,
    )?);
    let mut term = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(io_err("SIGHUP handler"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;

    let (mut port, mut workers) = (settings.port, settings.udp_workers);
    let client_status = core.client_status();
    // The running client with the settings it was started with: a reload
    // that leaves them alone keeps it (and what it last registered), so an
    // unrelated config change does not resend an update the provider may
    // count as abuse.
    let spawn_client = |c: Option<ClientSettings>| {
        *client_status.lock().unwrap_or_else(|p| p.into_inner()) = None;
        c.map(|(c, password)| {
            let task = tokio::spawn(client::run(
                c.clone(),
                password.clone(),
                client_status.clone(),
            ));
            ((c, password), task)
        })
    };
    let mut dyndns_client = spawn_client(settings.client);
    // No zone, no listener: a node without `dpx.zone` does not take port 53.
    let mut server = if settings.zone.is_some() {
        Some(server::listen(&core, port, dev, workers).await?)
    } else {
        None
    };
    core.reload(settings.zone)?;
    core.set_port(port);
    let control = control::start(state_dir, core.clone())?;
    tracing::info!(port, dev, udp_workers = workers, zone = ?core.current().zone.as_ref().map(|z| z.origin.to_string()), "dpx service ready");
    alpharen_rpc::view::ready(state_dir, "dpx").await;

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let loaded = match view(state_dir).await {
                    Ok(v) => Settings::load(&v, dev),
                    Err(e) => Err(e),
                };
                let s = match loaded {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "reload failed; keeping the previous configuration");
                        continue;
                    }
                };
                if dyndns_client.as_ref().map(|(c, _)| c) != s.client.as_ref() {
                    if let Some((_, task)) = dyndns_client.take() {
                        task.abort();
                    }
                    dyndns_client = spawn_client(s.client);
                }
                let wanted = s.zone.is_some();
                if wanted && (server.is_none() || s.port != port) {
                    // Bind the new port before closing the old one, so a
                    // port in use leaves DNS answering where it was.
                    match server::listen(&core, s.port, dev, s.udp_workers).await {
                        Ok(srv) => {
                            if let Some(old) = server.replace(srv) {
                                old.shutdown().await;
                            }
                            (port, workers) = (s.port, s.udp_workers);
                            core.set_port(port);
                        }
                        Err(e) => tracing::error!(error = %e, port, "cannot bind the DNS port; keeping the old one"),
                    }
                } else if let Some(srv) = server.as_mut()
                    && s.udp_workers != workers
                {
                    match srv.set_udp_workers(&core, port, dev, s.udp_workers).await {
                        Ok(()) => workers = s.udp_workers,
                        Err(e) => tracing::error!(error = %e, port, "cannot open more UDP sockets; keeping the old ones"),
                    }
                }
                if !wanted && let Some(old) = server.take() {
                    old.shutdown().await;
                }
                match core.reload(s.zone) {
                    Ok(()) => tracing::info!(port, serial = ?core.current().zone.as_ref().map(|z| z.serial), "configuration reloaded"),
                    Err(e) => tracing::error!(error = %e, "reload failed"),
                }
            }
        }
    }
    if let Some(s) = server {
        s.shutdown().await;
    }
    if let Some((_, task)) = dyndns_client {
        task.abort();
    }
    control.abort();
    let _ = std::fs::remove_file(alpharen_rpc::service_socket(state_dir, "dpx"));
    tracing::info!("dpx service stopped");
    Ok(())
}
