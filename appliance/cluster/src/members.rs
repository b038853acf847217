//! Membership: every member puts a heartbeat into the JetStream KV bucket
//! `ar_members` every [`INTERVAL`]; a member whose heartbeat was stored
//! more than [`DOWN_AFTER_MS`] before the newest one is down. A heartbeat
//! also carries the member's load balancer (:11223) for the others'
//! balancers, and whether the member is draining (leaving). Pure: the
//! caller gives the stored times.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const BUCKET: &str = "ar_members";
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Five missed heartbeats.
pub const DOWN_AFTER_MS: i64 = 10_000;
/// How long a leaving member waits after announcing that it drains
/// before it counts on the others to send it nothing new: two of their
/// balancers' reads of the member list (every second) and a slow read.
pub const DRAIN_NOTICE: Duration = Duration::from_secs(4);

/// A member's load balancer as the other members reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lb {
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    /// SHA-256 of its TLS certificate (hex): the others pin it. `None`
    /// for plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    /// Its route address, `host:port`.
    pub route: String,
    pub version: String,
    /// Resident memory of the cluster service and its nats-server, KiB.
    pub rss_kib: u64,
    /// Unix milliseconds when sent.
    pub at_ms: i64,
    /// Its load balancer; `None` when it has none to offer (or from a
    /// member of an older version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb: Option<Lb>,
    /// From `cluster leave` on: the others send it no new requests.
    #[serde(default)]
    pub draining: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    /// "up" or "down".
    pub state: &'static str,
    /// Seconds its last heartbeat was stored before the newest one.
    pub age_s: i64,
}

/// A heartbeat as read from the bucket, with the time the bucket's stream
/// leader stored it (Unix milliseconds, the leader's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub heartbeat: Heartbeat,
    pub stored_ms: i64,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Each heartbeat is judged against the newest one stored, not against
/// the reader's clock: the stored times all come from one clock (the
/// bucket's stream leader), so members whose clocks differ (a board
/// without a real-time clock before NTP set it) are not taken for down,
/// and while the bucket takes no writes the members keep the states of
/// their last heartbeats instead of all going down together. A new stream
/// leader with another clock can skew this until every member has beaten
/// once more ([`INTERVAL`]).
pub fn classify(mut beats: Vec<Stored>) -> Vec<Member> {
    beats.sort_by(|a, b| a.heartbeat.node.cmp(&b.heartbeat.node));
    let newest = beats.iter().map(|b| b.stored_ms).max().unwrap_or(0);
    beats
        .into_iter()
        .map(|b| {
            let age = newest - b.stored_ms;
            Member {
                state: if age <= DOWN_AFTER_MS { "up" } else { "down" },
                age_s: age / 1000,
                heartbeat: b.heartbeat,
            }
        })
        .collect()
}

/// Replicas for the cluster's streams and buckets: three from three
/// members on, else one (a JetStream replica count must not exceed the
/// servers, and two replicas survive nothing that one does not).
pub fn replicas(members: usize) -> usize {
    if members >= 3 { 3 } else { 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(node: &str, at_ms: i64) -> Heartbeat {
        Heartbeat {
            node: node.into(),
            route: format!("{node}:6222"),
            version: "0.1.0".into(),
            rss_kib: 1,
            at_ms,
            lb: None,
            draining: false,
        }
    }

    fn stored(node: &str, stored_ms: i64) -> Stored {
        Stored {
            heartbeat: beat(node, 0),
            stored_ms,
        }
    }

    fn states(m: &[Member]) -> Vec<(&str, &str, i64)> {
        m.iter()
            .map(|m| (m.heartbeat.node.as_str(), m.state, m.age_s))
            .collect()
    }

    #[test]
    fn silent_members_go_down_after_the_limit() {
        let newest = 100_000;
        let m = classify(vec![
            stored("c", newest - DOWN_AFTER_MS - 1),
            stored("a", newest),
            stored("b", newest - DOWN_AFTER_MS),
        ]);
        assert_eq!(
            states(&m),
            [("a", "up", 0), ("b", "up", 10), ("c", "down", 10)]
        );
    }

    #[test]
    fn a_stalled_bucket_or_a_wrong_clock_takes_no_member_down() {
        // The members' own clocks (at_ms) are far apart and the bucket
        // took its last heartbeat long ago: only the stored times count.
        let mut a = stored("a", 5_000);
        a.heartbeat.at_ms = 1;
        let mut b = stored("b", 4_000);
        b.heartbeat.at_ms = 9_000_000_000;
        assert_eq!(
            states(&classify(vec![a, b])),
            [("a", "up", 0), ("b", "up", 1)]
        );
        assert!(classify(Vec::new()).is_empty());
    }

    #[test]
    fn heartbeats_of_older_members_still_read() {
        let old = r#"{"node":"a","route":"a:6222","version":"0.1.0","rss_kib":1,"at_ms":5}"#;
        let h: Heartbeat = serde_json::from_str(old).unwrap();
        assert_eq!((h.lb, h.draining), (None, false));
    }

    #[test]
    fn three_replicas_from_three_members() {
        assert_eq!([1, 2, 3, 5].map(replicas), [1, 1, 3, 3]);
    }
}
