//! ARVPN: the node's WireGuard service. It reads the `[vpn]` section and
//! the `vpn.private_key` secret, runs the tunnel through a [`backend`]
//! (boringtun in userspace; the kernel module is not available on the
//! machines we build on), and keeps the interface's addresses and the
//! peers' routes in line with rtnetlink. A reload applies only the
//! difference ([`plan::diff`]), so untouched peers keep their sessions.
//!
//! It never writes configuration itself: road-warrior peers created by
//! `vpn.peer_add` are written by asking the supervisor (`config.set` on
//! `<state>/run/control.sock`), the only config writer. It touches no
//! interface but its own.

pub mod backend;
mod control;
mod fast;
pub mod keys;
pub mod netlink;
pub mod plan;
pub mod pool;
pub mod wgquick;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alpharen_store::View;
use alpharen_store::config::{Vpn, decode_key, parse_cidr};
use tokio::sync::Mutex;

use crate::backend::{Backend, BackendError};
use crate::fast::FastPath;
use crate::keys::Key;
use crate::netlink::{Net, NetError};
use crate::plan::{Desired, PeerSpec, diff};

/// Secret holding the node's base64 private key.
pub const PRIVATE_KEY_SECRET: &str = "vpn.private_key";
/// Tunnel MTU: 1500 minus the WireGuard/UDP/IPv6 overhead, as wg-quick.
pub const MTU: u32 = 1420;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("from the supervisor: {0}")]
    View(#[from] alpharen_rpc::RpcError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(
        "UDP port {port} is already in use on this node; choose another vpn.listen_port ({source})"
    )]
    PortInUse { port: u16, source: std::io::Error },
    #[error("{0}")]
    Config(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// This service's view of the store.
pub(crate) async fn view(state_dir: &Path) -> Result<View, Error> {
    Ok(alpharen_rpc::view::view(state_dir, "vpn").await?)
}

/// The node's key pair from the view; generated and kept by the
/// supervisor on first need.
pub(crate) async fn node_key(state_dir: &Path, view: &View) -> Result<(Key, Key), Error> {
    let text = match view.secret(PRIVATE_KEY_SECRET) {
        Some(t) => t.to_string(),
        None => {
            let (secret, public) = keys::generate();
            let kept = alpharen_rpc::view::keep_secret(
                state_dir,
                "vpn",
                PRIVATE_KEY_SECRET,
                &keys::to_base64(&secret),
            )
            .await?;
            tracing::info!(public_key = %keys::to_base64(&public), "generated the node's WireGuard key");
            kept
        }
    };
    let secret = keys::from_base64(&text).ok_or_else(|| {
        Error::Config(format!(
            "secret {PRIVATE_KEY_SECRET} is not a WireGuard key; remove it to have a new one generated"
        ))
    })?;
    Ok((secret, keys::public_of(&secret)))
}

/// Resolves `host:port`; site-to-site peers may name hosts.
async fn resolve(endpoint: &str) -> Option<SocketAddr> {
    let (host, port) = alpharen_store::config::split_endpoint(endpoint)?;
    tokio::net::lookup_host((host, port)).await.ok()?.next()
}

/// Reads the section and secrets into the state the device should have;
/// `None` when the VPN is disabled.
pub(crate) async fn load(state_dir: &Path) -> Result<(Vpn, Option<Desired>), Error> {
    let view = view(state_dir).await?;
    let vpn = view.config.vpn.clone();
    if !vpn.enabled {
        return Ok((vpn, None));
    }
    let (private_key, _) = node_key(state_dir, &view).await?;
    let mut peers = Vec::new();
    for (i, p) in vpn.peers.iter().enumerate() {
        if !p.enabled {
            continue;
        }
        let at = format!("vpn.peers[{i}]");
        let public_key = decode_key(&p.public_key)
            .ok_or_else(|| Error::Config(format!("{at}.public_key: not a WireGuard key")))?;
        let preshared_key = match &p.preshared_key_secret {
            Some(name) => {
                let text = view.secret(name).ok_or_else(|| {
                    Error::Config(format!(
                        "{at}.preshared_key_secret: no secret named {name:?}"
                    ))
                })?;
                Some(decode_key(text).ok_or_else(|| {
                    Error::Config(format!(
                        "{at}.preshared_key_secret: secret {name:?} is not a WireGuard key"
                    ))
                })?)
            }
            None => None,
        };
        let endpoint = match &p.endpoint {
            Some(e) => {
                let r = resolve(e).await;
                if r.is_none() {
                    tracing::warn!(peer = %p.name, endpoint = %e, "cannot resolve endpoint; waiting for the peer to connect");
                }
                r
            }
            None => None,
        };
        peers.push(PeerSpec {
            name: p.name.clone(),
            public_key,
            preshared_key,
            endpoint,
            allowed_ips: p.allowed_ips.iter().filter_map(|s| parse_cidr(s)).collect(),
            keepalive: p.persistent_keepalive,
        });
    }
    let desired = Desired {
        interface: vpn.interface.clone(),
        private_key,
        listen_port: vpn.listen_port,
        addresses: vpn.addresses.iter().filter_map(|s| parse_cidr(s)).collect(),
        peers,
    };
    Ok((vpn, Some(desired)))
}

/// Refuses a port someone else holds before anything is changed.
fn check_port(port: u16) -> Result<(), Error> {
    UdpSocket::bind((IpAddr::from([0, 0, 0, 0]), port))
        .map(drop)
        .map_err(|source| Error::PortInUse { port, source })
}

/// The running tunnel and what has been applied to it.
pub(crate) struct Tunnel {
    backend: Box<dyn Backend>,
    applied: Desired,
    ifindex: u32,
}

pub(crate) struct Shared {
    pub state_dir: PathBuf,
    pub tunnel: Mutex<Option<Tunnel>>,
    pub vpn: std::sync::Mutex<Vpn>,
    pub last_error: std::sync::Mutex<Option<String>>,
    net: Net,
}

impl Shared {
    /// Re-reads the section and brings the device in line. On a refusal
    /// (port in use, bad secret) the running tunnel is left as it was.
    pub async fn reconcile(&self) -> Result<(), Error> {
        let result = self.reconcile_inner().await;
        let msg = result.as_ref().err().map(|e| e.to_string());
        if let Some(m) = &msg {
            tracing::error!(error = %m, "vpn configuration not applied");
        }
        if let Ok(mut g) = self.last_error.lock() {
            *g = msg;
        }
        result
    }

    async fn reconcile_inner(&self) -> Result<(), Error> {
        let (vpn, desired) = load(&self.state_dir).await?;
        if let Ok(mut g) = self.vpn.lock() {
            *g = vpn;
        }
        let mut guard = self.tunnel.lock().await;
        let Some(desired) = desired else {
            if guard.take().is_some() {
                tracing::info!("vpn disabled: tunnel removed");
            }
            return Ok(());
        };
        let fresh = match guard.as_ref() {
            Some(t) => t.applied.interface != desired.interface,
            None => true,
        };
        if fresh {
            if guard.is_none()
                || guard
                    .as_ref()
                    .is_some_and(|t| t.applied.listen_port != desired.listen_port)
            {
                check_port(desired.listen_port)?;
            }
            // The old interface (if renamed) goes away with its handle.
            *guard = None;
            let backend = FastPath::create(&desired.interface)?;
            let ifindex = self.net.link_index(&desired.interface).await?;
            self.net.set_up(ifindex, MTU).await?;
            let mut t = Tunnel {
                backend: Box::new(backend),
                applied: desired.clone(),
                ifindex,
            };
            apply(&self.net, &mut t, None, &desired).await?;
            tracing::info!(interface = %desired.interface, port = desired.listen_port, peers = desired.peers.len(), backend = t.backend.kind(), "tunnel up");
            *guard = Some(t);
            return Ok(());
        }
        let Some(t) = guard.as_mut() else {
            return Ok(());
        };
        if t.applied.listen_port != desired.listen_port {
            check_port(desired.listen_port)?;
        }
        let old = t.applied.clone();
        if let Err(e) = apply(&self.net, t, Some(&old), &desired).await {
            // Half-applied: start over cleanly on the next reload.
            *guard = None;
            return Err(e);
        }
        t.applied = desired;
        Ok(())
    }
}

/// Executes the difference between `old` and `new` on a tunnel.
async fn apply(
    net: &Net,
    t: &mut Tunnel,
    old: Option<&Desired>,
    new: &Desired,
) -> Result<(), Error> {
    let c = diff(old, new);
    if c.is_empty() {
        return Ok(());
    }
    t.backend
        .set_device(c.private_key.as_ref(), c.listen_port)?;
    for k in &c.remove {
        t.backend.remove_peer(k)?;
    }
    for p in &c.add {
        // Removing first is harmless for a new peer and keeps boringtun
        // from ever seeing an "update" (which it does not support).
        t.backend.remove_peer(&p.public_key)?;
        t.backend.add_peer(p)?;
    }
    for (ip, len) in &c.routes_del {
        net.del_route(t.ifindex, *ip, *len).await?;
    }
    for (ip, len) in &c.addresses_del {
        net.del_address(t.ifindex, *ip, *len).await?;
    }
    for (ip, len) in &c.addresses_add {
        net.add_address(t.ifindex, *ip, *len).await?;
    }
    for (ip, len) in &c.routes_add {
        net.add_route(t.ifindex, *ip, *len).await?;
    }
    tracing::info!(
        peers_added = c.add.len(),
        peers_removed = c.remove.len(),
        routes_added = c.routes_add.len(),
        routes_removed = c.routes_del.len(),
        "vpn reconciled"
    );
    Ok(())
}

/// `alpharen serve vpn`: runs until SIGTERM.
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
    if !backend::kernel_available() {
        tracing::debug!("no kernel WireGuard module: using boringtun's protocol core in userspace");
    }
    let shared = Arc::new(Shared {
        state_dir: state_dir.to_path_buf(),
        tunnel: Mutex::new(None),
        vpn: std::sync::Mutex::new(Vpn::default()),
        last_error: std::sync::Mutex::new(None),
        net: Net::new()?,
    });
    // A bad section must not keep the control socket from answering.
    let _ = shared.reconcile().await;
    let control = control::start(shared.clone()).await?;
    tracing::info!(dev, "vpn service ready");
    alpharen_rpc::view::ready(state_dir, "vpn").await;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if shared.reconcile().await.is_ok() {
                    tracing::info!("configuration reloaded");
                }
            }
        }
    }
    control.abort();
    let _ = std::fs::remove_file(control::socket_path(state_dir));
    // Dropping the tunnel removes the interface and its routes.
    *shared.tunnel.lock().await = None;
    tracing::info!("vpn service stopped");
    Ok(())
}
