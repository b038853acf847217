//! The pool of Python workers ([`crate::worker`]) that hands them
//! requests: started once something needs them, kept at the configured
//! count, each given the deployed code before it serves, and replaced
//! when one hangs or dies.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::lb;
use crate::worker::{Failure, Host, SYNC_TIMEOUT, Spec, Worker};

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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
