//! The supervisor: opens the store, starts services in order, answers the
//! control socket, applies configuration changes to running services, and
//! stops everything in reverse order on SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use alpharen_store::{Config, Store, now_unix};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};

use crate::logs::LogHub;
use crate::state::{NodeState, Options, Services};
use crate::{SupervisorError, access, confirm, control, login, privsep, setup};

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

async fn supervise(opts: Options) -> Result<(), SupervisorError> {
    // Before the store is opened (which may migrate it): the copy a
    // failed update's slot gets back (`premigration`).
    let prepared = crate::premigration::prepare(&opts.state_dir, crate::boot::booted_slot())
        .map_err(SupervisorError::Init)?;
    let mut store = Store::open(&opts.state_dir)?;
    if let Some(path) = &opts.config {
        seed(&mut store, path)?;
    }
    let logs = Arc::new(LogHub::new(opts.state_dir.join("log")));
    if let Some(what) = prepared {
        logs.event(&what);
    }
    let restored = crate::premigration::take_note(&opts.state_dir);
    let separate = privsep::available();
    for b in crate::builtin::BUILTINS {
        if store.hand_over(b.name, b.tables)? {
            logs.event(&format!(
                "moved {}'s tables from alpharen.db to {}.db",
                b.name, b.name
            ));
        }
    }
    if separate {
        alpharen_rpc::token::set_new();
        for problem in access::apply(&opts.state_dir) {
            logs.event(&format!("cannot set state directory access: {problem}"));
        }
        if let Some(change) = access::tun_device() {
            logs.event(&change);
        }
    } else {
        logs.event(&format!(
            "running as uid {}, not root: privileges are not separated, every service runs as this user",
            nix::unistd::geteuid()
        ));
    }
    let listener = bind_socket(&alpharen_rpc::control_socket(&opts.state_dir))?;
    let (events, mut events_rx) = mpsc::channel(16);
    let setup = setup::SetupState::init(&store, &opts.state_dir)?;
    let shared = Arc::new(crate::shared::Shared::default());
    let current = store.current_config()?;
    if opts.set_hostname
        && let Err(e) = nix::unistd::sethostname(&current.node.hostname)
    {
        logs.event(&format!(
            "cannot set hostname {}: {e}",
            current.node.hostname
        ));
    }
    shared.retarget(&current, &store);
    store.set_share(Box::new(crate::shared::Hook(shared.clone())));
    let node = Arc::new(NodeState {
        exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
        store: Mutex::new(store),
        services: tokio::sync::Mutex::new(Services::default()),
        logs,
        events,
        started_at: now_unix(),
        pending_changed: Notify::new(),
        shutdown: Notify::new(),
        serving: tokio::sync::watch::Sender::new(Default::default()),
        setup: Mutex::new(setup),
        logins: login::Logins::default(),
        update: tokio::sync::Mutex::new(None),
        reboot_at: Mutex::new(None),
        shared,
        opts,
        separate,
    });
    if let Ok(s) = node.setup.lock()
        && let Some(code) = s.code()
    {
        node.logs.event(&format!(
            "setup required: finish it in the web console with setup code {code} (also in {})",
            node.opts.state_dir.join("setup-code").display()
        ));
    }
    if let Some(what) = restored {
        node.notify("update configuration restored", &what);
    }
    let config = node.config();
    node.start_services(&config).await;
    tokio::spawn(control::serve(listener, node.clone()));
    tokio::spawn(confirm::run(node.clone()));
    tokio::spawn(crate::shared::run(node.clone()));
    if node.opts.under_init || std::env::var_os(crate::install::TARGET_ENV).is_some() {
        tokio::spawn(crate::gate::run(node.clone()));
    }
    let mut term = signal(SignalKind::terminate()).map_err(SupervisorError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(SupervisorError::Runtime)?;
    tokio::spawn(announce_ready(node.clone()));
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
    let _ = std::fs::remove_file(alpharen_rpc::control_socket(&node.opts.state_dir));
    node.logs.event("stopped");
    Ok(())
}

/// "ready" once every built-in service said it is serving (its listeners
/// bound, its socket answering), so what waits for it (a boot test, the
/// boot benchmark, an operator) finds the node answering. After
/// [`READY_WITHIN`] it also says which are not serving yet, and still
/// says "ready" when the last of them comes up later.
async fn announce_ready(node: Arc<NodeState>) {
    let started = tokio::time::Instant::now();
    let socket = alpharen_rpc::control_socket(&node.opts.state_dir);
    let deadline = started + READY_WITHIN;
    let mut late = false;
    let mut changed = node.serving.subscribe();
    let mut before = node.not_serving();
    let mut came = Vec::new();
    loop {
        let waiting = node.not_serving();
        let at = started.elapsed();
        came.extend(
            before
                .iter()
                .filter(|n| !waiting.contains(n))
                .map(|n| (*n, at)),
        );
        before = waiting.clone();
        if waiting.is_empty() {
            node.logs.event(&format!(
                "ready: every service is serving ({:.1} s; last {}); control socket {}",
                at.as_secs_f64(),
                last_to_serve(&came, 3),
                socket.display()
            ));
            return;
        }
        let heard = if late {
            Ok(changed.changed().await)
        } else {
            tokio::time::timeout_at(deadline, changed.changed()).await
        };
        match heard {
            Ok(Ok(())) => {}
            // The node's state is gone: nothing is left to announce.
            Ok(Err(_)) => return,
            Err(_) => {
                late = true;
                node.logs.event(&format!(
                    "not ready: after {} s, still not serving: {}; control socket {}",
                    READY_WITHIN.as_secs(),
                    waiting.join(", "),
                    socket.display()
                ));
            }
        }
    }
}

/// The `n` services that took longest to serve, slowest first, for the
/// "ready" line (what a slow boot waits for).
fn last_to_serve(came: &[(&str, std::time::Duration)], n: usize) -> String {
    let mut by_time = came.to_vec();
    by_time.sort_by_key(|c| std::cmp::Reverse(c.1));
    by_time
        .iter()
        .take(n)
        .map(|(name, at)| format!("{name} {:.1} s", at.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How long services get to say they serve before the node says which
/// did not.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_slowest_services_come_first() {
        let ms = Duration::from_millis;
        let came = [
            ("net", ms(100)),
            ("web", ms(1400)),
            ("dpx", ms(900)),
            ("ssh", ms(1200)),
        ];
        assert_eq!(
            super::last_to_serve(&came, 3),
            "web 1.4 s, ssh 1.2 s, dpx 0.9 s"
        );
        assert_eq!(super::last_to_serve(&[], 3), "");
    }
}
