//! The web service: the node's HTTPS front. It serves the admin console
//! (static assets embedded in the binary), the REST API under `/api/v1/`
//! that maps the supervisor's control methods, and the first-boot setup
//! wizard; a plain-HTTP listener only redirects to HTTPS. For ARDPX it
//! answers dyndns2 `/nic/update` and reverse-proxies `[[dpx.routes]]`
//! from the `[dpx]` section (and `[vpn]` for `vpn_only` routes), which the
//! supervisor signals to this service as well as to their owners.
//!
//! It never writes configuration or users itself: every change goes
//! through the control socket (`<state>/run/control.sock`), and passwords
//! are checked there too (`users.authenticate`, behind the login limiter
//! shared with SMTP AUTH and ssh). It opens the store only to read the
//! config and to keep its own tables (console sessions and API tokens,
//! stored hashed). Request limits (`limits`) apply before any body is read.
//! `GET /metrics` (`metrics`) gathers the node's figures over the control
//! socket at scrape time. It depends on no other
//! service's crate.

pub mod acme;
pub mod api;
pub mod auth;
mod console;
mod control;
pub mod dyndns;
pub mod error;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod tls;
pub mod workers;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use alpharen_store::config::Dpx;
use alpharen_store::limiter::{DEFAULT_CAP, LOGIN_MAX_PER_NET, LOGIN_WINDOW, Window};
use alpharen_store::{Role, View};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

/// Longest a control call may take (a config apply reconciles services).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] alpharen_store::StoreError),
    #[error("from the supervisor: {0}")]
    View(#[from] alpharen_rpc::RpcError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// How long in-flight requests get after SIGTERM (the supervisor kills at 10 s).
const DRAIN: Duration = Duration::from_secs(8);
/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared by every request.
pub struct App {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// `web.db`: sessions and API tokens.
    pub db: Mutex<rusqlite::Connection>,
    /// The dyndns users' passwords (`dpx.dyndns.*`), from the view.
    dyndns_secrets: RwLock<Arc<BTreeMap<String, String>>>,
    /// Caps on requests in flight and on the body memory they hold.
    pub limits: limits::Limits,
    /// Failed dyndns updates per client network (dyndns users are not node
    /// users, so they are not counted by the supervisor's login limiter).
    pub dyndns_failures: Mutex<Window<IpAddr>>,
    pub idle_secs: AtomicI64,
    /// `[dpx]` as of the last start or SIGHUP.
    dpx: RwLock<Arc<Dpx>>,
    /// The VPN's networks, for `vpn_only` routes.
    vpn_nets: RwLock<Arc<Vec<(IpAddr, u8)>>>,
    pub throttle: Mutex<dyndns::Throttle>,
    /// Each dyndns host's last update (only configured hosts get one).
    pub dyndns_updates: Mutex<BTreeMap<String, dyndns::Update>>,
    /// One per `[[dpx.routes]]` entry, in config order.
    upstreams: RwLock<Arc<Vec<Arc<proxy::Upstream>>>>,
    /// How many HTTPS workers serve requests (each gets its own backend
    /// connections).
    workers: usize,
    /// Requests and latencies for `/metrics`.
    pub http: metrics::http::Http,
    /// The last hour of the dashboard's figures, filled by `metrics::history::sample`.
    pub history: Arc<Mutex<metrics::history::History>>,
    /// The ACME certificate and its renewal (`[acme]`).
    pub acme: Arc<acme::Acme>,
}

/// The networks of `[vpn]`: its own addresses and the road-warrior pool;
/// none while the VPN is off, so `vpn_only` routes then refuse everyone.
fn vpn_nets(vpn: &alpharen_store::config::Vpn) -> Vec<(IpAddr, u8)> {
    if !vpn.enabled {
        return Vec::new();
    }
    vpn.addresses
        .iter()
        .chain(vpn.pool.iter())
        .filter_map(|c| alpharen_store::config::parse_cidr(c))
        .collect()
}

fn swap<T>(lock: &RwLock<Arc<T>>, value: T) {
    match lock.write() {
        Ok(mut g) => *g = Arc::new(value),
        Err(p) => *p.into_inner() = Arc::new(value),
    }
}

fn current<T>(lock: &RwLock<Arc<T>>) -> Arc<T> {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

impl App {
    /// Runs inside the runtime: routes with health checks spawn their checkers.
    pub fn new(
        state_dir: &Path,
        config: &alpharen_store::Config,
        secrets: BTreeMap<String, String>,
        workers: usize,
    ) -> Result<App, Error> {
        let db = alpharen_store::open_service_db(state_dir, "web", auth::SCHEMA)?;
        let web = &config.web;
        Ok(App {
            state_dir: state_dir.to_path_buf(),
            socket: alpharen_rpc::control_socket(state_dir),
            db: Mutex::new(db),
            acme: Arc::new(acme::Acme::new(state_dir, &config.acme, &secrets)),
            dyndns_secrets: RwLock::new(Arc::new(secrets)),
            limits: limits::Limits::default(),
            dyndns_failures: Mutex::new(Window::new(LOGIN_MAX_PER_NET, LOGIN_WINDOW, DEFAULT_CAP)),
            idle_secs: AtomicI64::new(i64::from(web.session_idle_minutes) * 60),
            upstreams: RwLock::new(Arc::new(proxy::reconcile(&[], &config.dpx.routes, workers))),
            workers,
            dpx: RwLock::new(Arc::new(config.dpx.clone())),
            vpn_nets: RwLock::new(Arc::new(vpn_nets(&config.vpn))),
            throttle: Mutex::new(dyndns::Throttle::default()),
            dyndns_updates: Mutex::new(BTreeMap::new()),
            http: metrics::http::Http::default(),
            history: Arc::new(Mutex::new(metrics::history::History::new(
                metrics::history::POINTS,
            ))),
        })
    }

    pub fn dpx(&self) -> Arc<Dpx> {
        current(&self.dpx)
    }

    pub fn vpn_nets(&self) -> Arc<Vec<(IpAddr, u8)>> {
        current(&self.vpn_nets)
    }

    pub fn upstreams(&self) -> Arc<Vec<Arc<proxy::Upstream>>> {
        current(&self.upstreams)
    }

    pub fn idle_secs(&self) -> i64 {
        self.idle_secs.load(Ordering::Relaxed)
    }

    pub fn dyndns_secret(&self, name: &str) -> Option<String> {
        current(&self.dyndns_secrets).get(name).cloned()
    }

    /// Each node user's current role, as the supervisor has them now (so
    /// a deleted or demoted user's sessions and tokens end at once).
    pub async fn user_roles(&self) -> Result<BTreeMap<String, Role>, alpharen_rpc::RpcError> {
        let v = alpharen_rpc::call(
            &self.socket,
            alpharen_rpc::users::LIST,
            serde_json::json!({}),
            Duration::from_secs(10),
        )
        .await?;
        let users: Vec<alpharen_store::User> = serde_json::from_value(v).map_err(|e| {
            alpharen_rpc::RpcError::new("internal_error", format!("users.list: {e}"))
        })?;
        Ok(users.into_iter().map(|u| (u.name, u.role)).collect())
    }

    /// An entry in the node's audit log (kept by the supervisor).
    pub async fn audit(&self, actor: &str, action: &str, detail: &str) {
        let entry = alpharen_rpc::view::AuditEntry {
            service: "web",
            actor,
            action,
            detail,
        };
        alpharen_rpc::view::audit(&self.state_dir, &entry).await;
    }
}

/// The client's address, attached to each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Listening addresses for a config and mode: plain HTTP for the redirect
/// or for ACME's HTTP-01 challenges.
fn ports(config: &alpharen_store::Config, dev: bool) -> Addrs {
    let web = &config.web;
    let ip: IpAddr = if dev {
        Ipv4Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let https = web.https_port.unwrap_or(if dev { 8443 } else { 443 });
    let http = web.http_port.unwrap_or(if dev { 8080 } else { 80 });
    Addrs {
        https: SocketAddr::new(ip, https),
        http: (web.http_redirect || config.acme.enabled).then_some(SocketAddr::new(ip, http)),
        redirect: web.http_redirect,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Addrs {
    https: SocketAddr,
    http: Option<SocketAddr>,
    /// The plain-HTTP listener redirects to HTTPS (else it only answers
    /// ACME challenges).
    redirect: bool,
}

/// The HTTPS connections are served by [`workers`] (`web.workers`, one
/// per core by default); this thread's own runtime keeps the rest:
/// signals, reloads, the control socket, ACME, health checks, the
/// plain-HTTP listener and the dashboard's sampler.
pub fn serve(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("tokio runtime".into(), e))?;
    rt.block_on(run(state_dir, dev))
}

struct Listeners {
    addrs: Addrs,
    tasks: Vec<JoinHandle<()>>,
}

impl Listeners {
    /// Closes the listeners (connections stay), and returns once they are
    /// closed, so that their ports can be bound again at once.
    async fn stop(&mut self) {
        let tasks: Vec<_> = self.tasks.drain(..).collect();
        tasks.iter().for_each(JoinHandle::abort);
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn run(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let View { config, secrets } = alpharen_rpc::view::view(state_dir, "web").await?;
    let workers = workers::Workers::start(workers::count(
        config.web.workers,
        std::thread::available_parallelism().ok().map(|n| n.get()),
    ))?;
    let app = Arc::new(App::new(state_dir, &config, secrets, workers.count())?);
    let ck = serving(&app, &config)?;
    tracing::info!(fingerprint = %tls::fingerprint(&ck), "TLS certificate (SHA-256)");
    let resolver = Arc::new(tls::Resolver::new(ck));
    tokio::spawn(app.acme.clone().run(resolver.clone()));
    tokio::spawn(metrics::history::sample(app.clone()));
    alpharen_rpc::spawn_service(state_dir, "web", control::Rpc { app: app.clone() })
        .map_err(|e| Error::Io("web.sock".into(), e))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(resolver.clone())?));
    let router = api::router(app.clone());
    let graceful = (0..workers.count())
        .map(|_| Mutex::new(Some(GracefulShutdown::new())))
        .collect();
    let shared = Arc::new(Shared {
        acceptor,
        app: app.clone(),
        router,
        graceful,
        workers,
    });
    let mut listeners = start(&shared, ports(&config, dev)).await?;
    alpharen_rpc::view::ready(state_dir, "web").await;
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Io("SIGTERM".into(), e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::Io("SIGHUP".into(), e))?;
    let mut sweep = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = hup.recv() => {
                if let Err(e) = reload(&app, &resolver, &shared, &mut listeners, dev).await {
                    tracing::error!(error = %e, "reload failed; keeping the previous settings");
                }
            }
            _ = sweep.tick() => {
                if let Ok(db) = app.db.lock() {
                    let _ = auth::expire_sessions(&db, app.idle_secs());
                }
            }
        }
    }
    tracing::info!("stopping: draining connections");
    listeners.stop().await;
    let draining = shared
        .graceful
        .iter()
        .filter_map(|g| g.lock().ok().and_then(|mut g| g.take()))
        .map(GracefulShutdown::shutdown);
    let _ = tokio::time::timeout(DRAIN, futures_util::future::join_all(draining)).await;
    Ok(())
}

/// SIGHUP: re-read `[web]`, `[node]`, `[dpx]` and `[vpn]`; swap the certificate,
/// rebind if the ports changed.
async fn reload(
    app: &Arc<App>,
    resolver: &tls::Resolver,
    shared: &Arc<Shared>,
    listeners: &mut Listeners,
    dev: bool,
) -> Result<(), Error> {
    let View { config, secrets } = alpharen_rpc::view::view(&app.state_dir, "web").await?;
    if config
        .web
        .workers
        .is_some_and(|n| n as usize != app.workers)
    {
        tracing::warn!(
            running = app.workers,
            "web.workers takes effect when the web service restarts (ctl restart web)"
        );
    }
    app.acme.configure(&config.acme, &secrets);
    swap(&app.dyndns_secrets, secrets);
    app.idle_secs.store(
        i64::from(config.web.session_idle_minutes) * 60,
        Ordering::Relaxed,
    );
    swap(
        &app.upstreams,
        proxy::reconcile(&app.upstreams(), &config.dpx.routes, app.workers),
    );
    swap(&app.dpx, config.dpx.clone());
    swap(&app.vpn_nets, vpn_nets(&config.vpn));
    let ck = serving(app, &config)?;
    tracing::info!(fingerprint = %tls::fingerprint(&ck), "reloaded; TLS certificate (SHA-256)");
    resolver.set(ck);
    let addrs = ports(&config, dev);
    if addrs != listeners.addrs {
        listeners.stop().await;
        *listeners = start(shared, addrs).await?;
    }
    Ok(())
}

/// The TLS handshake: an ACME validator asking for `acme-tls/1` gets the
/// TLS-ALPN-01 certificate and then the connection ends (`None`); every
/// other client gets the listener's settings.
async fn handshake(
    shared: &Shared,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let start = match start.await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            return None;
        }
    };
    if let Some(cfg) = shared.app.acme.alpn_config(&start.client_hello()) {
        match start.into_stream(cfg).await {
            Ok(mut tls) => {
                tracing::info!(peer = %peer, "ACME: answered a TLS-ALPN-01 validation");
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
            }
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "ACME: TLS-ALPN-01 handshake failed")
            }
        }
        return None;
    }
    match start.into_stream(shared.acceptor.config().clone()).await {
        Ok(tls) => Some(tls),
        Err(e) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            None
        }
    }
}

struct Shared {
    acceptor: tokio_rustls::TlsAcceptor,
    /// Its `acme` answers TLS-ALPN-01.
    app: Arc<App>,
    /// The node's own routes, for requests that no proxy route takes.
    router: Router,
    /// One per worker: a connection's poll checks its worker's only
    /// (a shared one is a lock taken from every core on every poll).
    graceful: Vec<Mutex<Option<GracefulShutdown>>>,
    workers: workers::Workers,
}

/// The certificate to serve: the CA's while `[acme]` holds one, else
/// `web.cert` or the self-signed one.
fn serving(
    app: &App,
    config: &alpharen_store::Config,
) -> Result<rustls::sign::CertifiedKey, Error> {
    match app.acme.certified() {
        Some(ck) => Ok(ck),
        None => tls::choose(&app.state_dir, &config.web, &config.node.hostname),
    }
}

async fn start(shared: &Arc<Shared>, addrs: Addrs) -> Result<Listeners, Error> {
    let mut tasks = shared
        .workers
        .listen(addrs.https, |l| accept_https(l, shared.clone()))?;
    tracing::info!(addr = %addrs.https, workers = tasks.len(), "HTTPS listening");
    if let Some(a) = addrs.http {
        let http = match TcpListener::bind(a).await {
            Ok(l) => l,
            Err(e) => {
                Listeners { addrs, tasks }.stop().await;
                return Err(Error::Bind(a, e));
            }
        };
        tracing::info!(addr = %a, redirect = addrs.redirect, "HTTP listening");
        let redirect = addrs.redirect.then_some(addrs.https.port());
        let acme = shared.app.acme.clone();
        tasks.push(tokio::spawn(async move {
            let app = api::redirect_router(redirect, acme);
            if let Err(e) = axum::serve(http, app).await {
                tracing::error!(error = %e, "HTTP listener stopped");
            }
        }));
    }
    Ok(Listeners { addrs, tasks })
}

async fn accept_https(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let graceful = &shared.graceful[workers::index() % shared.graceful.len()];
        let watcher = match graceful.lock() {
            Ok(g) => match g.as_ref() {
                Some(g) => g.watcher(),
                None => return,
            },
            Err(_) => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(Some(tls)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&shared, tcp, peer)).await
            else {
                return;
            };
            let ip = ClientIp(peer.ip());
            let svc = hyper::service::service_fn(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ip);
                    let req = req.map(axum::body::Body::new);
                    api::front(shared.app.clone(), shared.router.clone(), req)
                },
            );
            let builder = auto::Builder::new(TokioExecutor::new());
            // With upgrades: proxied WebSockets take over the connection.
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(peer = %peer, error = %e, "connection ended");
            }
        });
    }
}
