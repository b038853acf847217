//! ARCLST: this node as a member of a cluster of nodes on NATS JetStream.
//! `alpharen serve cluster` runs nats-server (2.15, Debian forky's) as its child with a
//! configuration rendered from `[cluster]` and the `cluster.*` secrets
//! ([`conf`]), puts this member's heartbeat into the membership bucket
//! ([`members`]), and answers `cluster.*` on its socket ([`control`]):
//! init (a new cluster CA and join secret), join (the exchange of
//! [`join`] with a member, authenticated by the [`token`]), admit (the
//! other side of it, reached through the web API), status and leave.
//!
//! It never touches another service's state: the configuration and
//! secrets it writes go through the supervisor's `config.apply`.

pub mod bridge;
mod checks;
pub mod claims;
mod conf;
pub mod configlog;
mod control;
pub mod deploys;
mod join;
pub mod kv;
pub mod lease;
pub mod link;
mod linkctl;
pub mod locks;
pub mod members;
mod nats;
pub mod packages;
mod pki;
pub mod pubsub;
pub mod singletons;
mod token;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use alpharen_store::View;

pub use token::JoinToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificates: {0}")]
    Pki(String),
    #[error("join token: {0}")]
    Token(String),
    #[error("{0}")]
    Join(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Rpc(#[from] alpharen_rpc::RpcError),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The secrets of a member, by their names in the store.
pub(crate) mod secret {
    pub const CA_CERT: &str = "cluster.ca_cert";
    pub const CA_KEY: &str = "cluster.ca_key";
    pub const NODE_CERT: &str = "cluster.node_cert";
    pub const NODE_KEY: &str = "cluster.node_key";
    pub const JOIN_SECRET: &str = "cluster.join_secret";
    pub const CLIENT_PASSWORD: &str = "cluster.client_password";
}

/// Shared by the control socket, nats-server's keeper and the heartbeat.
pub(crate) struct Node {
    pub state_dir: PathBuf,
    pub dev: bool,
    view: RwLock<View>,
    pub(crate) running: tokio::sync::Mutex<Option<nats::Running>>,
    pub nats: nats::Shared,
    /// Set by `cluster leave` while it drains; cleared when the node is
    /// out of the cluster.
    draining: std::sync::atomic::AtomicBool,
}

impl Node {
    pub fn view(&self) -> View {
        match self.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_view(&self, v: View) {
        match self.view.write() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_draining(&self, on: bool) {
        self.draining
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn dir(&self) -> PathBuf {
        self.state_dir.join("cluster")
    }

    /// The address other members reach this node at: `[cluster]
    /// advertise`, else the first global address (127.0.0.1 in
    /// development).
    pub fn advertise(&self, view: &View) -> Option<String> {
        if let Some(a) = &view.config.cluster.advertise {
            return Some(a.clone());
        }
        if self.dev {
            return Some("127.0.0.1".into());
        }
        alpharen_store::host::global_addresses(None)
            .first()
            .map(|ip| ip.to_string())
    }

    /// Fetches the view again and brings nats-server in line with it.
    pub async fn reload(self: &Arc<Self>) -> Result<(), Error> {
        let v = alpharen_rpc::view::view(&self.state_dir, "cluster").await?;
        self.set_view(v);
        self.apply().await;
        Ok(())
    }

    /// Starts, restarts or stops nats-server to match the view.
    async fn apply(self: &Arc<Self>) {
        let view = self.view();
        let mut running = self.running.lock().await;
        match nats::desired(self, &view) {
            Ok(None) => {
                if let Some(old) = running.take() {
                    old.stop().await;
                    tracing::info!("not in a cluster: nats-server stopped");
                }
                self.nats.clear();
                self.set_draining(false);
            }
            Ok(Some(want)) => {
                if running.as_ref().is_some_and(|r| r.same(&want)) {
                    return;
                }
                if let Some(r) = running.as_mut().filter(|r| r.routes_only(&want)) {
                    match r.reload(self, want.clone()) {
                        Ok(()) => {
                            tracing::info!("nats-server reloaded with the cluster's new routes");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot reload nats-server; restarting it")
                        }
                    }
                }
                // The old server goes first: the new one takes its ports.
                if let Some(old) = running.take() {
                    old.stop().await;
                }
                match nats::start(self, want) {
                    Ok(r) => *running = Some(r),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start nats-server");
                        self.nats.set_state(format!("not started: {e}"));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the cluster configuration cannot be used");
                self.nats.set_state(format!("not started: {e}"));
            }
        }
    }
}

/// `alpharen serve cluster`: runs until SIGTERM.
pub fn serve(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("tokio runtime"))?;
    rt.block_on(run(state_dir, dev))
}

async fn run(state_dir: &Path, dev: bool) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(io_err("SIGHUP handler"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;
    let view = alpharen_rpc::view::view(state_dir, "cluster").await?;
    let node = Arc::new(Node {
        state_dir: state_dir.to_path_buf(),
        dev,
        view: RwLock::new(view),
        running: tokio::sync::Mutex::new(None),
        nats: nats::Shared::default(),
        draining: std::sync::atomic::AtomicBool::new(false),
    });
    node.apply().await;
    let control =
        alpharen_rpc::spawn_service(state_dir, "cluster", control::Rpc { node: node.clone() })
            .map_err(io_err("the cluster socket"))?;
    let cfg = node.view().config.cluster;
    tracing::info!(
        cluster = if cfg.enabled() {
            cfg.name.as_str()
        } else {
            "-"
        },
        "cluster service ready"
    );
    alpharen_rpc::view::ready(state_dir, "cluster").await;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Err(e) = node.reload().await {
                    tracing::error!(error = %e, "reload failed; keeping the previous configuration");
                }
            }
        }
    }
    if let Some(r) = node.running.lock().await.take() {
        r.stop().await;
    }
    control.abort();
    let _ = std::fs::remove_file(alpharen_rpc::service_socket(state_dir, "cluster"));
    tracing::info!("cluster service stopped");
    Ok(())
}
