//! One supervised process: start it, capture its output, restart it by the
//! policy, stop it gracefully (SIGTERM to its process group, 10 s, SIGKILL).
//! Each service is one task that owns its child; others talk to it through
//! commands.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::config::RestartMode;
use alpharen_store::now_unix;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::logs::LogHub;
use crate::policy::{Decision, RestartPolicy};

pub const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub restart: RestartMode,
    /// The user and capabilities it runs with; `None` keeps the
    /// supervisor's own (extra services, or a supervisor that is not root).
    pub drop: Option<crate::privsep::Drop>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub pid: Option<u32>,
    pub restarts: u32,
    /// Unix seconds when the current state began.
    pub since: i64,
    pub last_exit: Option<String>,
}

/// A process started by a restart, for the one who asked.
pub struct Started {
    pub pid: u32,
    /// How it exited, if it exits by itself; closed without a word when a
    /// command stops or replaces it.
    pub exited: oneshot::Receiver<String>,
}

pub enum Cmd {
    /// Hears of the new process once it runs (`None`: it could not be
    /// started).
    Restart(oneshot::Sender<Option<Started>>),
    Reload,
    Replace(ServiceSpec),
    Stop(oneshot::Sender<()>),
}

/// Things the supervisor must hear about.
pub enum Event {
    Failed { name: String, last_exit: String },
}

pub struct ServiceHandle {
    pub spec: ServiceSpec,
    pub status: Arc<Mutex<ServiceStatus>>,
    pub tx: mpsc::Sender<Cmd>,
}

impl ServiceHandle {
    pub fn status(&self) -> Option<ServiceStatus> {
        self.status.lock().ok().map(|s| s.clone())
    }

    /// Stops the service and waits until its process is gone.
    pub async fn stop(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Cmd::Stop(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

pub fn spawn(
    spec: ServiceSpec,
    kind: &'static str,
    logs: Arc<LogHub>,
    events: mpsc::Sender<Event>,
) -> ServiceHandle {
    let status = Arc::new(Mutex::new(ServiceStatus {
        name: spec.name.clone(),
        kind,
        state: "starting",
        pid: None,
        restarts: 0,
        since: now_unix(),
        last_exit: None,
    }));
    let (tx, rx) = mpsc::channel(8);
    let runner = Runner {
        spec: spec.clone(),
        status: status.clone(),
        logs,
        events,
        restarted: None,
    };
    tokio::spawn(runner.run(rx));
    ServiceHandle { spec, status, tx }
}

struct Runner {
    spec: ServiceSpec,
    status: Arc<Mutex<ServiceStatus>>,
    logs: Arc<LogHub>,
    events: mpsc::Sender<Event>,
    /// Who asked for the restart in progress, told of the new process.
    restarted: Option<oneshot::Sender<Option<Started>>>,
}

/// What to do after the child is gone.
enum Next {
    Start,
    Quit,
}

fn describe(status: &std::io::Result<ExitStatus>) -> (bool, String) {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) if s.success() => (true, "exited with status 0".into()),
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => (false, format!("exited with status {c}")),
            (_, Some(sig)) => (
                false,
                format!(
                    "killed by signal {}",
                    Signal::try_from(sig).map_or(sig.to_string(), |s| s.to_string())
                ),
            ),
            _ => (false, "exited".into()),
        },
        Err(e) => (false, format!("could not be started: {e}")),
    }
}

impl Runner {
    fn set(&self, state: &'static str, pid: Option<u32>, last_exit: Option<String>) {
        if let Ok(mut s) = self.status.lock() {
            s.state = state;
            s.pid = pid;
            s.since = now_unix();
            if last_exit.is_some() {
                s.last_exit = last_exit;
            }
        }
    }

    fn start(&self) -> std::io::Result<Child> {
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .envs(&self.spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(drop) = self.spec.drop {
            // SAFETY: `apply` makes only async-signal-safe syscalls on the
            // child itself, from a value computed before the fork. It runs
            // before PR_SET_PDEATHSIG below, which a change of uid clears.
            unsafe {
                cmd.pre_exec(move || drop.apply());
            }
        }
        // SAFETY: prctl is async-signal-safe and touches only the child's own
        // process attributes; it makes the kernel kill the service if the
        // supervisor dies, so no orphan keeps a port or a file lock.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(capture(
                out,
                self.spec.name.clone(),
                "out",
                self.logs.clone(),
            ));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(capture(
                err,
                self.spec.name.clone(),
                "err",
                self.logs.clone(),
            ));
        }
        Ok(child)
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut policy = RestartPolicy::new(self.spec.restart);
        loop {
            let started = Instant::now();
            let child = self.start();
            let mut exited = None;
            if let Some(asked) = self.restarted.take() {
                let started = child.as_ref().ok().and_then(Child::id).map(|pid| {
                    let (tx, rx) = oneshot::channel();
                    exited = Some(tx);
                    Started { pid, exited: rx }
                });
                let _ = asked.send(started);
            }
            let exit = match child {
                Ok(mut child) => {
                    let pid = child.id();
                    self.set("running", pid, None);
                    self.logs.event(&format!(
                        "{} started (pid {})",
                        self.spec.name,
                        pid.unwrap_or(0)
                    ));
                    match self.supervise(&mut child, &mut rx, &mut policy).await {
                        Some(next) => {
                            if let Next::Quit = next {
                                return;
                            }
                            continue;
                        }
                        None => child.wait().await,
                    }
                }
                Err(e) => Err(e),
            };
            let (success, how) = describe(&exit);
            if let Some(tx) = exited.take() {
                let _ = tx.send(how.clone());
            }
            let what = format!("{} {how}", self.spec.name);
            self.logs.event(&what);
            if let Ok(mut s) = self.status.lock() {
                s.restarts += 1;
            }
            let next = match policy.on_exit(Instant::now(), started.elapsed(), success) {
                Decision::RestartAfter(delay) => {
                    self.set("backoff", None, Some(what));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => Next::Start,
                        cmd = rx.recv() => self.idle_command(cmd, &mut policy),
                    }
                }
                Decision::Failed => {
                    self.set("failed", None, Some(what.clone()));
                    self.logs.event(&format!(
                        "{} crashed {} times within {} s and is now marked failed; `alpharen ctl restart {}` retries it",
                        self.spec.name,
                        crate::policy::CRASH_LIMIT,
                        crate::policy::CRASH_WINDOW.as_secs(),
                        self.spec.name
                    ));
                    let _ = self
                        .events
                        .send(Event::Failed {
                            name: self.spec.name.clone(),
                            last_exit: what,
                        })
                        .await;
                    self.wait_command(&mut rx, &mut policy).await
                }
                Decision::Stay => {
                    self.set("exited", None, Some(what));
                    self.wait_command(&mut rx, &mut policy).await
                }
            };
            if let Next::Quit = next {
                return;
            }
        }
    }

    /// While the child runs: returns `None` when it exits by itself, or what
    /// to do after a command stopped it.
    async fn supervise(
        &mut self,
        child: &mut Child,
        rx: &mut mpsc::Receiver<Cmd>,
        policy: &mut RestartPolicy,
    ) -> Option<Next> {
        loop {
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Reload) => {
                        if let Some(pid) = child.id() {
                            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGHUP);
                        }
                    }
                    Some(Cmd::Restart(asked)) => {
                        terminate(child).await;
                        self.restarted = Some(asked);
                        policy.reset();
                        return Some(Next::Start);
                    }
                    Some(Cmd::Replace(spec)) => {
                        terminate(child).await;
                        *policy = RestartPolicy::new(spec.restart);
                        self.spec = spec;
                        return Some(Next::Start);
                    }
                    Some(Cmd::Stop(done)) => {
                        terminate(child).await;
                        self.set("stopped", None, None);
                        let _ = done.send(());
                        return Some(Next::Quit);
                    }
                    None => {
                        terminate(child).await;
                        return Some(Next::Quit);
                    }
                },
                _ = child.wait() => return None,
            }
        }
    }

    /// A command arriving while no child runs.
    fn idle_command(&mut self, cmd: Option<Cmd>, policy: &mut RestartPolicy) -> Next {
        match cmd {
            Some(Cmd::Restart(asked)) => {
                self.restarted = Some(asked);
                policy.reset();
                Next::Start
            }
            Some(Cmd::Replace(spec)) => {
                *policy = RestartPolicy::new(spec.restart);
                self.spec = spec;
                Next::Start
            }
            Some(Cmd::Reload) => Next::Start,
            Some(Cmd::Stop(done)) => {
                self.set("stopped", None, None);
                let _ = done.send(());
                Next::Quit
            }
            None => Next::Quit,
        }
    }

    /// Failed or exited for good: wait until someone restarts or stops it.
    async fn wait_command(
        &mut self,
        rx: &mut mpsc::Receiver<Cmd>,
        policy: &mut RestartPolicy,
    ) -> Next {
        loop {
            let cmd = rx.recv().await;
            if matches!(cmd, Some(Cmd::Reload)) {
                continue;
            }
            return self.idle_command(cmd, policy);
        }
    }
}

/// SIGTERM to the whole process group, SIGKILL after the grace period.
async fn terminate(child: &mut Child) {
    let Some(pid) = child.id() else {
        return;
    };
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

/// Copies a child's output into the log hub line by line, bounding each line
/// so a child cannot make us buffer without limit.
async fn capture(
    stream: impl AsyncRead + Unpin,
    service: String,
    name: &'static str,
    logs: Arc<LogHub>,
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => logs.push(&service, name, &String::from_utf8_lossy(&buf)),
        }
    }
}
