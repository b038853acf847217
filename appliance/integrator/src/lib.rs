//! The integrator: Zato-style Python services behind REST and WebSocket
//! channels on the load-balancer port (:11223), with channel security, outgoing REST
//! connections, hot deploy and per-service statistics.
//!
//! User code never runs in this process: it runs in python3 worker
//! processes (`worker`) that this crate starts, feeds one request at a time
//! and replaces when they hang, crash or outgrow their memory limit. This
//! crate may touch the store (its `integrator` config section, its secrets
//! `integrator.*` (security definitions, user config, the crypto key), its own `integrator_*` tables) and its own files
//! under `<state>/integrator/`; nothing of other services.

mod amqp;
mod amqp_channel;
mod app;
pub mod clientcert;
mod control;
pub mod data;
mod deploylog;
mod door;
mod engine;
mod fernet;
mod http;
mod invoke;
mod jwt;
pub mod lb;
mod links;
mod openapi;
mod package_sets;
mod packagelog;
mod packages;
mod pickup;
mod pool;
mod project;
pub mod registry;
mod remote;
pub mod retry;
mod routes;
mod sandbox;
pub mod sched;
mod sdk;
pub mod security;
mod sql;
mod sqlha;
mod sqltext;
mod sqltls;
mod sqlvalue;
pub mod stats;
pub mod worker;
mod wsx;
mod zato;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alpharen_store::StoreError;

pub use app::App;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("from the supervisor: {0}")]
    View(#[from] alpharen_rpc::RpcError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl Error {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// Runs the integrator until SIGTERM: `alpharen serve integrator`.
pub fn serve(state_dir: &Path, dev: bool) -> Result<(), Error> {
    sandbox::hide_from_workers().map_err(Error::io("PR_SET_DUMPABLE"))?;
    // Current-thread: the heavy lifting happens in the python workers.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("tokio runtime"))?;
    rt.block_on(run(state_dir, dev))
}

async fn view(state_dir: &Path) -> Result<alpharen_store::View, Error> {
    Ok(alpharen_rpc::view::view(state_dir, "integrator").await?)
}

async fn run(state_dir: &Path, dev: bool) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut first = view(state_dir).await?;
    zato::ensure_key(state_dir, &mut first).await;
    let app = App::open(state_dir, dev, first)?;
    app.amqp_channels.reconcile(&app);
    let port = app.config().port;
    let ip = if dev { [127, 0, 0, 1] } else { [0, 0, 0, 0] };
    let addr = SocketAddr::from((ip, port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(Error::io(format!("bind {addr}")))?;
    let ctl = alpharen_rpc::spawn_service(state_dir, "integrator", control::Control(app.clone()))
        .map_err(Error::io("control socket"))?;
    use alpharen_store::config::{IntegratorTls, TlsMode};
    let tls = app.config().tls != IntegratorTls::Mode(TlsMode::Off);
    tracing::info!(listen = %addr, tls, workers = app.pool.alive(), "integrator started");

    let mut term = signal(SignalKind::terminate()).map_err(Error::io("SIGTERM handler"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(Error::io("SIGHUP handler"))?;
    let door = Arc::new(door::Door::new(state_dir));
    let http = tokio::spawn(door::serve(listener, app.clone(), door.clone()));
    let pick = tokio::spawn(pickup::watch(app.clone()));
    let health = tokio::spawn(remote::health_loop(app.clone()));
    let discovery = tokio::spawn(remote::discovery_loop(app.clone()));
    let deploy_log = tokio::spawn(app::deploy_log_loop(app.clone()));
    let links = tokio::spawn(links::link_loop(app.clone()));
    let package_log = tokio::spawn(app::package_log_loop(app.clone()));
    let follow = tokio::spawn(sqlha::follow_loop(app.clone()));
    let delivery = tokio::spawn(engine::delivery_loop(app.clone()));
    let wakes = tokio::spawn(engine::cluster_wake_loop(app.clone()));
    let scheduler = tokio::spawn(engine::scheduler_loop(app.clone()));
    let sweep = tokio::spawn(engine::sweep_loop(app.clone()));
    alpharen_rpc::view::ready(state_dir, "integrator").await;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = hup.recv() => {
                door.reload();
                match view(state_dir).await.and_then(|v| app.reload(v)) {
                    Ok(()) => {
                        app.amqp_channels.reconcile(&app);
                        tracing::info!("configuration reloaded")
                    }
                    Err(e) => tracing::warn!(error = %e, "reload failed; keeping the previous configuration"),
                }
            }
        }
    }
    tracing::info!("stopping: finishing requests in flight");
    http.abort();
    pick.abort();
    health.abort();
    deploy_log.abort();
    links.abort();
    package_log.abort();
    follow.abort();
    discovery.abort();
    // Deliveries in flight stay leased and are redelivered at the next start.
    delivery.abort();
    wakes.abort();
    scheduler.abort();
    sweep.abort();
    // Unacknowledged AMQP messages go back to their queues.
    app.amqp_channels.stop();
    // Bounded: the supervisor kills after 10 s anyway.
    for _ in 0..80 {
        if app.in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ctl.abort();
    app.pool.stop();
    let _ = std::fs::remove_file(alpharen_rpc::service_socket(state_dir, "integrator"));
    Ok(())
}
