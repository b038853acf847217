//! The node's state, shared by the control socket, the confirm timer and
//! the supervisor's main loop: the store, the running services, the log
//! hub and setup. Its methods start, stop and reconcile services and raise
//! admin notifications; it knows nothing of the control socket or of
//! `methods`, which use it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use alpharen_store::config::ExtraService;
use alpharen_store::{Config, Section, Store};
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};

use crate::builtin::{BUILTINS, Builtin};
use crate::logs::LogHub;
use crate::privsep::Drop;
use crate::service::{self, Cmd, Event, ServiceHandle, ServiceSpec};
use crate::setup;

/// Who said they are serving: a built-in's name and its process group.
pub type Serving = std::collections::BTreeMap<&'static str, Option<i32>>;

#[derive(Debug, Clone)]
pub struct Options {
    pub state_dir: PathBuf,
    /// Loopback listeners on dev ports; never reconfigure the host.
    pub dev: bool,
    /// Seeds the first revision of an empty state directory.
    pub config: Option<PathBuf>,
    /// Started by `alpharen init`: may reboot.
    pub under_init: bool,
    /// Started by `alpharen init` on a machine, not in a container: the
    /// hostname is the node's to set, at start and on each change.
    pub set_hostname: bool,
}

/// Services in start order, with their handles.
#[derive(Default)]
pub(crate) struct Services {
    pub order: Vec<String>,
    pub handles: HashMap<String, ServiceHandle>,
}

/// State shared by the control socket, the confirm timer and the main loop.
pub(crate) struct NodeState {
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
    pub logins: crate::login::Logins,
    pub exe: PathBuf,
    /// Built-in services run as their own users (the supervisor is root).
    pub separate: bool,
    /// The built-ins that said they are serving (`services.ready`), each
    /// with the process group of the process that said it, so a restart
    /// can tell the new process's word from the old one's.
    pub serving: watch::Sender<Serving>,
    /// The scheduled reboot: its Unix time and the task that does it.
    pub reboot_at: Mutex<Option<(i64, tokio::task::AbortHandle)>>,
    /// The link to the cluster's configuration log (`shared.rs`).
    pub shared: Arc<crate::shared::Shared>,
    /// The update bundle being uploaded and installed, if any.
    pub update: tokio::sync::Mutex<Option<crate::methods::update::Upload>>,
}

impl NodeState {
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

    fn builtin_spec(&self, b: &Builtin) -> ServiceSpec {
        let name = b.name;
        let mut args = vec![
            "serve".to_string(),
            name.to_string(),
            "--state-dir".to_string(),
            self.opts.state_dir.display().to_string(),
        ];
        if self.opts.dev {
            args.push("--dev".into());
        }
        // Separated services prove they are ours with the token; a
        // process that only shares their user has none.
        let env = match (self.separate, alpharen_rpc::token::get()) {
            (true, Some(t)) => [(alpharen_rpc::token::TOKEN_ENV.to_string(), t.to_string())].into(),
            _ => Default::default(),
        };
        ServiceSpec {
            name: name.into(),
            program: self.exe.clone(),
            args,
            env,
            restart: Default::default(),
            drop: self.separate.then(|| Drop::new(b.user, b.caps)),
        }
    }

    fn extra_spec(extra: &ExtraService) -> ServiceSpec {
        ServiceSpec {
            name: extra.name.clone(),
            program: PathBuf::from(&extra.command),
            args: extra.args.clone(),
            env: extra.env.clone(),
            restart: extra.restart,
            drop: None,
        }
    }

    pub async fn start_services(&self, config: &Config) {
        let mut services = self.services.lock().await;
        for b in BUILTINS {
            let spec = self.builtin_spec(b);
            self.add(&mut services, spec, "builtin");
        }
        for extra in &config.node.extra_services {
            self.add(&mut services, NodeState::extra_spec(extra), "extra");
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
    /// built-ins that read a changed section, start/stop/replace extra services.
    /// `changed` also names sections whose secrets changed, which the
    /// documents do not show.
    pub async fn reconcile(&self, old: &Config, new: &Config, changed: &[Section]) {
        if let Ok(store) = self.store.lock() {
            self.shared.retarget(new, &store);
        }
        let mut services = self.services.lock().await;
        for b in BUILTINS.iter().filter(|b| b.watches(changed)) {
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
            let spec = NodeState::extra_spec(extra);
            match services.handles.get_mut(&extra.name) {
                Some(h) if h.spec != spec => {
                    h.spec = spec.clone();
                    let _ = h.tx.send(Cmd::Replace(spec)).await;
                }
                Some(_) => {}
                None => self.add(&mut services, spec, "extra"),
            }
        }
        if self.opts.set_hostname
            && old.node.hostname != new.node.hostname
            && let Err(e) = nix::unistd::sethostname(&new.node.hostname)
        {
            self.logs.event(&format!("cannot set hostname: {e}"));
        }
        self.pending_changed.notify_one();
    }

    /// SIGHUP to the built-ins whose view holds one of the secrets named
    /// (set by a `[secrets]` table, which changes no section).
    pub async fn secrets_changed(&self, config: &Config, names: &[String]) {
        let services = self.services.lock().await;
        for b in BUILTINS {
            if names.iter().any(|n| crate::methods::may_read(b, config, n))
                && let Some(h) = services.handles.get(b.name)
            {
                let _ = h.tx.send(Cmd::Reload).await;
            }
        }
    }

    /// `name` is serving (again, after a restart), said by process `pid`.
    pub fn serving(&self, name: &'static str, pid: Option<i32>) {
        let group = pid
            .and_then(|p| nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(p))).ok())
            .map(|g| g.as_raw());
        self.serving.send_modify(|s| {
            s.insert(name, group);
        });
    }

    /// The built-ins not yet serving, in start order.
    pub fn not_serving(&self) -> Vec<&'static str> {
        crate::builtin::waiting_for(&self.serving.borrow())
    }

    pub fn on_event(&self, ev: Event) {
        match ev {
            Event::Failed { name, last_exit } => {
                let detail = format!("{name} is in a crash loop ({last_exit})");
                if let Ok(store) = self.store.lock() {
                    let _ = store.audit("supervisor", "service.failed", &detail);
                }
                self.notify(&format!("service {name} failed"), &detail);
            }
        }
    }

    /// An event the admin should hear about: logged always, mailed when the
    /// mail service is present.
    pub fn notify(&self, subject: &str, body: &str) {
        self.logs.event(&format!("notification: {subject}: {body}"));
        if crate::builtin::find("mail").is_none() {
            return;
        }
        let params = json!({"subject": subject, "body": body});
        let state_dir = self.opts.state_dir.clone();
        let logs = self.logs.clone();
        tokio::spawn(async move {
            let path = alpharen_rpc::service_socket(&state_dir, "mail");
            let timeout = std::time::Duration::from_secs(10);
            if let Err(e) = alpharen_rpc::call(&path, "mail.notify", params, timeout).await {
                logs.event(&format!("notification not mailed: {}", e.message));
            }
        });
    }
}

/// Asks init (PID 1) to reboot the node (busybox's convention: SIGTERM).
/// On a Raspberry Pi with a slot armed for its trial, first marks the
/// slot `tried` and leaves init the reboot argument `0 tryboot`
/// (`crate::boot::prepare_reboot`); if that fails, the reboot boots the
/// default slot and the armed one waits for the next reboot.
pub(crate) fn request_reboot(logs: &LogHub) -> nix::Result<()> {
    if let Some(line) = crate::boot::prepare_reboot() {
        logs.event(&line);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(1),
        nix::sys::signal::Signal::SIGTERM,
    )
}
