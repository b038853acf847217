//! The supervisor: opens the store, starts services in order, answers the
//! control socket, applies configuration changes to running services, and
//! stops everything in reverse order on SIGTERM.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use alpharen_store::config::ExtraService;
use alpharen_store::{Config, Store, now_unix};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};

use crate::builtin::BUILTINS;
use crate::logs::LogHub;
use crate::service::{self, Cmd, Event, ServiceHandle, ServiceSpec};
use crate::{SupervisorError, confirm, control, login, setup};

#[derive(Debug, Clone)]
pub struct Options {
    pub state_dir: PathBuf,
    /// Loopback listeners on dev ports; never reconfigure the host.
    pub dev: bool,
    /// Seeds the first revision of an empty state directory.
    pub config: Option<PathBuf>,
    /// Started by `alpharen init`: may set the hostname and reboot.
    pub under_init: bool,
}

/// Services in start order, with their handles.
#[derive(Default)]
pub(crate) struct Services {
    pub order: Vec<String>,
    pub handles: HashMap<String, ServiceHandle>,
}

/// State shared by the control socket, the confirm timer and the main loop.
pub(crate) struct Node {
    pub opts: Options,
    pub store: Mutex<Store>,
    pub services: tokio::sync::Mutex<Services>,
    pub logs: Arc<LogHub>,
    pub events: mpsc::Sender<Event>,
    pub started_at: i64,
    /// Woken whenever the pending (unconfirmed) revision may have changed.
    pub pending_changed: Notify,
    pub shutdown: Notify,
    pub setup: Mutex<setup::SetupState>,
    /// The login limiter shared by every door (`users.authenticate`).
    pub logins: login::Logins,
    pub exe: PathBuf,
}

pub fn run(opts: Options) -> Result<(), SupervisorError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SupervisorError::Runtime)?;
    rt.block_on(supervise(opts))
}

fn seed(store: &mut Store, path: &Path) -> Result<(), SupervisorError> {
    if store.current()?.is_some() {
        eprintln!(
            "alpharen: {} ignored: this state directory already has a configuration",
            path.display()
        );
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|source| SupervisorError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let config = Config::from_text(&text).map_err(|problems| SupervisorError::SeedConfig {
        path: path.display().to_string(),
        problems: problems
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n"),
    })?;
    store.apply(&config, "seed", &format!("seeded from {}", path.display()))?;
    Ok(())
}

fn bind_socket(path: &Path) -> Result<UnixListener, SupervisorError> {
    let err = |source| SupervisorError::Socket {
        path: path.display().to_string(),
        source,
    };
    alpharen_rpc::bind(path).map_err(err)
}

pub fn control_socket(state_dir: &Path) -> PathBuf {
    state_dir.join("run").join("control.sock")
}

async fn supervise(opts: Options) -> Result<(), SupervisorError> {
    let mut store = Store::open(&opts.state_dir)?;
    if let Some(path) = &opts.config {
        seed(&mut store, path)?;
    }
    let logs = Arc::new(LogHub::new(opts.state_dir.join("log")));
    let listener = bind_socket(&control_socket(&opts.state_dir))?;
    let (events, mut events_rx) = mpsc::channel(16);
    let setup = setup::SetupState::init(&store, &opts.state_dir)?;
    let node = Arc::new(Node {
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
        store: Mutex::new(store),
        services: tokio::sync::Mutex::new(Services::default()),
        logs,
        events,
        started_at: now_unix(),
        pending_changed: Notify::new(),
        shutdown: Notify::new(),
        setup: Mutex::new(setup),
        logins: login::Logins::default(),
        opts,
    });
    if let Ok(s) = node.setup.lock()
        && let Some(code) = s.code()
    {
        node.logs.event(&format!(
            "setup required: finish it in the web console with setup code {code} (also in {})",
            node.opts.state_dir.join("setup-code").display()
        ));
    }
    let config = node.config();
    node.start_services(&config).await;
    tokio::spawn(control::serve(listener, node.clone()));
    tokio::spawn(confirm::run(node.clone()));
    if node.opts.under_init {
        tokio::spawn(mark_boot_good(node.clone()));
    }
    let mut term = signal(SignalKind::terminate()).map_err(SupervisorError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(SupervisorError::Runtime)?;
    node.logs.event(&format!(
        "ready; control socket {}",
        control_socket(&node.opts.state_dir).display()
    ));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = node.shutdown.notified() => break,
            Some(ev) = events_rx.recv() => node.on_event(ev),
        }
    }
    node.logs.event("stopping services");
    node.stop_all().await;
    let _ = std::fs::remove_file(control_socket(&node.opts.state_dir));
    node.logs.event("stopped");
    Ok(())
}

/// Once every built-in service has run for a while, this boot counts as
/// good for the boot loader.
async fn mark_boot_good(node: Arc<Node>) {
    const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);
    for _ in 0..60 {
        tokio::time::sleep(SETTLE).await;
        let services = node.services.lock().await;
        let healthy = BUILTINS.iter().all(|b| {
            services
                .handles
                .get(b.name)
                .and_then(|h| h.status())
                .is_some_and(|s| {
                    s.state == "running" && now_unix() - s.since >= SETTLE.as_secs() as i64
                })
        });
        drop(services);
        if healthy {
            match tokio::task::spawn_blocking(crate::boot::mark_good).await {
                Ok(Ok((Some(slot), failed))) => {
                    node.logs.event(&format!("boot of slot {slot} marked good"));
                    for bad in failed {
                        let what = format!("slot {bad} failed all its boot tries and was skipped");
                        node.logs.event(&what);
                        crate::control::notify(&node, "boot slot failed", &what);
                    }
                }
                Ok(Ok((None, _))) => {}
                Ok(Err(e)) => node.logs.event(&format!("cannot mark this boot good: {e}")),
                Err(e) => node.logs.event(&format!("cannot mark this boot good: {e}")),
            }
            return;
        }
    }
    node.logs
        .event("services did not settle within 10 minutes; this boot is not marked good");
}

impl Node {
    /// The configuration in effect; defaults if the store cannot be read, so
    /// a damaged store never stops the node from coming up.
    pub fn config(&self) -> Config {
        match self.store.lock() {
            Ok(store) => store.current_config().unwrap_or_else(|e| {
                self.logs
                    .event(&format!("cannot read configuration, using defaults: {e}"));
                Config::default()
            }),
            Err(_) => Config::default(),
        }
    }

    fn builtin_spec(&self, name: &str, section: alpharen_store::Section) -> ServiceSpec {
        let mut args = vec![
            "serve".to_string(),
            name.to_string(),
            "--state-dir".to_string(),
            self.opts.state_dir.display().to_string(),
        ];
        if self.opts.dev {
            args.push("--dev".into());
        }
        ServiceSpec {
            name: name.into(),
            program: self.exe.clone(),
            args,
            env: Default::default(),
            restart: Default::default(),
            section: Some(section),
        }
    }

    fn extra_spec(extra: &ExtraService) -> ServiceSpec {
        ServiceSpec {
            name: extra.name.clone(),
            program: PathBuf::from(&extra.command),
            args: extra.args.clone(),
            env: extra.env.clone(),
            restart: extra.restart,
            section: None,
        }
    }

    async fn start_services(&self, config: &Config) {
        let mut services = self.services.lock().await;
        for b in BUILTINS {
            let spec = self.builtin_spec(b.name, b.section);
            self.add(&mut services, spec, "builtin");
        }
        for extra in &config.node.extra_services {
            self.add(&mut services, Node::extra_spec(extra), "extra");
        }
    }

    fn add(&self, services: &mut Services, spec: ServiceSpec, kind: &'static str) {
        let name = spec.name.clone();
        let handle = service::spawn(spec, kind, self.logs.clone(), self.events.clone());
        services.order.push(name.clone());
        services.handles.insert(name, handle);
    }

    /// Reverse start order, each one gracefully.
    pub async fn stop_all(&self) {
        let mut services = self.services.lock().await;
        let order: Vec<String> = services.order.drain(..).rev().collect();
        for name in order {
            if let Some(h) = services.handles.remove(&name) {
                h.stop().await;
            }
        }
    }

    /// Brings running services in line with a new configuration: SIGHUP to
    /// built-ins whose section changed, start/stop/replace extra services.
    pub async fn reconcile(&self, old: &Config, new: &Config) {
        let changed = old.changed_sections(new);
        let mut services = self.services.lock().await;
        for b in BUILTINS.iter().filter(|b| b.watches(&changed)) {
            if let Some(h) = services.handles.get(b.name) {
                let _ = h.tx.send(Cmd::Reload).await;
            }
        }
        let wanted: HashMap<&str, &ExtraService> = new
            .node
            .extra_services
            .iter()
            .map(|e| (e.name.as_str(), e))
            .collect();
        let gone: Vec<String> = old
            .node
            .extra_services
            .iter()
            .filter(|e| !wanted.contains_key(e.name.as_str()))
            .map(|e| e.name.clone())
            .collect();
        for name in gone {
            if let Some(h) = services.handles.remove(&name) {
                h.stop().await;
            }
            services.order.retain(|n| n != &name);
        }
        for extra in &new.node.extra_services {
            let spec = Node::extra_spec(extra);
            match services.handles.get_mut(&extra.name) {
                Some(h) if h.spec != spec => {
                    h.spec = spec.clone();
                    let _ = h.tx.send(Cmd::Replace(spec)).await;
                }
                Some(_) => {}
                None => self.add(&mut services, spec, "extra"),
            }
        }
        if self.opts.under_init
            && old.node.hostname != new.node.hostname
            && let Err(e) = nix::unistd::sethostname(&new.node.hostname)
        {
            self.logs.event(&format!("cannot set hostname: {e}"));
        }
        self.pending_changed.notify_one();
    }

    fn on_event(&self, ev: Event) {
        match ev {
            Event::Failed { name, last_exit } => {
                let detail = format!("{name} is in a crash loop ({last_exit})");
                if let Ok(store) = self.store.lock() {
                    let _ = store.audit("supervisor", "service.failed", &detail);
                }
                control::notify(self, &format!("service {name} failed"), &detail);
            }
        }
    }
}
