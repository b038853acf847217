//! ARMAIL: the node's mail service. A loopback SMTP listener and the
//! `sendmail` command put messages into a durable spool
//! (`<state>/spool/mail/`, see [`spool`]); a queue runner relays them to a
//! smarthost (or directly) with `lettre`, retrying on a fixed schedule,
//! bouncing permanent failures and keeping dead letters; `mail.notify`
//! lets the supervisor mail the admins, rate-limited.
//!
//! This crate reads its `[mail]` section and the relay password from the
//! store and owns the spool; SMTP AUTH checks node users through the
//! supervisor (`users.authenticate`, the login limiter shared with the web
//! and ssh). It never writes configuration, listens beyond loopback only on
//! `mail.submission.ports` (STARTTLS + AUTH required there) and talks to
//! no other service except the supervisor and over the network.
//!
//! Accepting is durable: the 250 after DATA and sendmail's exit status 0
//! come only after the message file and its directory are fsynced. The
//! duplicate window is the time between the relay's 250 and the unlink of
//! the spool file: a crash there sends the message again (at-least-once).

mod control;
mod deliver;
pub mod message;
pub mod notify;
pub mod retry;
pub mod sendmail;
pub mod session;
mod smtp;
pub mod spool;
mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use alpharen_rpc::auth::{AuthOutcome, AuthParams};
use alpharen_store::View;
use alpharen_store::config::Mail;
use tokio::sync::{Notify, watch};

use crate::session::Verdict;

pub use sendmail::sendmail_main;

/// Secret holding the smarthost AUTH password.
pub const RELAY_PASSWORD_SECRET: &str = "mail.relay.password";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration from the supervisor: {0}")]
    View(#[from] alpharen_rpc::RpcError),
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("relay: {0}")]
    Relay(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// What the service runs with; rebuilt on SIGHUP. Not `Debug`: it holds
/// the relay password.
#[derive(Clone)]
pub(crate) struct Settings {
    pub hostname: String,
    pub mail: Mail,
    pub port: u16,
    /// Sender of the node's own mail.
    pub node_from: String,
    pub relay_password: Option<String>,
}

impl Settings {
    pub async fn load(state_dir: &Path, dev: bool) -> Result<Settings, Error> {
        let view: View = alpharen_rpc::view::view(state_dir, "mail").await?;
        let relay_password = view.secret(RELAY_PASSWORD_SECRET).map(str::to_string);
        let cfg = view.config;
        let hostname = cfg.node.hostname.clone();
        let node_from = cfg
            .mail
            .from
            .clone()
            .unwrap_or_else(|| format!("alpharen@{hostname}"));
        let port = cfg.mail.listen_port(dev);
        Ok(Settings {
            hostname,
            mail: cfg.mail,
            port,
            node_from,
            relay_password,
        })
    }
}

/// State shared by the listener, the queue runner and the control socket.
pub(crate) struct Shared {
    pub state_dir: PathBuf,
    pub spool: Arc<spool::Spool>,
    pub settings: RwLock<Arc<Settings>>,
    pub relay: RwLock<Option<Arc<deliver::Relay>>>,
    pub wake: Notify,
    pub force: AtomicBool,
    pub notifier: Mutex<notify::Notifier>,
    pub notify_wake: Notify,
    pub sessions: AtomicUsize,
    pub shutdown: watch::Receiver<bool>,
    /// The ACME certificate for STARTTLS, forgotten at every reload.
    pub acme_tls: tls::AcmeCache,
}

impl Shared {
    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn relay(&self) -> Option<Arc<deliver::Relay>> {
        match self.relay.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Runs spool I/O (fsyncs) off the async thread.
    pub async fn spool_op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&spool::Spool) -> Result<T, spool::SpoolError> + Send + 'static,
    ) -> Result<T, Error> {
        let spool = self.spool.clone();
        match tokio::task::spawn_blocking(move || f(&spool)).await {
            Ok(r) => r.map_err(Error::from),
            Err(e) => Err(Error::Relay(format!("spool task failed: {e}"))),
        }
    }

    /// SMTP AUTH: the node's users, checked by the supervisor behind the
    /// login limiter shared with the web login and ssh.
    pub async fn check_user(&self, user: &str, password: &str, client: IpAddr) -> Verdict {
        let params = AuthParams {
            username: user.to_string(),
            password: password.to_string(),
            client: Some(client),
            service: "smtp".into(),
        };
        match alpharen_rpc::auth::authenticate(&self.state_dir, &params).await {
            AuthOutcome::Ok(_) => Verdict::Accepted,
            AuthOutcome::Refused => Verdict::Refused,
            AuthOutcome::RateLimited { retry_after } => Verdict::RateLimited(retry_after),
            AuthOutcome::Unavailable(why) => {
                tracing::error!(error = %why, "cannot check SMTP credentials");
                Verdict::Unavailable
            }
        }
    }

    /// Swaps in new settings and a relay built from them.
    fn apply(&self, s: Settings) {
        let relay = match deliver::Relay::build(&s) {
            Ok(r) => r.map(Arc::new),
            Err(e) => {
                tracing::error!(error = %e, "relay not usable; mail stays queued");
                None
            }
        };
        if let Ok(mut n) = self.notifier.lock() {
            n.set_interval(s.mail.notify_interval);
        }
        if let Ok(mut c) = self.acme_tls.lock() {
            *c = None;
        }
        match self.settings.write() {
            Ok(mut g) => *g = Arc::new(s),
            Err(p) => *p.into_inner() = Arc::new(s),
        }
        match self.relay.write() {
            Ok(mut g) => *g = relay,
            Err(p) => *p.into_inner() = relay,
        }
        self.wake.notify_one();
    }
}

/// `alpharen serve mail`: runs until SIGTERM.
pub fn serve(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
        .map_err(io_err("tokio runtime"))?;
    rt.block_on(run(state_dir, dev))
}

async fn run(state_dir: &Path, dev: bool) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let settings = Settings::load(state_dir, dev).await?;
    let spool = Arc::new(spool::Spool::open(state_dir)?);
    spool.sweep();
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        state_dir: state_dir.to_path_buf(),
        spool,
        settings: RwLock::new(Arc::new(settings.clone())),
        relay: RwLock::new(None),
        wake: Notify::new(),
        force: AtomicBool::new(false),
        notifier: Mutex::new(notify::Notifier::new(settings.mail.notify_interval)),
        notify_wake: Notify::new(),
        sessions: AtomicUsize::new(0),
        shutdown: stop_rx,
        acme_tls: Default::default(),
    });
    shared.apply(settings.clone());

    let mut term = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(io_err("SIGHUP handler"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;

    let control = control::start(shared.clone()).await?;
    let mut listeners = HashMap::new();
    if let Some(err) = reconcile_listeners(&shared, &mut listeners, &settings)
        .await
        .into_iter()
        .next()
    {
        return Err(err);
    }
    let port = settings.port;
    let runner = tokio::spawn(deliver::run_queue(shared.clone()));
    let notifier = tokio::spawn(control::notify_flusher(shared.clone()));
    tracing::info!(port, dev, "mail service ready");
    alpharen_rpc::view::ready(state_dir, "mail").await;

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match Settings::load(state_dir, dev).await {
                    Ok(s) => {
                        shared.apply(s.clone());
                        for e in reconcile_listeners(&shared, &mut listeners, &s).await {
                            tracing::error!(error = %e, "SMTP listener not started");
                        }
                        tracing::info!(port = s.port, "configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "reload failed; keeping the previous configuration"),
                }
            }
        }
    }
    tracing::info!("stopping: no new connections, finishing in-flight work");
    for l in listeners.values() {
        l.abort();
    }
    let _ = stop_tx.send(true);
    shared.wake.notify_one();
    // Bounded by the supervisor's 10 s grace: give sessions and the
    // current delivery 8 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while shared.sessions.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tokio::time::timeout_at(deadline, runner).await;
    notifier.abort();
    control.abort();
    let _ = std::fs::remove_file(control::socket_path(state_dir));
    tracing::info!("mail service stopped");
    Ok(())
}

/// Where to listen: loopback on the local port, every address on the
/// submission ports (which then serve loopback too).
fn listen_addrs(s: &Settings) -> Vec<SocketAddr> {
    let sub = &s.mail.submission.ports;
    let mut out: Vec<SocketAddr> = sub
        .iter()
        .map(|p| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), *p))
        .collect();
    if !sub.contains(&s.port) {
        out.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), s.port));
    }
    out
}

/// Stops listeners no longer wanted (first, so a port can move from
/// loopback to every address) and starts the new ones.
async fn reconcile_listeners(
    shared: &Arc<Shared>,
    listeners: &mut HashMap<SocketAddr, tokio::task::JoinHandle<()>>,
    settings: &Settings,
) -> Vec<Error> {
    let wanted = listen_addrs(settings);
    let gone: Vec<SocketAddr> = listeners
        .keys()
        .filter(|a| !wanted.contains(a))
        .copied()
        .collect();
    for addr in gone {
        if let Some(task) = listeners.remove(&addr) {
            task.abort();
            let _ = task.await; // the socket is closed once the task is gone
        }
    }
    let mut errors = Vec::new();
    for addr in wanted {
        if listeners.contains_key(&addr) {
            continue;
        }
        match smtp::start(shared.clone(), addr).await {
            Ok(task) => {
                tracing::info!(%addr, "SMTP listening");
                listeners.insert(addr, task);
            }
            Err(e) => errors.push(e),
        }
    }
    errors
}

/// Wall clock in Unix seconds.
pub(crate) fn now() -> i64 {
    alpharen_store::now_unix()
}
