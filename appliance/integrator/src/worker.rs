//! Python worker processes, one request at a time each. User code runs
//! only there: a worker that hangs, dies or outgrows its memory limit is
//! killed and replaced ([`crate::pool`]), and only the request it held
//! fails. Workers run confined ([`crate::sandbox`]).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::sandbox::{self, Sandbox};

/// Largest frame a worker may send; a bigger one means it is broken.
const MAX_FRAME: usize = 64 << 20;
/// How long a worker may take to start or to load the deployed code.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

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
    pub(crate) generation: u64,
    /// The spec generation it was started with
    /// ([`crate::pool::Pool::restart`]).
    pub(crate) spec_generation: u64,
    pub(crate) rtt_us: f64,
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

/// Runs a message in a fresh worker that is thrown away afterwards: deploys
/// are validated where they cannot disturb the serving workers.
pub async fn in_fresh_worker(spec: &Spec, msg: &Value, limit: Duration) -> Result<Value, Failure> {
    let mut w = Worker::spawn(spec)
        .await
        .map_err(|e| Failure::Died(e.to_string()))?;
    w.roundtrip(msg, limit).await
}
