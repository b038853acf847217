//! Active health checks for proxy routes with a `[dpx.routes.health]`
//! block: one task per route probes the backend on a clock and takes it out
//! of service after `fails` failed probes in a row, back after `passes`
//! good ones. The counting is [`Verdict`], free of I/O and clocks;
//! [`watch`] runs it with any probe so tests can drive it on a paused clock.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::config::HealthCheck;
use tokio::time::{MissedTickBehavior, interval, timeout};

/// Up or down from consecutive probe results. A backend starts up, as in
/// nginx and HAProxy, so a new or changed route serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    up: bool,
    /// Probes in a row that disagree with `up`.
    streak: u32,
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict {
            up: true,
            streak: 0,
        }
    }
}

impl Verdict {
    /// Counts one probe; the new state when this probe changes it.
    pub fn record(&mut self, ok: bool, fails: u32, passes: u32) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { fails } else { passes };
        if self.streak < needed {
            return None;
        }
        self.up = ok;
        self.streak = 0;
        Some(ok)
    }
}

/// What requests see: why the backend is out of service, if it is.
#[derive(Debug, Default)]
pub struct Health {
    down: Mutex<Option<String>>,
    /// Whether `down` holds a reason: read by every request without
    /// taking the lock while the backend is up.
    is_down: AtomicBool,
}

impl Health {
    /// The failure that took the backend out of service; `None` while up.
    pub fn down(&self) -> Option<String> {
        if !self.is_down.load(Ordering::Acquire) {
            return None;
        }
        self.down.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, down: Option<String>) {
        let mut g = self.down.lock().unwrap_or_else(|p| p.into_inner());
        self.is_down.store(down.is_some(), Ordering::Release);
        *g = down;
    }
}

/// Probes every `check.interval` seconds (the first at once) until the task
/// is aborted; a probe slower than `check.timeout` counts as failed.
pub async fn watch<P, F>(host: String, check: HealthCheck, health: Arc<Health>, mut probe: P)
where
    P: FnMut() -> F,
    F: Future<Output = Result<(), String>>,
{
    let mut verdict = Verdict::default();
    let mut tick = interval(Duration::from_secs(check.interval));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = timeout(Duration::from_secs(check.timeout), probe())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", check.timeout)));
        if verdict
            .record(result.is_ok(), check.fails, check.passes)
            .is_none()
        {
            continue;
        }
        match result {
            Ok(()) => {
                tracing::info!(host, "backend passed its health check: back in service");
                health.set(None);
            }
            Err(reason) => {
                tracing::warn!(
                    host,
                    reason,
                    "backend failed its health check: out of service"
                );
                health.set(Some(reason));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use tokio::time::sleep;

    #[test]
    fn fails_in_a_row_take_it_down_and_passes_bring_it_back() {
        let mut v = Verdict::default();
        assert_eq!(v.record(false, 2, 1), None);
        assert_eq!(v.record(true, 2, 1), None, "a good probe resets the count");
        assert_eq!(v.record(false, 2, 1), None);
        assert_eq!(v.record(false, 2, 1), Some(false));
        assert_eq!(v.record(false, 2, 1), None, "already down");
        assert_eq!(v.record(true, 2, 3), None);
        assert_eq!(v.record(false, 2, 3), None, "a bad probe resets the count");
        assert_eq!(v.record(true, 2, 3), None);
        assert_eq!(v.record(true, 2, 3), None);
        assert_eq!(v.record(true, 2, 3), Some(true));
        assert_eq!(v.record(false, 1, 1), Some(false), "fails = 1 acts at once");
    }

    fn check(fails: u32, passes: u32) -> HealthCheck {
        HealthCheck {
            interval: 10,
            timeout: 5,
            fails,
            passes,
            ..HealthCheck::default()
        }
    }

    /// Runs `watch` with a probe answering from `script` (then Ok) and
    /// returns the shared state and the number of probes so far.
    fn scripted(
        check: HealthCheck,
        script: Vec<Option<Result<(), String>>>,
    ) -> (Arc<Health>, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let health = Arc::new(Health::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let task = tokio::spawn(watch("app.test".into(), check, health.clone(), move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let answer = script.get(n).cloned().unwrap_or(Some(Ok(())));
            async move {
                match answer {
                    Some(r) => r,
                    None => std::future::pending().await,
                }
            }
        }));
        (health, calls, task)
    }

    #[tokio::test(start_paused = true)]
    async fn probes_on_the_interval_and_follow_the_thresholds() {
        let bad = || Some(Err("status 500".to_string()));
        let (health, calls, task) = scripted(check(2, 2), vec![bad(), bad(), Some(Ok(())), bad()]);
        sleep(Duration::from_secs(5)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "first probe at once");
        assert_eq!(health.down(), None, "one failure is not enough");
        sleep(Duration::from_secs(10)).await; // t = 15
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(health.down().as_deref(), Some("status 500"));
        sleep(Duration::from_secs(20)).await; // t = 35: ok, bad
        assert!(health.down().is_some(), "passes = 2 needs two in a row");
        sleep(Duration::from_secs(20)).await; // t = 55: ok, ok
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        assert_eq!(health.down(), None);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_hangs_fails_at_the_timeout() {
        let (health, calls, task) = scripted(check(1, 1), vec![None]);
        sleep(Duration::from_secs(4)).await;
        assert_eq!(health.down(), None, "still within the 5 s timeout");
        sleep(Duration::from_secs(2)).await; // t = 6
        assert_eq!(health.down().as_deref(), Some("no answer within 5 s"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        sleep(Duration::from_secs(5)).await; // t = 11: the next probe answers
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(health.down(), None);
        task.abort();
    }
}
