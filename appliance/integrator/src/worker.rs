//! Python worker processes and the pool that hands them requests. User
//! code runs only there: a worker that hangs, dies or outgrows its memory
//! limit is killed and replaced, and only the request it held fails.
//! Workers run confined ([`crate::sandbox`]).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

use crate::lb;
use crate::sandbox::{self, Sandbox};

/// Largest frame a worker may send; a bigger one means it is broken.
const MAX_FRAME: usize = 64 << 20;
/// How long a worker may take to load the deployed code.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct Spec {
    pub python: PathBuf,
    pub sdk_dir: PathBuf,
    /// The uploaded packages' directories, after the standard library on
    /// `sys.path` (`packages.rs`).
    pub packages: Vec<PathBuf>,
    /// MiB of address space (RLIMIT_AS); 0 = no limit.
    pub memory_limit: u64,
}

/// Answers the requests a worker sends while it runs a call (KV, publish,
/// locks, invoke_async, SQL): the integrator owns SQLite and the database
/// connections, the worker only asks.
pub trait Host: Send + Sync {
    /// The host of one call; what the call opened (SQL sessions) is
    /// released when it is dropped, however the call ended.
    fn begin(&self) -> Box<dyn CallHost>;
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// One call's requests, answered in order.
pub trait CallHost: Send {
    fn call<'a>(&'a mut self, req: &'a Value) -> BoxFuture<'a, Value>;
}

/// Why a round trip failed; either way the worker is gone.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("worker died: {0}")]
    Died(String),
}

pub struct Worker {
    pub id: u64,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Code generation this worker has loaded.
    generation: u64,
    /// The spec generation it was started with ([`Pool::restart`]).
    spec_generation: u64,
    rtt_us: f64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The path of the python3 to run: the system one when present.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ALPHAREN_PYTHON") {
        return PathBuf::from(p);
    }
    let sys = PathBuf::from("/usr/bin/python3");
    if sys.exists() {
        sys
    } else {
        PathBuf::from("python3")
    }
}

impl Worker {
    pub async fn spawn(spec: &Spec) -> std::io::Result<Worker> {
        let sandbox = Sandbox::new(&spec.python, &spec.sdk_dir)?;
        let mut cmd = Command::new(&spec.python);
        cmd.args(["-I", "-S", "-u", "-c"])
            .arg("import sys; sys.path.insert(0, sys.argv[1]); sys.path += sys.argv[2:]; import alpharen.worker as w; w.main()")
            .arg(&spec.sdk_dir)
            .args(&spec.packages)
            .env_clear()
            .envs(sandbox::ENV.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let limit = spec.memory_limit.saturating_mul(1 << 20);
        let confine = sandbox.child();
        // SAFETY: only async-signal-safe setrlimit, prctl and
        // landlock_restrict_self run between fork and exec, on values
        // computed before the fork; `sandbox` outlives the spawn.
        unsafe {
            cmd.pre_exec(move || {
                if limit > 0 {
                    let rl = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                confine.apply()
            });
        }
        let mut child = cmd.spawn()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("worker pipes missing"));
        };
        // User output and logging: one tracing line per line written.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(worker = id, "{line}");
            }
        });
        let mut w = Worker {
            id,
            child,
            stdin,
            stdout: BufReader::new(stdout),
            generation: 0,
            spec_generation: 0,
            rtt_us: 0.0,
        };
        let started = Instant::now();
        w.roundtrip(&json!({"op": "ping"}), SYNC_TIMEOUT)
            .await
            .map_err(|e| std::io::Error::other(format!("worker {id} did not start: {e}")))?;
        w.rtt_us = started.elapsed().as_micros() as f64;
        Ok(w)
    }

    /// Sends one frame and reads one back within `limit`. Frames with
    /// `"op": "host"` before the answer are requests of the running service,
    /// answered by `host` (or refused when there is none, e.g. validation).
    pub async fn roundtrip(&mut self, msg: &Value, limit: Duration) -> Result<Value, Failure> {
        self.roundtrip_with(msg, limit, None).await
    }

    pub async fn roundtrip_with(
        &mut self,
        msg: &Value,
        limit: Duration,
        host: Option<&dyn Host>,
    ) -> Result<Value, Failure> {
        let data = serde_json::to_vec(msg).map_err(|e| Failure::Died(e.to_string()))?;
        let len = u32::try_from(data.len())
            .map_err(|_| Failure::Died("request frame too large".into()))?;
        let mut frame = Vec::with_capacity(data.len() + 4);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&data);
        let stdin = &mut self.stdin;
        let stdout = &mut self.stdout;
        let mut scope = host.map(|h| h.begin());
        let io = async {
            stdin.write_all(&frame).await?;
            stdin.flush().await?;
            loop {
                let mut head = [0u8; 4];
                stdout.read_exact(&mut head).await?;
                let n = u32::from_be_bytes(head) as usize;
                if n > MAX_FRAME {
                    return Err(std::io::Error::other(format!("frame of {n} bytes")));
                }
                let mut buf = vec![0u8; n];
                stdout.read_exact(&mut buf).await?;
                let v: Value = serde_json::from_slice(&buf)
                    .map_err(|e| std::io::Error::other(format!("bad frame: {e}")))?;
                if v["op"] != json!("host") {
                    return Ok(v);
                }
                let answer = match scope.as_mut() {
                    Some(h) => h.call(&v).await,
                    None => json!({"ok": false, "code": "unavailable",
                                   "error": "not available while a file is validated"}),
                };
                let data = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
                let len = u32::try_from(data.len()).map_err(std::io::Error::other)?;
                let mut out = Vec::with_capacity(data.len() + 4);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&data);
                stdin.write_all(&out).await?;
                stdin.flush().await?;
            }
        };
        match tokio::time::timeout(limit, io).await {
            Err(_) => Err(Failure::Timeout(limit)),
            Ok(Err(e)) => Err(Failure::Died(self.exit_reason(e).await)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    async fn exit_reason(&mut self, e: std::io::Error) -> String {
        // The pipe closes a moment before the process is reapable.
        match tokio::time::timeout(Duration::from_millis(200), self.child.wait()).await {
            Ok(Ok(status)) => format!("exited ({status})"),
            _ => e.to_string(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The deployed code and outgoing definitions, as one `sync` frame.
#[derive(Debug, Clone)]
pub struct CodeSet {
    pub generation: u64,
    pub sync: Value,
}

/// Result of running a call in a worker.
pub enum Outcome {
    /// The worker answered (possibly with an error status of the service).
    Reply(Value),
    /// No worker became free in time.
    Busy,
    /// The worker timed out or died; it has been replaced.
    Failed(Failure),
}

pub struct Pool {
    spec: RwLock<Spec>,
    idle: Mutex<Vec<Worker>>,
    /// One permit per idle worker.
    permits: Semaphore,
    code: RwLock<Arc<CodeSet>>,
    target: AtomicUsize,
    /// Whether workers run: from the first message to run or the first
    /// deployed service on ([`Pool::wake`]). An integrator with nothing
    /// deployed runs no Python at all: no interpreter starts at boot and
    /// none sits idle in memory.
    woken: AtomicBool,
    alive: AtomicUsize,
    pub replaced: AtomicU64,
    stopping: AtomicBool,
    host: std::sync::OnceLock<Arc<dyn Host>>,
    /// Bumped by [`Pool::restart`]; workers of an older one retire.
    spec_generation: AtomicU64,
    /// Workers alive that were started before the last restart.
    stale: AtomicUsize,
}

impl Pool {
    /// Who answers the workers' own requests during calls (set once).
    pub fn set_host(&self, host: Arc<dyn Host>) {
        let _ = self.host.set(host);
    }

    pub fn new(spec: Spec, target: usize, code: CodeSet) -> Arc<Pool> {
        Arc::new(Pool {
            spec: RwLock::new(spec),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(0),
            code: RwLock::new(Arc::new(code)),
            target: AtomicUsize::new(target),
            woken: AtomicBool::new(false),
            alive: AtomicUsize::new(0),
            replaced: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            host: std::sync::OnceLock::new(),
            spec_generation: AtomicU64::new(0),
            stale: AtomicUsize::new(0),
        })
    }

    pub fn spec(&self) -> Spec {
        self.spec
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn set_spec(&self, spec: Spec) {
        if let Ok(mut s) = self.spec.write() {
            *s = spec;
        }
    }

    pub fn code(&self) -> Arc<CodeSet> {
        self.code
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// New code for every worker; each loads it before its next request,
    /// so requests in flight finish on the version they started with.
    pub fn set_code(&self, code: CodeSet) {
        if let Ok(mut c) = self.code.write() {
            *c = Arc::new(code);
        }
    }

    /// New workers on `spec` (new packages), without dropping a request:
    /// a full set of new workers starts now; each old one retires when it
    /// comes back from the request it serves, or, idle, when a new one is
    /// ready to take its place.
    pub fn restart(self: &Arc<Self>, spec: Spec) {
        self.set_spec(spec);
        self.spec_generation.fetch_add(1, Ordering::Relaxed);
        if !self.woken.load(Ordering::Relaxed) {
            // No worker to replace: the first ones start on the new spec.
            return;
        }
        let alive = self.alive.load(Ordering::Relaxed);
        self.stale.store(alive, Ordering::Relaxed);
        let target = self.target.load(Ordering::Relaxed);
        self.alive.fetch_add(target, Ordering::Relaxed);
        for _ in 0..target {
            self.clone().start_one();
        }
    }

    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Whether a message can run here: a worker is alive, or the first
    /// ones start when it comes.
    pub fn can_serve(&self) -> bool {
        self.alive() > 0
            || (!self.woken.load(Ordering::Relaxed) && self.target.load(Ordering::Relaxed) > 0)
    }

    /// Sets the worker count to `target`: brought up at once once the
    /// pool is woken (down happens as workers come back idle).
    pub fn resize(self: &Arc<Self>, target: usize) {
        self.target.store(target, Ordering::Relaxed);
        if self.woken.load(Ordering::Relaxed) {
            self.fill();
        }
    }

    /// Starts the workers, once: on the first message to run, or when a
    /// service is deployed (so its first call does not wait for them).
    pub fn wake(self: &Arc<Self>) {
        // Every call comes through here: a load, not a write to the shared
        // line, once the pool is awake.
        if !self.woken.load(Ordering::Relaxed) && !self.woken.swap(true, Ordering::Relaxed) {
            self.fill();
        }
    }

    /// Starts workers up to the target.
    fn fill(self: &Arc<Self>) {
        let target = self.target.load(Ordering::Relaxed);
        let alive = self.alive.load(Ordering::Relaxed);
        for _ in alive..target {
            self.alive.fetch_add(1, Ordering::Relaxed);
            self.clone().start_one();
        }
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Ok(mut v) = self.idle.lock() {
            v.clear();
        }
    }

    /// Starts a worker in the background (its slot is already counted in
    /// `alive`), retrying with backoff until it runs.
    fn start_one(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            let spec_generation = self.spec_generation.load(Ordering::Relaxed);
            while !self.stopping.load(Ordering::Relaxed) {
                if spec_generation != self.spec_generation.load(Ordering::Relaxed) {
                    // A restart counted this slot as stale and started its
                    // successor already.
                    self.stale.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                match Worker::spawn(&self.spec()).await {
                    Ok(mut w) => match self.sync(&mut w).await {
                        Ok(()) => {
                            tracing::info!(
                                worker = w.id,
                                pid = w.pid().unwrap_or(0),
                                "worker ready"
                            );
                            w.spec_generation = spec_generation;
                            if spec_generation == self.spec_generation.load(Ordering::Relaxed) {
                                self.retire_one_stale_idle();
                            }
                            self.give_back(w);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "new worker could not load the services")
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot start a python worker"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            self.alive.fetch_sub(1, Ordering::Relaxed);
        });
    }

    async fn sync(&self, w: &mut Worker) -> Result<(), Failure> {
        let code = self.code();
        if w.generation == code.generation {
            return Ok(());
        }
        let reply = w.roundtrip(&code.sync, SYNC_TIMEOUT).await?;
        if reply["ok"] != json!(true) {
            tracing::warn!(worker = w.id, error = %reply["error"], "worker could not load some services");
        }
        w.generation = code.generation;
        Ok(())
    }

    /// A new worker is ready: one idle worker of an older spec goes (its
    /// permit taken first, so no checkout counts on it).
    fn retire_one_stale_idle(&self) {
        let current = self.spec_generation.load(Ordering::Relaxed);
        let Ok(permit) = self.permits.try_acquire() else {
            return;
        };
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        match idle.iter().position(|w| w.spec_generation != current) {
            Some(i) => {
                permit.forget();
                drop(idle.swap_remove(i));
                self.stale.fetch_sub(1, Ordering::Relaxed);
                self.alive.fetch_sub(1, Ordering::Relaxed);
            }
            None => drop(permit),
        }
    }

    fn give_back(&self, w: Worker) {
        if w.spec_generation != self.spec_generation.load(Ordering::Relaxed) {
            self.stale.fetch_sub(1, Ordering::Relaxed);
            self.alive.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let current = self
            .alive
            .load(Ordering::Relaxed)
            .saturating_sub(self.stale.load(Ordering::Relaxed));
        let too_many = current > self.target.load(Ordering::Relaxed);
        if too_many || self.stopping.load(Ordering::Relaxed) {
            self.alive.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if let Ok(mut v) = self.idle.lock() {
            v.push(w);
            self.permits.add_permits(1);
        }
    }

    /// A worker failed: count it and start its replacement.
    fn replace(self: &Arc<Self>, w: Worker, why: &Failure) {
        tracing::warn!(worker = w.id, pid = w.pid().unwrap_or(0), reason = %why, "worker killed, starting a replacement");
        let stale = w.spec_generation != self.spec_generation.load(Ordering::Relaxed);
        drop(w); // kill_on_drop
        self.replaced.fetch_add(1, Ordering::Relaxed);
        if stale {
            // Its successor on the new spec is already running.
            self.stale.fetch_sub(1, Ordering::Relaxed);
            self.alive.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.clone().start_one();
        }
    }

    /// Takes the idle worker the balancer prefers, waiting until `deadline`.
    async fn checkout(&self, deadline: Instant) -> Option<Worker> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let permit = tokio::time::timeout(wait, self.permits.acquire())
            .await
            .ok()?
            .ok()?;
        permit.forget();
        let mut idle = self.idle.lock().ok()?;
        let cands: Vec<lb::Candidate> = idle
            .iter()
            .map(|w| lb::Candidate {
                healthy: true,
                in_flight: 0,
                rtt_us: w.rtt_us,
            })
            .collect();
        let i = lb::choose(&cands)?;
        Some(idle.swap_remove(i))
    }

    /// Runs one message (a call or a validation) in a pooled worker.
    pub async fn run(self: &Arc<Self>, msg: &Value, deadline: Instant) -> Outcome {
        self.wake();
        let Some(mut w) = self.checkout(deadline).await else {
            return Outcome::Busy;
        };
        if let Err(e) = self.sync(&mut w).await {
            self.replace(w, &e);
            return Outcome::Failed(e);
        }
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let started = Instant::now();
        let host = self.host.get().map(|h| h.as_ref());
        match w.roundtrip_with(msg, limit, host).await {
            Ok(reply) => {
                w.rtt_us = lb::ewma(w.rtt_us, started.elapsed().as_micros() as f64);
                if reply["fatal"] == json!(true) {
                    // The worker exits by itself after a fatal answer.
                    let why = Failure::Died(reply["error"].as_str().unwrap_or("fatal").to_string());
                    self.replace(w, &why);
                } else {
                    self.give_back(w);
                }
                Outcome::Reply(reply)
            }
            Err(e) => {
                let out = match &e {
                    Failure::Timeout(d) => Failure::Timeout(*d),
                    Failure::Died(m) => Failure::Died(m.clone()),
                };
                self.replace(w, &e);
                Outcome::Failed(out)
            }
        }
    }
}

/// Runs a message in a fresh worker that is thrown away afterwards: deploys
/// are validated where they cannot disturb the serving workers.
pub async fn in_fresh_worker(spec: &Spec, msg: &Value, limit: Duration) -> Result<Value, Failure> {
    let mut w = Worker::spawn(spec)
        .await
        .map_err(|e| Failure::Died(e.to_string()))?;
    w.roundtrip(msg, limit).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            python: PathBuf::from("/nonexistent/python3"),
            sdk_dir: PathBuf::new(),
            packages: Vec::new(),
            memory_limit: 0,
        }
    }

    #[tokio::test]
    async fn workers_start_only_once_woken_then_follow_the_target() {
        let code = CodeSet {
            generation: 0,
            sync: json!({}),
        };
        let p = Pool::new(spec(), 0, code);
        assert!(!p.can_serve(), "no worker wanted");
        p.resize(2);
        p.restart(spec());
        assert_eq!(p.alive(), 0, "nothing deployed, nothing run: no worker");
        assert!(p.can_serve(), "the first message starts them");
        p.wake();
        assert_eq!(p.alive(), 2);
        p.wake();
        assert_eq!(p.alive(), 2, "woken once");
        p.resize(3);
        assert_eq!(p.alive(), 3);
        p.stop();
    }
}
