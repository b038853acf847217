//! The `pgha` service: the seed's `pg_controller`. For each configured
//! group of two PostgreSQL servers it polls both over SQL and SSH, asks the
//! referee, decides with the pure state machine in [`decide`] and acts over
//! SSH (fence, promote, rebuild). Status is answered on
//! `<state>/run/pgha.sock`.
//!
//! This crate reads its `[pgha]` section and its secrets from the store and
//! keeps its own tables there (pinned SSH host keys, the last master of each
//! group); it never writes configuration and never talks to other services
//! except through the control socket (notifications).

mod act;
mod backup;
pub mod clock;
mod control;
pub mod decide;
mod dns;
mod group;
mod journal;
pub mod observe;
mod pins;
pub mod referee;
mod remote;
pub mod schedule;
mod shell;
mod singleton;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::config::{BackupController, KeyPath, PgGroupResolved, Problem};
use alpharen_store::{StoreError, View};
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("from the supervisor: {0}")]
    View(#[from] alpharen_rpc::RpcError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the SSH client key (secret pgha.ssh_client_key) is unusable: {0}")]
    Key(String),
}

/// A group left out for bad settings, with its problems.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Excluded {
    pub group: String,
    pub problems: Vec<String>,
}

/// The runnable groups of the current config, secrets filled in from the
/// view, and those left out.
#[derive(Clone)]
struct Plan {
    grace: Duration,
    poll: Duration,
    groups: Vec<PgGroupResolved>,
    excluded: Vec<Excluded>,
    backup: Option<BackupController>,
}

impl Plan {
    fn load(view: View) -> Result<Plan, Error> {
        let cfg = view.revealed(view.config.clone())?.pgha;
        let mut plan = Plan {
            grace: Duration::from_secs(cfg.grace),
            poll: Duration::from_secs(cfg.poll_interval),
            groups: Vec::new(),
            excluded: Vec::new(),
            backup: cfg.backup_controller.clone(),
        };
        let at = KeyPath::root().key("pgha").key("pg_controller");
        for (i, g) in cfg.pg_controller.iter().enumerate() {
            match g.resolve(i, &at.index(i)) {
                Ok(g) => plan.groups.push(g),
                Err(problems) => plan.excluded.push(Excluded {
                    group: g.key_or(i),
                    problems: problems.iter().map(Problem::to_string).collect(),
                }),
            }
        }
        Ok(plan)
    }
}

/// Shared with the control socket.
pub(crate) struct Shared {
    state_dir: PathBuf,
    pins: pins::Pins,
    client_key: String,
    groups: Mutex<BTreeMap<String, Arc<Mutex<group::GroupStatus>>>>,
    excluded: Mutex<Vec<Excluded>>,
    /// Wakes the backup controller for a run now (`pgha.backup`).
    backup_now: Arc<tokio::sync::Notify>,
    /// The last backup run's result and the next run.
    backup: Arc<Mutex<backup::Shown>>,
    backup_configured: std::sync::atomic::AtomicBool,
    /// Where the controllers run in a cluster (`null` outside one).
    singletons: Mutex<serde_json::Value>,
}

async fn view(state_dir: &Path) -> Result<View, Error> {
    Ok(alpharen_rpc::view::view(state_dir, "pgha").await?)
}

/// `alpharen serve pgha`: runs until SIGTERM.
pub fn serve(state_dir: &Path, _dev: bool) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("tokio runtime".into(), e))?;
    rt.block_on(run(state_dir))
}

async fn run(state_dir: &Path) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let sig = |kind, name: &str| signal(kind).map_err(|e| Error::Io(format!("{name} handler"), e));
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;

    let pins = pins::Pins::new(alpharen_store::open_service_db(
        state_dir,
        "pgha",
        pins::SCHEMA,
    )?);
    let key = remote::client_key(state_dir, &view(state_dir).await?).await?;
    let client_key = key.public_key().to_openssh().unwrap_or_default();
    let shared = Arc::new(Shared {
        state_dir: state_dir.to_path_buf(),
        pins: pins.clone(),
        client_key,
        groups: Mutex::new(BTreeMap::new()),
        excluded: Mutex::new(Vec::new()),
        backup_now: Arc::new(tokio::sync::Notify::new()),
        backup: Arc::new(Mutex::new(backup::Shown::default())),
        backup_configured: std::sync::atomic::AtomicBool::new(false),
        singletons: Mutex::new(serde_json::Value::Null),
    });
    let remote = Arc::new(remote::Remote::new(pins.clone(), key));
    let control = control::start(shared.clone())?;
    alpharen_rpc::view::ready(state_dir, "pgha").await;

    let mut running = Running::default();
    let mut link = singleton::Link::default();
    let mut published = dns::Published::default();
    let mut dns_tick = tokio::time::interval(dns::EVERY);
    dns_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut plan: Option<Plan> = None;
    // The gates the running controllers were started with.
    let mut started = None;
    let mut reload = true;
    loop {
        if reload {
            match view(state_dir).await {
                Ok(v) => {
                    link.follow(&v).await;
                    match Plan::load(v) {
                        Ok(p) => {
                            alert_excluded(&shared, &p);
                            plan = Some(p);
                            started = None;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the pgha section; keeping the running groups")
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the pgha section; keeping the running groups")
                }
            }
        }
        let gates = (link.gate(singleton::PG), link.gate(singleton::BACKUP));
        let keys = (gates.0.key(), gates.1.key());
        if let Some(p) = &plan
            && started != Some(keys)
        {
            running.reconcile(p.clone(), &gates, &shared, &remote);
            started = Some(keys);
        }
        reload = tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("configuration changed");
                true
            }
            _ = link.changed() => false,
            _ = dns_tick.tick() => {
                if let Some(p) = &plan {
                    let masters = masters(p, &link, &shared).await;
                    published.publish(state_dir, masters).await;
                }
                let shown = link.shown().await;
                if let Ok(mut s) = shared.singletons.lock() {
                    *s = shown;
                }
                false
            }
        };
    }
    running.stop();
    link.stop().await;
    control.abort();
    let _ = std::fs::remove_file(alpharen_rpc::service_socket(state_dir, "pgha"));
    tracing::info!("pgha stopped");
    Ok(())
}

/// The alert for groups left out for bad settings, once per reload.
fn alert_excluded(shared: &Shared, plan: &Plan) {
    for x in &plan.excluded {
        journal::Journal::group(&shared.state_dir, &x.group)
            .alert("group excluded for bad settings", &x.problems.join("\n"));
    }
}

/// Each group's master as a `pg_host`: in a cluster from the state the
/// controller's holder keeps there (the same on every member), else from
/// this node's own controller.
async fn masters(plan: &Plan, link: &singleton::Link, shared: &Shared) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for g in &plan.groups {
        let master = match link.leases() {
            Some(leases) => leases
                .state(singleton::PG, &group::state_key(&g.key))
                .await
                .ok()
                .flatten()
                .and_then(|v| serde_json::from_value::<group::GroupState>(v).ok())
                .map(|s| s.master),
            None if matches!(link.gate(singleton::PG), singleton::Gate::Alone) => shared
                .groups
                .lock()
                .ok()
                .and_then(|m| m.get(&g.key).and_then(|s| s.lock().ok().map(|s| s.master))),
            None => None,
        };
        if let Some(i) = master.filter(|i| *i < 2) {
            out.push((g.key.clone(), g.servers[i].pg_host.clone()));
        }
    }
    out
}

/// The lease a controller was started under ([`singleton::Gate::key`]).
type Epoch = Option<Option<u64>>;

/// The group loops and the backup controller as running now, with what
/// they were started from, so a reload restarts only what changed (an
/// unchanged group keeps its timers and any action in progress).
#[derive(Default)]
struct Running {
    groups: BTreeMap<String, (PgGroupResolved, [Duration; 2], Epoch, JoinHandle<()>)>,
    backup: Option<(BackupController, Epoch, JoinHandle<()>)>,
}

impl Running {
    /// Runs what `plan` and the gates allow: in a cluster, a controller
    /// whose lease is held elsewhere does not run here; one started with
    /// another epoch starts over.
    fn reconcile(
        &mut self,
        mut plan: Plan,
        gates: &(singleton::Gate, singleton::Gate),
        shared: &Arc<Shared>,
        remote: &Arc<remote::Remote>,
    ) {
        if !gates.0.runs() {
            plan.groups.clear();
        }
        if !gates.1.runs() {
            plan.backup = None;
        }
        let timing = [plan.grace, plan.poll];
        let epoch = gates.0.key();
        let env = group::Env {
            grace: plan.grace,
            poll: plan.poll,
            remote: remote.clone(),
            pins: shared.pins.clone(),
            state_dir: shared.state_dir.clone(),
            fence: gates.0.fence(),
        };
        let mut statuses = shared.groups.lock().unwrap_or_else(|p| p.into_inner());
        self.groups.retain(|key, (cfg, t, e, task)| {
            let keep = *t == timing && *e == epoch && plan.groups.contains(cfg);
            if !keep {
                task.abort();
                statuses.remove(key);
            }
            keep
        });
        for g in plan.groups {
            if self.groups.contains_key(&g.key) {
                continue;
            }
            let status = Arc::new(Mutex::new(group::GroupStatus {
                key: g.key.clone(),
                log: journal::Journal::group(&shared.state_dir, &g.key)
                    .log_path()
                    .display()
                    .to_string(),
                situation: "starting".into(),
                master: shared.pins.last_master(&g.key),
                ..Default::default()
            }));
            statuses.insert(g.key.clone(), status.clone());
            let task = tokio::spawn(group::run(g.clone(), env.clone(), status));
            self.groups.insert(g.key.clone(), (g, timing, epoch, task));
        }
        drop(statuses);
        let backup_epoch = gates.1.key();
        if self.backup.as_ref().map(|(b, e, _)| (b, e))
            != plan.backup.as_ref().map(|b| (b, &backup_epoch))
        {
            if let Some((_, _, task)) = self.backup.take() {
                task.abort();
            }
            // A removed controller has no next run; a new one sets its own.
            if let Ok(mut b) = shared.backup.lock() {
                b.next = None;
            }
            self.backup = plan.backup.map(|b| {
                let task = tokio::spawn(backup::run(
                    b.clone(),
                    remote.clone(),
                    journal::Journal::backup(&shared.state_dir),
                    shared.backup_now.clone(),
                    shared.backup.clone(),
                    gates.1.fence(),
                ));
                (b, backup_epoch, task)
            });
        }
        shared
            .backup_configured
            .store(self.backup.is_some(), std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            groups = self.groups.len(),
            excluded = plan.excluded.len(),
            grace = plan.grace.as_secs(),
            "pgha ready"
        );
        if let Ok(mut x) = shared.excluded.lock() {
            *x = plan.excluded;
        }
    }

    fn stop(self) {
        let backup = self.backup.into_iter().map(|(_, _, t)| t);
        for task in self
            .groups
            .into_values()
            .map(|(_, _, _, t)| t)
            .chain(backup)
        {
            task.abort();
        }
    }
}
