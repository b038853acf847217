//! reaction: the reaction engine (docs/reaction.md). Reader agents report
//! log lines that match the patterns of `[reaction]`; rules turn them into
//! incidents; an incident starts a flow of `command` tasks (run by an
//! executor agent on a named host), `if` decisions on the preceding
//! command's (or service's) result, `mail` tasks and `service` tasks (an
//! integrator service invoked through the control socket), at once or after an operator's
//! approval. The agents call the engine's own HTTPS listener with signed
//! requests (`api`); the same binary is the agent (`agent`).
//!
//! It opens only its own database, `<state>/reaction.db`, and reads the
//! node's certificate pair in `<state>/tls/`; mail goes through the node's
//! loopback SMTP listener.

mod agent;
mod api;
mod control;
mod db;
mod db_timers;
mod engine;
#[cfg(test)]
mod engine_tests;
mod logic;
mod operator;
mod reader;
mod schedule;
mod seal;
mod service;
mod smtp;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alpharen_store::View;
use tokio::signal::unix::{SignalKind, signal};

pub use agent::{AgentArgs, run_agent};

use crate::engine::{Node, Settings};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("from the supervisor: {0}")]
    Rpc(#[from] alpharen_rpc::RpcError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] db::DbError),
}

async fn load(state_dir: &Path, dev: bool) -> Result<Settings, Error> {
    let view: View = alpharen_rpc::view::view(state_dir, "reaction").await?;
    let reaction = view.config.reaction.clone();
    let mut keys = HashMap::new();
    for a in &reaction.agents {
        match view.secret(&a.secret_name()) {
            Some(k) => {
                keys.insert(a.name.clone(), k.to_string());
            }
            None => {
                tracing::warn!(agent = %a.name, secret = %a.secret_name(), "agent has no secret; its calls are refused until it is set")
            }
        }
    }
    Ok(Settings {
        reaction,
        keys,
        smtp_port: view.config.mail.listen_port(dev),
        tz: alpharen_store::config::parse_tz(&view.config.node.timezone)
            .unwrap_or(alpharen_store::config::Zone::Fixed(0)),
        hostname: view.config.node.hostname,
    })
}

/// Where the agent API listens: nowhere while no agent is configured (so
/// nodes that do not use the engine keep the port free).
fn listen_addr(s: &Settings, dev: bool) -> Option<SocketAddr> {
    if s.reaction.agents.is_empty() {
        return None;
    }
    let ip = match s.reaction.address.as_deref().map(str::parse) {
        Some(Ok(ip)) => ip,
        // Validation refuses a bad address; never listen wider than asked.
        Some(Err(_)) => return None,
        None if dev => IpAddr::V4(Ipv4Addr::LOCALHOST),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    Some(SocketAddr::new(ip, s.reaction.port))
}

/// The agent API's listener, moved when the address or port changes.
#[derive(Default)]
struct Listener {
    at: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
}

impl Listener {
    async fn reconcile(&mut self, node: &Arc<Node>, want: Option<SocketAddr>) {
        if self.at.as_ref().map(|(a, _)| *a) == want {
            return;
        }
        if let Some((addr, task)) = self.at.take() {
            task.abort();
            tracing::info!(%addr, "agent API closed");
        }
        let Some(addr) = want else { return };
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "agent API listening");
                self.at = Some((addr, tokio::spawn(api::serve(node.clone(), l))));
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen for agents");
                alpharen_rpc::view::alert(
                    &node.state_dir,
                    "reaction",
                    &format!("the reaction engine cannot listen for agents on {addr}: {e}"),
                )
                .await;
            }
        }
    }
}

/// `alpharen serve reaction`.
pub fn serve(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(state_dir.to_path_buf(), dev))
}

async fn run(state_dir: PathBuf, dev: bool) -> Result<(), Error> {
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let settings = load(&state_dir, dev).await?;
    let addr = listen_addr(&settings, dev);
    let db = db::Db::open(&state_dir)?;
    let node = Arc::new(Node::new(state_dir.clone(), db, settings)?);
    let mut listener = Listener::default();
    listener.reconcile(&node, addr).await;
    alpharen_rpc::spawn_service(&state_dir, "reaction", control::Rpc { node: node.clone() })?;
    tracing::info!(dev, "reaction service started");
    alpharen_rpc::view::ready(&state_dir, "reaction").await;
    node.resume().await?;
    tokio::spawn(schedule::run(node.clone()));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the reaction section");
                match load(&state_dir, dev).await {
                    Ok(s) => {
                        let addr = listen_addr(&s, dev);
                        *node.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(s);
                        listener.reconcile(&node, addr).await;
                        node.timers.notify_one();
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot reload config; keeping the current one"),
                }
            }
        }
    }
    tracing::info!("reaction service stopped");
    Ok(())
}
