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

use crate::Error;
use crate::kv::ClusterKv;

mod depth;
mod message;
mod wake;

use depth::{Depths, full};
use message::{DPREFIX, QPREFIX, hex, tokens};
pub use message::{Envelope, dlq_subject, durable, parse_tokens, queue_subject};

pub const QUEUES: &str = "AR_QUEUES";
pub const DLQ: &str = "AR_DLQ";
/// A message taken and neither acked nor touched for this long goes to
/// another member; a handler that runs longer is kept alive by
/// [`ClusterKv::queue_touch`].
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long the list of consumers is trusted before it is read again.
const CONSUMERS_TTL: Duration = Duration::from_secs(2);
/// How long a take waits for one consumer to answer before it goes on
/// to the next: a consumer just made may have no leader yet, and one
/// that does not answer must not hold up the delivery of every queue.
const CONSUMER_ANSWER: Duration = Duration::from_secs(1);

fn err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster queues: {e}"))
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

/// Counts of one queue (`ready` includes messages waiting for a retry).
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
    depths: Mutex<Depths>,
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
        depths: Mutex::default(),
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

    fn depths(&self) -> std::sync::MutexGuard<'_, Depths> {
        self.depths.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the durable consumer of a queue unless this member made or
    /// found it before (consumers are never deleted); its name.
    async fn ensure(&self, topic: &str, subscriber: &str) -> Result<String, Error> {
        let name = durable(topic, subscriber);
        if self
            .ensured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&name)
        {
            return Ok(name);
        }
        self.queues
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
        self.ensured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone());
        // The next take reads the list again and finds it.
        *self.consumers.lock().await = None;
        Ok(name)
    }

    /// Whether `t`'s queue has room, by this member's count while that
    /// is trusted, else by reading its depth ([`depth`]).
    async fn room(&self, t: &Target<'_>) -> Result<bool, Error> {
        let name = self.ensure(t.topic, t.subscriber).await?;
        if self.depths().trusted(&name, t.max_depth, Instant::now()) {
            return Ok(true);
        }
        let at = Instant::now();
        let subject = queue_subject(t.topic, t.subscriber);
        let depth = stored(&self.queues, &subject, QPREFIX)
            .await?
            .into_values()
            .sum();
        self.depths().read(&name, depth, at);
        Ok(!full(depth, t.max_depth))
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
            match tokio::time::timeout(
                CONSUMER_ANSWER,
                self.queues.get_consumer::<pull::Config>(&n),
            )
            .await
            {
                Ok(Ok(c)) => list.push(c),
                Ok(Err(e)) => tracing::debug!(consumer = %n, error = %e, "consumer gone"),
                Err(_) => {
                    tracing::debug!(consumer = %n, "consumer not answering; left out this time")
                }
            }
        }
        *cache = Some((Instant::now(), list.clone()));
        Ok(list)
    }
}

/// Messages stored per (topic, subscriber) on the subjects of `stream`
/// that match `filter`. A work queue keeps a message until it is acked,
/// so this is a queue's depth: waiting, in flight, or waiting for a retry
/// (those are in none of its consumer's counts).
async fn stored(
    stream: &stream::Stream,
    filter: &str,
    prefix: &str,
) -> Result<BTreeMap<(String, String), u64>, Error> {
    let mut out = BTreeMap::new();
    let mut subjects = stream.info_with_subjects(filter).await.map_err(err)?;
    while let Some(s) = subjects.next().await {
        let (subject, n) = s.map_err(err)?;
        if let Some(k) = subject
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(parse_tokens)
        {
            out.insert(k, n as u64);
        }
    }
    Ok(out)
}

impl ClusterKv {
    fn q(&self) -> &Queues {
        &self.h.queues
    }

    /// Stores one message per target (each queue's room checked first,
    /// see [`depth`]; `Some(i)`: target `i`'s queue is full and nothing
    /// was stored); a publish retried after a lost acknowledgement is
    /// stored once.
    pub fn queue_publish(
        &self,
        targets: &[Target<'_>],
        envelope: &Envelope,
    ) -> Result<Option<usize>, Error> {
        let body = serde_json::to_vec(envelope).map_err(err)?;
        self.run(async move {
            let q = self.q();
            for (i, t) in targets.iter().enumerate() {
                if !q.room(t).await? {
                    return Ok(Some(i));
                }
            }
            let mut acks = Vec::new();
            for t in targets {
                let mut headers = async_nats::HeaderMap::new();
                let dedup = format!("{}.{}", envelope.msg_id, hex(t.subscriber));
                headers.insert(async_nats::header::NATS_MESSAGE_ID, dedup.as_str());
                let ack = self
                    .h
                    .js
                    .publish_with_headers(
                        queue_subject(t.topic, t.subscriber),
                        headers,
                        body.clone().into(),
                    )
                    .await
                    .map_err(err)?;
                // Counted once sent: one whose ack fails is over-counted.
                q.depths().stored(&durable(t.topic, t.subscriber));
                acks.push(ack);
            }
            for a in acks {
                a.await.map_err(err)?;
            }
            self.wake_members().await;
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
                loop {
                    let m = match tokio::time::timeout(CONSUMER_ANSWER, batch.next()).await {
                        Ok(Some(m)) => m.map_err(err)?,
                        Ok(None) => break,
                        Err(_) => {
                            tracing::debug!(
                                topic,
                                subscriber,
                                "no answer from the queue's consumer; next queue"
                            );
                            break;
                        }
                    };
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
        self.h
            .js
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
            let mut dead = stored(&q.dlq, &format!("{DPREFIX}.>"), DPREFIX).await?;
            let mut depth = stored(&q.queues, &format!("{QPREFIX}.>"), QPREFIX).await?;
            let mut out = BTreeMap::new();
            for mut c in q.all_consumers().await? {
                let Ok(info) = c.info().await else { continue };
                let Some(k) = parse_tokens(&info.name) else {
                    continue;
                };
                let in_flight = info.num_ack_pending as u64;
                let ready = depth.remove(&k).unwrap_or(0).saturating_sub(in_flight);
                let d = dead.remove(&k).unwrap_or(0);
                out.insert(k, (ready as i64, in_flight as i64, d as i64));
            }
            // Queues whose consumer this member's list does not have yet.
            for (k, n) in depth {
                let d = dead.remove(&k).unwrap_or(0);
                out.insert(k, (n as i64, 0, d as i64));
            }
            for (k, d) in dead {
                out.insert(k, (0, 0, d as i64));
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
                self.q().ensure(topic, &d.subscriber).await?;
                self.h
                    .js
                    .publish(queue_subject(topic, &d.subscriber), body.into())
                    .await
                    .map_err(err)?
                    .await
                    .map_err(err)?;
                self.q().dlq.delete_message(d.seq).await.map_err(err)?;
                n += 1;
            }
            if n > 0 {
                self.wake_members().await;
            }
            Ok(n)
        })
    }
}
