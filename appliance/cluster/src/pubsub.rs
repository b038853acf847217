//! The cluster's pub/sub and `invoke_async` queues (ARPuSuB of a
//! cluster): one JetStream work-queue stream, `AR_QUEUES`, with a subject
//! and a durable pull consumer per (topic, subscriber) (`invoke_async`
//! targets are topic ""), and a stream of dead letters, `AR_DLQ`. Any
//! member may take a message; a message is removed only when the member
//! that took it acks it after its handler succeeded. One that is not
//! acked within the ack wait (its member died) is delivered again, so
//! delivery is at least once. The retry policy travels in the message
//! ([`Envelope`]): the member that publishes decides it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer, consumer::pull, stream};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::kv::ClusterKv;

pub const QUEUES: &str = "AR_QUEUES";
pub const DLQ: &str = "AR_DLQ";
const QPREFIX: &str = "ar.q";
const DPREFIX: &str = "ar.dlq";
/// A message taken and neither acked nor touched for this long goes to
/// another member; a handler that runs longer is kept alive by
/// [`ClusterKv::queue_touch`].
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long the list of consumers is trusted before it is read again.
const CONSUMERS_TTL: Duration = Duration::from_secs(2);

fn err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster queues: {e}"))
}

fn hex(s: &str) -> String {
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
fn tokens(topic: &str, subscriber: &str) -> String {
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

/// One message taken for delivery.
#[derive(Debug)]
pub struct Taken {
    /// Local handle for ack/nack on this member.
    pub id: u64,
    pub topic: String,
    pub subscriber: String,
    pub envelope: Envelope,
    /// Failed attempts before this one (deliveries JetStream counted,
    /// including one cut short by a member's death).
    pub attempts: u32,
}

/// Counts of one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueCount {
    pub topic: String,
    pub subscriber: String,
    pub ready: i64,
    pub in_flight: i64,
    pub dead: i64,
}

/// A stored message (a listing or a dead letter), by stream sequence.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: u64,
    pub subscriber: String,
    pub envelope: Envelope,
}

/// The member's side of the queues: the streams, the messages it holds
/// and the consumers it knows.
pub struct Queues {
    queues: stream::Stream,
    dlq: stream::Stream,
    held: Mutex<HashMap<u64, Held>>,
    next: AtomicU64,
    ensured: Mutex<HashSet<String>>,
    consumers: tokio::sync::Mutex<Option<(Instant, Vec<PullConsumer>)>>,
    turn: AtomicU64,
}

/// A message this member took and has not settled.
struct Held {
    topic: String,
    subscriber: String,
    message: jetstream::Message,
    envelope: Envelope,
    attempts: u32,
}

/// Makes the streams if they are missing (one replica until the
/// heartbeat raises them with the buckets).
pub(crate) async fn open(js: &jetstream::Context) -> Result<Queues, String> {
    let queues = js
        .get_or_create_stream(stream::Config {
            name: QUEUES.into(),
            subjects: vec![format!("{QPREFIX}.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            // A publish retried after a lost ack is stored once.
            duplicate_window: Duration::from_secs(120),
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let dlq = js
        .get_or_create_stream(stream::Config {
            name: DLQ.into(),
            subjects: vec![format!("{DPREFIX}.>")],
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(Queues {
        queues,
        dlq,
        held: Mutex::default(),
        next: AtomicU64::new(1),
        ensured: Mutex::default(),
        consumers: tokio::sync::Mutex::new(None),
        turn: AtomicU64::new(0),
    })
}

/// Where a message goes (topic "" for `invoke_async`).
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub topic: &'a str,
    pub subscriber: &'a str,
    pub max_depth: u64,
}

impl Queues {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn consumer(&self, topic: &str, subscriber: &str) -> Result<PullConsumer, Error> {
        let name = durable(topic, subscriber);
        let c = self
            .queues
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: queue_subject(topic, subscriber),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_deliver: -1,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        let new = self
            .ensured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name);
        if new {
            // The next take reads the list again and finds it.
            *self.consumers.lock().await = None;
        }
        Ok(c)
    }

    async fn all_consumers(&self) -> Result<Vec<PullConsumer>, Error> {
        let mut cache = self.consumers.lock().await;
        if let Some((at, list)) = cache.as_ref()
            && at.elapsed() < CONSUMERS_TTL
        {
            return Ok(list.clone());
        }
        let mut names = self.queues.consumer_names();
        let mut list = Vec::new();
        while let Some(n) = names.next().await {
            let n = n.map_err(err)?;
            if parse_tokens(&n).is_none() {
                continue;
            }
            match self.queues.get_consumer::<pull::Config>(&n).await {
                Ok(c) => list.push(c),
                Err(e) => tracing::debug!(consumer = %n, error = %e, "consumer gone"),
            }
        }
        *cache = Some((Instant::now(), list.clone()));
        Ok(list)
    }
}

impl ClusterKv {
    fn q(&self) -> &Queues {
        &self.queues
    }

    /// Stores one message per target (each queue's depth checked first;
    /// `Some(i)`: target `i`'s queue is full and nothing was stored); a
    /// publish retried after a lost acknowledgement is stored once.
    pub fn queue_publish(
        &self,
        targets: &[Target<'_>],
        envelope: &Envelope,
    ) -> Result<Option<usize>, Error> {
        let body = serde_json::to_vec(envelope).map_err(err)?;
        self.run(async move {
            let q = self.q();
            for (i, t) in targets.iter().enumerate() {
                let mut c = q.consumer(t.topic, t.subscriber).await?;
                let info = c.info().await.map_err(err)?;
                if info.num_pending + info.num_ack_pending as u64 >= t.max_depth {
                    return Ok(Some(i));
                }
            }
            let mut acks = Vec::new();
            for t in targets {
                let mut headers = async_nats::HeaderMap::new();
                let dedup = format!("{}.{}", envelope.msg_id, hex(t.subscriber));
                headers.insert(async_nats::header::NATS_MESSAGE_ID, dedup.as_str());
                let ack = self
                    .js
                    .publish_with_headers(
                        queue_subject(t.topic, t.subscriber),
                        headers,
                        body.clone().into(),
                    )
                    .await
                    .map_err(err)?;
                acks.push(ack);
            }
            for a in acks {
                a.await.map_err(err)?;
            }
            Ok(None)
        })
    }

    /// Takes up to `limit` messages from the queues, a different queue
    /// first each time. Expired ones are dead-lettered on the way.
    pub fn queue_take(&self, limit: usize, now: i64) -> Result<Vec<Taken>, Error> {
        self.run(async move {
            let q = self.q();
            let list = q.all_consumers().await?;
            let mut out = Vec::new();
            if list.is_empty() {
                return Ok(out);
            }
            let start = q.turn.fetch_add(1, Ordering::Relaxed) as usize;
            for i in 0..list.len() {
                if out.len() >= limit {
                    break;
                }
                let c = &list[(start + i) % list.len()];
                let Some((topic, subscriber)) = parse_tokens(&c.cached_info().name) else {
                    continue;
                };
                let mut batch = match c.fetch().max_messages(limit - out.len()).messages().await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::debug!(error = %e, "fetch failed");
                        continue;
                    }
                };
                while let Some(m) = batch.next().await {
                    let m = m.map_err(err)?;
                    let delivered = m.info().map(|i| i.delivered).unwrap_or(1);
                    let Ok(env) = serde_json::from_slice::<Envelope>(&m.payload) else {
                        tracing::warn!(topic, subscriber, "a queued message is not ours; dropped");
                        m.ack_with(AckKind::Term).await.map_err(err)?;
                        continue;
                    };
                    if env.expired(now) {
                        let dead = Envelope {
                            last_error: Some("expired before delivery".into()),
                            ..env
                        };
                        self.dead_letter(&topic, &subscriber, &dead).await?;
                        m.ack().await.map_err(err)?;
                        continue;
                    }
                    let id = q.next.fetch_add(1, Ordering::Relaxed);
                    let attempts = u32::try_from(delivered.max(1) - 1).unwrap_or(u32::MAX);
                    q.held().insert(
                        id,
                        Held {
                            topic: topic.clone(),
                            subscriber: subscriber.clone(),
                            message: m,
                            envelope: env.clone(),
                            attempts,
                        },
                    );
                    out.push(Taken {
                        id,
                        topic: topic.clone(),
                        subscriber: subscriber.clone(),
                        envelope: env,
                        attempts,
                    });
                }
            }
            Ok(out)
        })
    }

    async fn dead_letter(
        &self,
        topic: &str,
        subscriber: &str,
        env: &Envelope,
    ) -> Result<(), Error> {
        let body = serde_json::to_vec(env).map_err(err)?;
        self.js
            .publish(dlq_subject(topic, subscriber), body.into())
            .await
            .map_err(err)?
            .await
            .map_err(err)?;
        Ok(())
    }

    fn settle(&self, id: u64, kind: AckKind) -> Result<(), Error> {
        let Some(h) = self.q().held().remove(&id) else {
            return Ok(());
        };
        self.run(async move { h.message.ack_with(kind).await.map_err(err) })
    }

    /// Handled: the message is removed from the queue.
    pub fn queue_ack(&self, id: u64) -> Result<(), Error> {
        self.settle(id, AckKind::Ack)
    }

    /// Not handled: delivered again (to any member) after `delay`.
    pub fn queue_retry(&self, id: u64, delay: Duration) -> Result<(), Error> {
        self.settle(id, AckKind::Nak(Some(delay)))
    }

    /// Still being handled: the ack wait starts again.
    pub fn queue_touch(&self, id: u64) -> Result<(), Error> {
        let m = match self.q().held().get(&id) {
            Some(h) => h.message.clone(),
            None => return Ok(()),
        };
        self.run(async move { m.ack_with(AckKind::Progress).await.map_err(err) })
    }

    /// Failed for the last time: a copy goes to the dead letters (with
    /// the error and the attempts), then the message leaves its queue.
    pub fn queue_dead(&self, id: u64, error: &str) -> Result<(), Error> {
        let Some(h) = self.q().held().remove(&id) else {
            return Ok(());
        };
        let env = Envelope {
            last_error: Some(error.to_string()),
            attempts: h.attempts + 1,
            ..h.envelope
        };
        self.run(async move {
            self.dead_letter(&h.topic, &h.subscriber, &env).await?;
            h.message.ack().await.map_err(err)
        })
    }

    /// Ready, in-flight and dead counts of every queue.
    pub fn queue_counts(&self) -> Result<Vec<QueueCount>, Error> {
        self.run(async move {
            let q = self.q();
            let mut dead: BTreeMap<(String, String), i64> = BTreeMap::new();
            let mut subjects = q
                .dlq
                .info_with_subjects(format!("{DPREFIX}.>"))
                .await
                .map_err(err)?;
            while let Some(s) = subjects.next().await {
                let (subject, n) = s.map_err(err)?;
                if let Some(k) = subject
                    .strip_prefix(&format!("{DPREFIX}."))
                    .and_then(parse_tokens)
                {
                    dead.insert(k, n as i64);
                }
            }
            let mut out = BTreeMap::new();
            for mut c in q.all_consumers().await? {
                let Ok(info) = c.info().await else { continue };
                let Some(k) = parse_tokens(&info.name) else {
                    continue;
                };
                let d = dead.remove(&k).unwrap_or(0);
                out.insert(k, (info.num_pending as i64, info.num_ack_pending as i64, d));
            }
            for (k, d) in dead {
                out.insert(k, (0, 0, d));
            }
            Ok(out
                .into_iter()
                .map(
                    |((topic, subscriber), (ready, in_flight, dead))| QueueCount {
                        topic,
                        subscriber,
                        ready,
                        in_flight,
                        dead,
                    },
                )
                .collect())
        })
    }

    /// Messages of `topic` (one subscriber's or all), waiting or dead,
    /// oldest first, at most `limit`.
    pub fn queue_list(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        dlq: bool,
        limit: usize,
    ) -> Result<Vec<Stored>, Error> {
        self.run(async move { self.queue_scan(topic, subscriber, dlq, limit).await })
    }

    async fn queue_scan(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        dlq: bool,
        limit: usize,
    ) -> Result<Vec<Stored>, Error> {
        let q = self.q();
        let mut s = if dlq { q.dlq.clone() } else { q.queues.clone() };
        let state = s.info().await.map_err(err)?.state.clone();
        let mut out = Vec::new();
        let mut seq = state.first_sequence.max(1);
        while seq <= state.last_sequence && out.len() < limit {
            match s.get_raw_message(seq).await {
                Ok(m) => {
                    let tail = m
                        .subject
                        .as_str()
                        .split_once('.')
                        .and_then(|(_, r)| r.split_once('.'))
                        .map(|(_, r)| r);
                    if let Some((t, sub)) = tail.and_then(parse_tokens)
                        && t == topic
                        && subscriber.is_none_or(|x| x == sub)
                        && let Ok(envelope) = serde_json::from_slice(&m.payload)
                    {
                        out.push(Stored {
                            seq,
                            subscriber: sub,
                            envelope,
                        });
                    }
                }
                Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(err(e)),
            }
            seq += 1;
        }
        Ok(out)
    }

    /// Drops the waiting (or dead) messages of a topic.
    pub fn queue_purge(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        dlq: bool,
    ) -> Result<u64, Error> {
        let prefix = if dlq { DPREFIX } else { QPREFIX };
        let filter = match subscriber {
            Some(s) => format!("{prefix}.{}", tokens(topic, s)),
            None => format!("{prefix}.t{}.*", hex(topic)),
        };
        self.run(async move {
            let q = self.q();
            let s = if dlq { &q.dlq } else { &q.queues };
            Ok(s.purge().filter(filter).await.map_err(err)?.purged)
        })
    }

    /// Puts dead letters of a topic (one subscriber's, or one by its
    /// sequence) back on their queues as new.
    pub fn queue_redrive(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        seq: Option<u64>,
        now: i64,
    ) -> Result<usize, Error> {
        self.run(async move {
            let dead = self.queue_scan(topic, subscriber, true, 100_000).await?;
            let mut n = 0;
            for d in dead.into_iter().filter(|d| seq.is_none_or(|s| s == d.seq)) {
                let env = d.envelope.redriven(now);
                let body = serde_json::to_vec(&env).map_err(err)?;
                self.q().consumer(topic, &d.subscriber).await?;
                self.js
                    .publish(queue_subject(topic, &d.subscriber), body.into())
                    .await
                    .map_err(err)?
                    .await
                    .map_err(err)?;
                self.q().dlq.delete_message(d.seq).await.map_err(err)?;
                n += 1;
            }
            Ok(n)
        })
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
