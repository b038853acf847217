//! A queue's `max_depth` without a request per publish. Reading a
//! queue's depth (the messages its subject holds in the work-queue
//! stream) is a JetStream API request to the stream's leader, which cost
//! a publish as much as storing the message. So a member reads it only when it
//! matters: it keeps its last reading of each queue and counts what it
//! stored there since, and trusts that count while the reading is
//! younger than [`DEPTH_TTL`] and the count is under half of
//! `max_depth`; otherwise it reads again before the publish. A publish is
//! refused only on a fresh reading, never on the count.
//!
//! What the limit guarantees: a member publishing alone to a queue never
//! passes `max_depth` (from half of it on, it reads before every
//! publish). Members publishing to the same queue at once each add less
//! than `max_depth / 2` unread within a second, so together they can pass
//! the limit by less than `max_depth / 2` per other member (three
//! members: under twice `max_depth`), plus the publishes that race a
//! reading near the limit, as before.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a reading of a queue's depth is trusted.
pub(super) const DEPTH_TTL: Duration = Duration::from_secs(1);

/// This member's last reading of one queue and what it stored since.
#[derive(Debug, Clone, Copy)]
struct Reading {
    depth: u64,
    at: Instant,
    since: u64,
}

/// The member's readings, by the queue's durable name.
#[derive(Debug, Default)]
pub(super) struct Depths(HashMap<String, Reading>);

impl Depths {
    /// Whether a publish to `queue` may go on this member's count alone
    /// (false: read the depth first).
    pub fn trusted(&self, queue: &str, max_depth: u64, now: Instant) -> bool {
        self.0.get(queue).is_some_and(|r| {
            now.saturating_duration_since(r.at) < DEPTH_TTL
                && r.depth.saturating_add(r.since).saturating_mul(2) < max_depth
        })
    }

    /// A reading of `queue`'s depth, from a request sent at `at` (the
    /// count starts again from it).
    pub fn read(&mut self, queue: &str, depth: u64, at: Instant) {
        self.0.insert(
            queue.to_string(),
            Reading {
                depth,
                at,
                since: 0,
            },
        );
    }

    /// One message stored on `queue` by this member.
    pub fn stored(&mut self, queue: &str) {
        if let Some(r) = self.0.get_mut(queue) {
            r.since += 1;
        }
    }
}

/// A queue at its limit refuses the publish.
pub(super) fn full(depth: u64, max_depth: u64) -> bool {
    depth >= max_depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_trusted_while_young_and_under_half_the_limit() {
        let t0 = Instant::now();
        let mut d = Depths::default();
        assert!(!d.trusted("q", 100, t0), "never read: read first");
        d.read("q", 40, t0);
        assert!(d.trusted("q", 100, t0 + Duration::from_millis(999)));
        assert!(
            !d.trusted("q", 100, t0 + DEPTH_TTL),
            "a second old: read again"
        );
        assert!(!d.trusted("other", 100, t0));
        for _ in 0..9 {
            d.stored("q");
        }
        assert!(d.trusted("q", 100, t0), "49 of 100");
        d.stored("q");
        assert!(
            !d.trusted("q", 100, t0),
            "half of the limit: read before each publish"
        );
        d.read("q", 3, t0);
        assert!(
            d.trusted("q", 100, t0),
            "a new reading starts the count again"
        );
        d.stored("nothing read");
        assert!(!d.trusted("nothing read", 100, t0));
    }

    #[test]
    fn small_limits_are_read_after_each_publish_and_only_a_reading_refuses() {
        let t0 = Instant::now();
        let mut d = Depths::default();
        d.read("q", 0, t0);
        assert!(d.trusted("q", 1, t0), "an empty queue has room for one");
        d.stored("q");
        assert!(!d.trusted("q", 1, t0) && !d.trusted("q", 2, t0));
        assert!(d.trusted("q", 3, t0));
        assert!(!full(1, 2) && full(2, 2) && full(3, 2));
        d.read("q", u64::MAX, t0);
        d.stored("q");
        assert!(!d.trusted("q", u64::MAX, t0), "no overflow");
    }

    /// A member alone never passes the limit: it trusts its count only
    /// below half, where one more message cannot reach the limit.
    #[test]
    fn a_member_alone_never_passes_the_limit() {
        for max in 1..40u64 {
            let t0 = Instant::now();
            let mut d = Depths::default();
            let mut depth = 0;
            for _ in 0..100 {
                if !d.trusted("q", max, t0) {
                    d.read("q", depth, t0);
                    if full(depth, max) {
                        continue;
                    }
                }
                depth += 1;
                d.stored("q");
            }
            assert_eq!(depth, max);
        }
    }
}
