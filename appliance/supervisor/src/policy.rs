//! Restart policy: when a service exits, restart it after a backoff that
//! doubles from 1 s to 30 s, reset once it has run 60 s; five exits within
//! 60 s mean a crash loop and the service is marked failed until someone
//! restarts it by hand. Pure: the caller supplies the time.

use std::collections::VecDeque;
use std::time::Duration;

use alpharen_store::config::RestartMode;
use tokio::time::Instant;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);
pub const CRASH_LIMIT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RestartAfter(Duration),
    /// Crash loop: stop trying and tell the admin.
    Failed,
    /// The restart mode says to leave it stopped.
    Stay,
}

#[derive(Debug)]
pub struct RestartPolicy {
    mode: RestartMode,
    exits: VecDeque<Instant>,
    backoff: Duration,
}

impl RestartPolicy {
    pub fn new(mode: RestartMode) -> RestartPolicy {
        RestartPolicy {
            mode,
            exits: VecDeque::new(),
            backoff: INITIAL_BACKOFF,
        }
    }

    /// Decides after an exit at `now`, following a run of `ran`.
    pub fn on_exit(&mut self, now: Instant, ran: Duration, success: bool) -> Decision {
        if self.mode == RestartMode::Never || (self.mode == RestartMode::OnFailure && success) {
            return Decision::Stay;
        }
        if ran >= HEALTHY_AFTER {
            self.backoff = INITIAL_BACKOFF;
        }
        self.exits.push_back(now);
        while self
            .exits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= CRASH_WINDOW)
        {
            self.exits.pop_front();
        }
        if self.exits.len() >= CRASH_LIMIT {
            self.reset();
            return Decision::Failed;
        }
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Decision::RestartAfter(delay)
    }

    /// A manual restart forgives the history.
    pub fn reset(&mut self) {
        self.exits.clear();
        self.backoff = INITIAL_BACKOFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(100);

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_until_crash_loop_marks_service_failed() {
        let mut p = RestartPolicy::new(RestartMode::Always);
        let mut delays = Vec::new();
        for _ in 0..4 {
            match p.on_exit(Instant::now(), QUICK, false) {
                Decision::RestartAfter(d) => {
                    delays.push(d.as_secs());
                    tokio::time::advance(d).await;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(delays, vec![1, 2, 4, 8]);
        assert_eq!(p.on_exit(Instant::now(), QUICK, false), Decision::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_capped_at_thirty_seconds() {
        let mut p = RestartPolicy::new(RestartMode::Always);
        let mut last = Duration::ZERO;
        // Spaced 61 s apart so the crash window never fills, but runs are short.
        for _ in 0..8 {
            if let Decision::RestartAfter(d) = p.on_exit(Instant::now(), QUICK, false) {
                last = d;
            }
            tokio::time::advance(Duration::from_secs(61)).await;
        }
        assert_eq!(last, MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_run_resets_backoff() {
        let mut p = RestartPolicy::new(RestartMode::Always);
        p.on_exit(Instant::now(), QUICK, false);
        p.on_exit(Instant::now(), QUICK, false);
        tokio::time::advance(Duration::from_secs(120)).await;
        assert_eq!(
            p.on_exit(Instant::now(), HEALTHY_AFTER, false),
            Decision::RestartAfter(INITIAL_BACKOFF)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn exits_spread_over_more_than_a_minute_are_not_a_loop() {
        let mut p = RestartPolicy::new(RestartMode::Always);
        for _ in 0..10 {
            assert_ne!(p.on_exit(Instant::now(), QUICK, false), Decision::Failed);
            tokio::time::advance(Duration::from_secs(15)).await;
        }
    }

    #[test]
    fn restart_modes_are_honoured() {
        let now = Instant::now();
        let mut never = RestartPolicy::new(RestartMode::Never);
        assert_eq!(never.on_exit(now, QUICK, false), Decision::Stay);
        let mut on_failure = RestartPolicy::new(RestartMode::OnFailure);
        assert_eq!(on_failure.on_exit(now, QUICK, true), Decision::Stay);
        assert!(matches!(
            on_failure.on_exit(now, QUICK, false),
            Decision::RestartAfter(_)
        ));
    }

    #[test]
    fn manual_reset_forgives_history() {
        let now = Instant::now();
        let mut p = RestartPolicy::new(RestartMode::Always);
        for _ in 0..4 {
            p.on_exit(now, QUICK, false);
        }
        p.reset();
        assert_eq!(
            p.on_exit(now, QUICK, false),
            Decision::RestartAfter(INITIAL_BACKOFF)
        );
    }
}
