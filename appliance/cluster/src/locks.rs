//! The integrator's named locks (`self.lock`) across the cluster: one
//! key per lock in the JetStream KV bucket `ar_locks`, holding its owner
//! and when it lapses. Taking, extending and releasing are conditional
//! writes ([`ClusterKv::write_if`]): of members racing for a free lock
//! exactly one gets it. A holder that dies stops extending it, and the
//! lock is free once its time is past (members' clocks are assumed to
//! agree to well under a lock's lifetime).

use async_nats::jetstream::message::StreamMessage;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::kv::{Bucket, ClusterKv, encode_key};

pub const BUCKET: &str = "ar_locks";

fn err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster locks: {e}"))
}

/// What the lock's key holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub owner: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// The holder a lock's last message names, if it still holds it at `now`.
fn holder(m: Option<&StreamMessage>, now: i64) -> Option<Holder> {
    let m = m?;
    let deleted = m
        .headers
        .get("KV-Operation")
        .is_some_and(|op| op.as_str() != "PUT");
    live_holder(deleted, &m.payload, now)
}

/// The holder in a lock's key, unless it was released or has lapsed.
fn live_holder(deleted: bool, payload: &[u8], now: i64) -> Option<Holder> {
    if deleted {
        return None;
    }
    serde_json::from_slice::<Holder>(payload)
        .ok()
        .filter(|h| h.expires_at > now)
}

/// Whether `owner` may take (or extend) a lock held by `current`.
pub fn may_take(current: Option<&Holder>, owner: &str) -> bool {
    current.is_none_or(|h| h.owner == owner)
}

impl ClusterKv {
    fn locks_bucket(&self) -> Bucket<'_> {
        Bucket {
            name: BUCKET,
            stream: &self.h.locks_stream,
        }
    }

    /// Takes (or, for its owner, extends) `name` until `now + ttl_ms`.
    pub fn lock_acquire(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, Error> {
        let k = encode_key("lock", name);
        let h = Holder {
            owner: owner.to_string(),
            expires_at: now + ttl_ms,
        };
        let body = serde_json::to_vec(&h).map_err(err)?;
        let into = self.locks_bucket();
        self.run(async move {
            self.write_if(into, &k, Some(body), |m| {
                may_take(holder(m, now).as_ref(), owner)
            })
            .await
        })
    }

    /// Releases `name` if `owner` holds it.
    pub fn lock_release(&self, name: &str, owner: &str, now: i64) -> Result<bool, Error> {
        let k = encode_key("lock", name);
        let into = self.locks_bucket();
        self.run(async move {
            self.write_if(into, &k, None, |m| {
                holder(m, now).is_some_and(|h| h.owner == owner)
            })
            .await
        })
    }

    /// Locks held at `now`: (name, holder), by name.
    pub fn lock_list(&self, now: i64) -> Result<Vec<(String, Holder)>, Error> {
        let s = self.h.locks_stream.clone();
        self.run(async move {
            let mut subjects = s
                .info_with_subjects(format!("$KV.{BUCKET}.>"))
                .await
                .map_err(err)?;
            let mut keys = Vec::new();
            use futures_util::StreamExt;
            while let Some(x) = subjects.next().await {
                keys.push(x.map_err(err)?.0);
            }
            let mut out = Vec::new();
            for subject in keys {
                let Some((_, name)) = subject
                    .strip_prefix(&format!("$KV.{BUCKET}."))
                    .and_then(crate::kv::decode_key)
                else {
                    continue;
                };
                if let Ok(m) = s.get_last_raw_message_by_subject(&subject).await
                    && let Some(h) = holder(Some(&m), now)
                {
                    out.push((name, h));
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_free_or_its_owners_until_it_lapses() {
        let h = Holder {
            owner: "a".into(),
            expires_at: 1_000,
        };
        assert!(may_take(None, "b"));
        assert!(may_take(Some(&h), "a"));
        assert!(!may_take(Some(&h), "b"));
        let text = serde_json::to_vec(&h).unwrap();
        assert_eq!(live_holder(false, &text, 999), Some(h));
        assert_eq!(live_holder(false, &text, 1_000), None, "lapsed");
        assert_eq!(live_holder(true, &text, 0), None, "released");
    }
}
