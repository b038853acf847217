//! One-time claims (a scheduled job's fire time) in the JetStream KV
//! bucket [`crate::kv::CLAIMS`]: of the members that want to run the same
//! thing once, the one whose claim lands first holds it, runs it, and
//! marks the claim done; JetStream drops claims after a day.
//!
//! A holder can die between landing its claim and marking it done. The
//! members that lost the claim keep watching it ([`Watch`]): while the
//! run is in flight the holder writes its claim again every
//! [`RENEW_EVERY`], so a claim that stays at the same revision, not
//! done, for [`LEASE`] of the watcher's own clock has lost its holder,
//! and the watcher takes it over by compare-and-set on that revision (of
//! watchers racing, one wins). No decision reads another member's clock.
//! Membership is not asked: a member restarted within its
//! [`crate::members::DOWN_AFTER_MS`] is never seen down, and an
//! integrator restarted alone leaves its member up.

use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::Error;
use crate::kv::{self, Bucket, CLAIMS, ClusterKv, encode_key};

/// How long a claim, not done, must stay at one revision (read again and
/// again, every read answered) before a watcher takes it over.
pub const LEASE: Duration = Duration::from_secs(20);
/// How often a holder writes its claim again while the run is in flight.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A claim as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The member (node name) that holds it.
    pub holder: String,
    /// Unique to the holder's claim, so a write of it that timed out but
    /// landed is recognised as its own.
    pub token: String,
    pub state: State,
    /// Unix milliseconds of the holder's last write (shown only).
    pub written_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Claimed: the run is about to start or in flight.
    Held,
    /// The holder's run ended.
    Done,
}

/// A claim and its revision (the stream sequence of its write). `claim`
/// is `None` for a value of another format (a claim of an older version:
/// never taken over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub rev: u64,
    pub claim: Option<Claim>,
}

impl Stored {
    fn of(m: &StreamMessage) -> Stored {
        Stored {
            rev: m.sequence,
            claim: serde_json::from_slice(&m.payload).ok(),
        }
    }

    /// Whether it is the claim with `token` (this caller's own write).
    pub fn has_token(&self, token: &str) -> bool {
        self.claim.as_ref().is_some_and(|c| c.token == token)
    }
}

/// What a conditional write of a claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Written as this revision.
    Written(u64),
    /// Not written: the key holds this instead (`None`: nothing, when a
    /// revision was expected).
    Refused(Option<Stored>),
}

impl ClusterKv {
    /// Writes `claim` under `key` of `scope` if the key holds revision
    /// `expect` (`None`: nothing yet). A try that timed out may have
    /// landed: a try again with the same token is then refused with the
    /// caller's own claim ([`Stored::has_token`]).
    pub fn claim_write(
        &self,
        scope: &str,
        key: &str,
        expect: Option<u64>,
        claim: &Claim,
    ) -> Result<Write, Error> {
        let k = encode_key(scope, key);
        let body = serde_json::to_vec(claim).map_err(kv_err)?;
        let into = self.claims_bucket();
        let seen = std::sync::Mutex::new(None);
        self.run(async move {
            let written = kv::write_if(&self.h.js, into, &k, Some(body), |m| {
                let ok = m.map(|m| m.sequence) == expect;
                if !ok && let Ok(mut s) = seen.lock() {
                    *s = m.map(Stored::of);
                }
                ok
            })
            .await?;
            Ok(match written {
                Some(rev) => Write::Written(rev),
                None => Write::Refused(seen.lock().ok().and_then(|mut s| s.take())),
            })
        })
    }

    /// The claim under `key` of `scope`, as the stream's leader has it.
    pub fn claim_read(&self, scope: &str, key: &str) -> Result<Option<Stored>, Error> {
        let subject = format!("$KV.{CLAIMS}.{}", encode_key(scope, key));
        let stream = self.claims_bucket().stream.clone();
        self.run(async move {
            match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => Ok(Some(Stored::of(&m))),
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    Ok(None)
                }
                Err(e) => Err(kv_err(e)),
            }
        })
    }

    fn claims_bucket(&self) -> Bucket<'_> {
        Bucket {
            name: CLAIMS,
            stream: &self.h.claims_stream,
        }
    }
}

fn kv_err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster claims: {e}"))
}

/// What a read of a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The read failed (no quorum, no answer).
    Unknown,
    Found(Option<Stored>),
}

/// What a watcher does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done, gone, or of an older format: nothing to take over.
    Over,
    Wait,
    /// Take the claim over, only if it is still at this revision.
    TakeOver(u64),
}

/// A member's watch of a claim it lost.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// The revision last read, not done, and when it was first read.
    seen: Option<(u64, Instant)>,
}

impl Watch {
    pub fn step(&mut self, read: &Read, now: Instant) -> Verdict {
        let stored = match read {
            // The cluster does not answer: the holder may be unable to
            // renew for the same reason, so the lease counts again from
            // the next answer.
            Read::Unknown => {
                self.seen = None;
                return Verdict::Wait;
            }
            Read::Found(None) => return Verdict::Over,
            Read::Found(Some(s)) => s,
        };
        match &stored.claim {
            Some(c) if c.state == State::Held => {}
            _ => return Verdict::Over,
        }
        match self.seen {
            Some((rev, since)) if rev == stored.rev => {
                if now.duration_since(since) >= LEASE {
                    Verdict::TakeOver(rev)
                } else {
                    Verdict::Wait
                }
            }
            _ => {
                self.seen = Some((stored.rev, now));
                Verdict::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(rev: u64, holder: &str) -> Read {
        found(rev, holder, State::Held)
    }

    fn found(rev: u64, holder: &str, state: State) -> Read {
        Read::Found(Some(Stored {
            rev,
            claim: Some(Claim {
                holder: holder.into(),
                token: format!("{holder} 1"),
                state,
                written_ms: 0,
            }),
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_left_at_one_revision_for_the_lease_is_taken_over() {
        let mut w = Watch::default();
        let t0 = Instant::now();
        assert_eq!(w.step(&held(7, "a"), t0), Verdict::Wait);
        tokio::time::sleep(LEASE - Duration::from_millis(1)).await;
        assert_eq!(w.step(&held(7, "a"), Instant::now()), Verdict::Wait);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(w.step(&held(7, "a"), Instant::now()), Verdict::TakeOver(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewing_holder_keeps_its_claim() {
        let mut w = Watch::default();
        for rev in 1..20 {
            assert_eq!(w.step(&held(rev, "a"), Instant::now()), Verdict::Wait);
            tokio::time::sleep(RENEW_EVERY).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_done_gone_or_foreign_claim_ends_the_watch() {
        let mut w = Watch::default();
        let now = Instant::now();
        assert_eq!(w.step(&found(3, "a", State::Done), now), Verdict::Over);
        assert_eq!(w.step(&Read::Found(None), now), Verdict::Over);
        let old = Read::Found(Some(Stored {
            rev: 3,
            claim: None,
        }));
        assert_eq!(w.step(&old, now), Verdict::Over);
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_counts_again_after_the_cluster_did_not_answer() {
        let mut w = Watch::default();
        assert_eq!(w.step(&held(7, "a"), Instant::now()), Verdict::Wait);
        tokio::time::sleep(LEASE / 2).await;
        assert_eq!(w.step(&Read::Unknown, Instant::now()), Verdict::Wait);
        tokio::time::sleep(LEASE / 2).await;
        assert_eq!(w.step(&held(7, "a"), Instant::now()), Verdict::Wait);
        tokio::time::sleep(LEASE).await;
        assert_eq!(w.step(&held(7, "a"), Instant::now()), Verdict::TakeOver(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_taken_over_by_another_member_is_watched_from_its_new_revision() {
        let mut w = Watch::default();
        assert_eq!(w.step(&held(7, "a"), Instant::now()), Verdict::Wait);
        tokio::time::sleep(LEASE).await;
        assert_eq!(w.step(&held(9, "b"), Instant::now()), Verdict::Wait);
        tokio::time::sleep(LEASE).await;
        assert_eq!(w.step(&held(9, "b"), Instant::now()), Verdict::TakeOver(9));
    }

    #[test]
    fn a_claim_reads_back_and_an_older_value_is_foreign() {
        let c = Claim {
            holder: "a".into(),
            token: "a 00ff".into(),
            state: State::Held,
            written_ms: 5,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert!(text.contains(r#""state":"held""#), "{text}");
        assert_eq!(serde_json::from_str::<Claim>(&text).unwrap(), c);
        assert!(serde_json::from_slice::<Claim>(b"a 00ff").is_err());
    }
}
