//! Leases for the cluster's singletons (pgha's `pg_controller` and
//! `backup_controller`): of the members that want one, exactly one holds
//! it at a time and acts; when it dies another takes over within [`TTL`].
//!
//! A lease is a key of the JetStream KV bucket `ar_leases` holding the
//! holder, its epoch (a fencing token, one higher at every change of
//! holder) and the wall time of its last renewal (shown only). Every write
//! is the whole-stream compare-and-set of [`crate::kv`], so of members
//! racing exactly one wins. No decision reads another member's clock:
//!
//! - the holder renews every [`RENEW_EVERY`]; it counts itself holder
//!   until `TTL - MARGIN` after it *sent* its last successful write, by
//!   its own monotonic clock, and stops acting at that instant when it
//!   could not renew (no quorum, nats-server gone);
//! - a contender takes over only once it has seen the same revision of
//!   the lease, unchanged, for `TTL` of its own clock since it first read
//!   it. That revision was written after the holder sent it, so the
//!   takeover comes at least `MARGIN` after the holder stopped.
//!
//! The decisions are the pure [`Machine`]; [`crate::singletons`] does the I/O.
//! State the holder keeps for its successor (last master, backup history)
//! goes to the bucket `ar_lease_state` with the holder's epoch, and a
//! write from a lower epoch than the stored one is refused.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub const BUCKET: &str = "ar_leases";
pub const STATE: &str = "ar_lease_state";
/// How long a lease outlives its holder's last renewal.
pub const TTL: Duration = Duration::from_secs(10);
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// The holder stops acting this long before a contender may take over:
/// time to abort what it runs, and for the two clocks' rates to differ.
pub const MARGIN: Duration = Duration::from_secs(2);

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The member (node name) that holds it; empty once released.
    pub holder: String,
    pub epoch: u64,
    /// Unix milliseconds of the holder's last renewal, for `status`.
    pub renewed_ms: i64,
}

/// What a read of the lease found.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// The read failed (no quorum, no answer).
    Unknown,
    Absent,
    /// The lease and its revision (the stream sequence of its write).
    Found {
        rev: u64,
        lease: Lease,
    },
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write the lease for this member with `epoch`, only if its revision
    /// is still `expect` (`None`: never written).
    Acquire {
        expect: Option<u64>,
        epoch: u64,
    },
    /// Write it again, only if its revision is still `rev`.
    Renew {
        rev: u64,
        epoch: u64,
    },
    Wait,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Another member holds it: the revision last read and when this
    /// member first read it.
    Contending { seen: Option<(u64, Instant)> },
    Holding {
        epoch: u64,
        rev: u64,
        valid_until: Instant,
    },
}

/// This member's view of one lease.
#[derive(Debug, Clone)]
pub struct Machine {
    me: String,
    phase: Phase,
}

impl Machine {
    pub fn new(me: &str) -> Machine {
        Machine {
            me: me.to_string(),
            phase: Phase::Contending { seen: None },
        }
    }

    /// The epoch this member holds at `now`, and until when.
    pub fn held(&self, now: Instant) -> Option<(u64, Instant)> {
        match self.phase {
            Phase::Holding {
                epoch, valid_until, ..
            } if now < valid_until => Some((epoch, valid_until)),
            _ => None,
        }
    }

    /// Whether the next step needs a fresh read of the lease (a holder
    /// renews from its own revision without reading).
    pub fn needs_read(&self, now: Instant) -> bool {
        self.held(now).is_none()
    }

    pub fn step(&mut self, now: Instant, read: &Read) -> Step {
        if let Phase::Holding {
            epoch,
            rev,
            valid_until,
        } = self.phase
        {
            if now < valid_until {
                return Step::Renew { rev, epoch };
            }
            self.phase = Phase::Contending { seen: None };
        }
        let Phase::Contending { seen } = &mut self.phase else {
            return Step::Wait;
        };
        match read {
            Read::Unknown => Step::Wait,
            Read::Absent => Step::Acquire {
                expect: None,
                epoch: 1,
            },
            // Released, or held by this member before a restart of the
            // service (the old process is gone): take it at once.
            Read::Found { rev, lease } if lease.holder.is_empty() || lease.holder == self.me => {
                Step::Acquire {
                    expect: Some(*rev),
                    epoch: lease.epoch + 1,
                }
            }
            Read::Found { rev, lease } => match *seen {
                Some((r, since)) if r == *rev => {
                    if now.duration_since(since) >= TTL {
                        Step::Acquire {
                            expect: Some(*rev),
                            epoch: lease.epoch + 1,
                        }
                    } else {
                        Step::Wait
                    }
                }
                _ => {
                    *seen = Some((*rev, now));
                    Step::Wait
                }
            },
        }
    }

    /// The write of `step` (sent at `sent_at`) was made as revision `rev`.
    pub fn written(&mut self, step: &Step, sent_at: Instant, rev: u64) {
        let epoch = match *step {
            Step::Acquire { epoch, .. } | Step::Renew { epoch, .. } => epoch,
            Step::Wait => return,
        };
        self.phase = Phase::Holding {
            epoch,
            rev,
            valid_until: sent_at + TTL - MARGIN,
        };
    }

    /// The write was refused: another member wrote the lease since.
    /// Lost at once.
    pub fn refused(&mut self) {
        self.phase = Phase::Contending { seen: None };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(rev: u64, holder: &str, epoch: u64) -> Read {
        Read::Found {
            rev,
            lease: Lease {
                holder: holder.into(),
                epoch,
                renewed_ms: 0,
            },
        }
    }

    /// Runs one step and, for a write, its outcome: `Some(rev)` made,
    /// `None` refused.
    fn turn(m: &mut Machine, read: &Read, outcome: Option<u64>) -> Step {
        let now = Instant::now();
        let step = m.step(now, read);
        if step != Step::Wait {
            match outcome {
                Some(rev) => m.written(&step, now, rev),
                None => m.refused(),
            }
        }
        step
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_member_takes_a_lease_nobody_holds() {
        let mut a = Machine::new("a");
        assert_eq!(a.held(Instant::now()), None);
        let step = turn(&mut a, &Read::Absent, Some(7));
        assert_eq!(
            step,
            Step::Acquire {
                expect: None,
                epoch: 1
            }
        );
        assert_eq!(a.held(Instant::now()).map(|h| h.0), Some(1));
        assert!(!a.needs_read(Instant::now()));
        // Renewals go against its own last revision.
        tokio::time::advance(RENEW_EVERY).await;
        assert_eq!(
            turn(&mut a, &Read::Unknown, Some(9)),
            Step::Renew { rev: 7, epoch: 1 }
        );
        assert_eq!(
            turn(&mut a, &Read::Unknown, Some(10)),
            Step::Renew { rev: 9, epoch: 1 }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_that_cannot_renew_stops_before_anyone_may_take_over() {
        let mut a = Machine::new("a");
        let mut b = Machine::new("b");
        let t0 = Instant::now();
        turn(&mut a, &Read::Absent, Some(1));
        // b reads a's lease right after it was written.
        assert_eq!(b.step(Instant::now(), &found(1, "a", 1)), Step::Wait);
        // From here a's renewals never arrive (cut from the quorum).
        let mut a_stopped = None;
        let mut b_took = None;
        for _ in 0..200 {
            tokio::time::advance(Duration::from_millis(100)).await;
            let now = Instant::now();
            if a_stopped.is_none() && a.held(now).is_none() {
                a_stopped = Some(now);
            }
            if a.held(now).is_some() {
                // The write fails: no outcome recorded.
                assert!(matches!(a.step(now, &Read::Unknown), Step::Renew { .. }));
            }
            if b_took.is_none()
                && let Step::Acquire { expect, epoch } = b.step(now, &found(1, "a", 1))
            {
                assert_eq!((expect, epoch), (Some(1), 2));
                b_took = Some(now);
            }
        }
        let (stopped, took) = (a_stopped.unwrap(), b_took.unwrap());
        assert_eq!(stopped - t0, TTL - MARGIN);
        assert!(took - t0 >= TTL, "{:?}", took - t0);
        assert!(took - stopped >= MARGIN);
    }

    #[tokio::test(start_paused = true)]
    async fn a_contender_waits_while_the_holder_renews() {
        let mut b = Machine::new("b");
        for rev in 1..=20 {
            assert_eq!(b.step(Instant::now(), &found(rev, "a", 4)), Step::Wait);
            tokio::time::advance(RENEW_EVERY).await;
        }
        // An unreadable lease (no quorum) is never taken either.
        for _ in 0..10 {
            assert_eq!(b.step(Instant::now(), &Read::Unknown), Step::Wait);
            tokio::time::advance(RENEW_EVERY).await;
        }
        assert_eq!(b.held(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn of_two_contenders_the_refused_one_holds_nothing() {
        let mut b = Machine::new("b");
        let mut c = Machine::new("c");
        for m in [&mut b, &mut c] {
            m.step(Instant::now(), &found(5, "a", 2));
        }
        tokio::time::advance(TTL).await;
        assert!(matches!(
            turn(&mut b, &found(5, "a", 2), Some(6)),
            Step::Acquire { epoch: 3, .. }
        ));
        assert!(matches!(
            turn(&mut c, &found(5, "a", 2), None),
            Step::Acquire { .. }
        ));
        assert_eq!(b.held(Instant::now()).map(|h| h.0), Some(3));
        assert_eq!(c.held(Instant::now()), None);
        // c now sees b's lease and starts counting again.
        assert_eq!(c.step(Instant::now(), &found(6, "b", 3)), Step::Wait);
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_whose_renewal_is_refused_stops_at_once() {
        let mut a = Machine::new("a");
        turn(&mut a, &Read::Absent, Some(1));
        tokio::time::advance(RENEW_EVERY).await;
        turn(&mut a, &Read::Unknown, None);
        assert_eq!(a.held(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lease_or_ones_own_is_taken_at_once() {
        let mut b = Machine::new("b");
        assert_eq!(
            b.step(Instant::now(), &found(8, "", 3)),
            Step::Acquire {
                expect: Some(8),
                epoch: 4
            }
        );
        let mut a = Machine::new("a");
        assert_eq!(
            a.step(Instant::now(), &found(8, "a", 3)),
            Step::Acquire {
                expect: Some(8),
                epoch: 4
            }
        );
    }
}
