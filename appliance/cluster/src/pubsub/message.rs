//! What the queues store and under which names: subjects and durable
//! names per (topic, subscriber), and the [`Envelope`] of a message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(super) const QPREFIX: &str = "ar.q";
pub(super) const DPREFIX: &str = "ar.dlq";

pub(super) fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The tokens of a (topic, subscriber): NATS subject tokens and consumer
/// names allow neither dots nor wildcards, hex has none.
pub(super) fn tokens(topic: &str, subscriber: &str) -> String {
    format!("t{}.s{}", hex(topic), hex(subscriber))
}

pub fn queue_subject(topic: &str, subscriber: &str) -> String {
    format!("{QPREFIX}.{}", tokens(topic, subscriber))
}

pub fn dlq_subject(topic: &str, subscriber: &str) -> String {
    format!("{DPREFIX}.{}", tokens(topic, subscriber))
}

/// The durable consumer of a queue.
pub fn durable(topic: &str, subscriber: &str) -> String {
    tokens(topic, subscriber).replace('.', "_")
}

/// (topic, subscriber) back from a durable name or the tail of a subject.
pub fn parse_tokens(s: &str) -> Option<(String, String)> {
    let (t, sub) = s.split_once(['_', '.'])?;
    Some((unhex(t.strip_prefix('t')?)?, unhex(sub.strip_prefix('s')?)?))
}

/// A queued message as stored in the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub msg_id: String,
    pub published_at: i64,
    /// Unix milliseconds after which it is dead-lettered undelivered.
    pub expires_at: Option<i64>,
    pub max_attempts: u32,
    pub backoff_ms: u64,
    pub data: Value,
    /// Why it was dead-lettered (in `AR_DLQ` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
}

impl Envelope {
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// A dead letter back on its queue as new: no attempts counted and
    /// as long to live as when it was published.
    pub fn redriven(mut self, now: i64) -> Envelope {
        self.expires_at = self.expires_at.map(|t| now + (t - self.published_at));
        self.published_at = now;
        self.attempts = 0;
        self.last_error = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_topic_and_subscriber_make_subjects_and_names_and_come_back() {
        for (t, s) in [("orders", "sub.record"), ("", "svc"), ("ü >*", "a.b_c-d")] {
            let subj = queue_subject(t, s);
            let tail = subj.strip_prefix("ar.q.").unwrap();
            assert_eq!(tail.split('.').count(), 2, "{subj}");
            assert!(tail.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
            assert_eq!(parse_tokens(tail), Some((t.into(), s.into())));
            let name = durable(t, s);
            assert!(!name.contains(['.', '*', '>', ' ']), "{name}");
            assert_eq!(parse_tokens(&name), Some((t.into(), s.into())));
            assert_eq!(dlq_subject(t, s).strip_prefix("ar.dlq.").unwrap(), tail);
        }
        assert_eq!(parse_tokens("tzz_s00"), None);
        assert_ne!(durable("a", "bc"), durable("ab", "c"));
    }

    #[test]
    fn expiry_and_redrive_keep_the_time_to_live() {
        let e = Envelope {
            msg_id: "m".into(),
            published_at: 1_000,
            expires_at: Some(11_000),
            max_attempts: 3,
            backoff_ms: 100,
            data: serde_json::json!({"n": 1}),
            last_error: Some("boom".into()),
            attempts: 3,
        };
        assert!(!e.expired(10_999) && e.expired(11_000));
        let r = e.clone().redriven(50_000);
        assert_eq!(
            (r.published_at, r.expires_at, r.attempts),
            (50_000, Some(60_000), 0)
        );
        assert_eq!(r.last_error, None);
        let text = serde_json::to_vec(&e).unwrap();
        assert_eq!(serde_json::from_slice::<Envelope>(&text).unwrap(), e);
    }
}
