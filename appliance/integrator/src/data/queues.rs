//! ARPuSuB: the pub/sub and `invoke_async` queues, one row per message
//! and subscriber, with leasing, retries, expiry and dead letters.

use rusqlite::params;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Data, DataError};

/// One message taken from a queue for delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub msg_id: String,
    pub topic: String,
    pub subscriber: String,
    pub data: Value,
    pub attempts: u32,
    pub max_attempts: u32,
    pub backoff_ms: u64,
}

/// Where a message goes: a topic's subscriber or (topic "") an
/// `invoke_async` target.
#[derive(Debug, Clone)]
pub struct Route {
    pub topic: String,
    pub subscriber: String,
    pub max_depth: u64,
    pub expiry_ms: Option<i64>,
    pub max_attempts: u32,
    pub backoff_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueStat {
    pub topic: String,
    pub subscriber: String,
    pub ready: i64,
    pub in_flight: i64,
    pub dead: i64,
}

/// The queue operations of delivery, the SDK and `ctl`, over either
/// backend: SQLite on a node outside a cluster ([`Local`]), the cluster's
/// JetStream streams on a member (`cluster_queues.rs`). [`Data::queues`]
/// picks the one in use.
pub trait Broker: Send + Sync {
    /// Stores one copy of the message per route.
    fn publish(&self, routes: &[Route], data: &Value, now: i64) -> Result<String, DataError>;
    /// Leases up to `limit` due messages (they are not handed out twice).
    fn take_due(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, DataError>;
    /// Delivered: forget it.
    fn ack(&self, id: i64) -> Result<(), DataError>;
    /// Failed: try again at `next_at`, or dead-letter when `next_at` is None.
    fn nack(&self, id: i64, error: &str, next_at: Option<i64>) -> Result<(), DataError>;
    /// Not attempted (no worker free): back to ready.
    fn release(&self, id: i64, next_at: i64) -> Result<(), DataError>;
    /// Still being handled (a long handler): keep the lease.
    fn touch(&self, id: i64) -> Result<(), DataError>;
    /// After a restart: leased messages were in flight and are due again.
    fn recover(&self) -> Result<usize, DataError>;
    /// Ready, in-flight and dead counts per topic and subscriber.
    fn queue_stats(&self) -> Result<Vec<QueueStat>, DataError>;
    /// Messages of one topic (and subscriber), `dlq` true for the dead letters.
    fn queue_messages(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        dlq: bool,
        limit: i64,
    ) -> Result<Value, DataError>;
    /// Drops the ready (or, `dlq`, the dead) messages of a topic.
    fn purge(&self, topic: &str, subscriber: Option<&str>, dlq: bool) -> Result<usize, DataError>;
    /// Puts dead letters of a topic (one subscriber's, or one message by
    /// `id`) back on their queue as new: no attempts counted, due now, and
    /// as long to live as when they were published.
    fn redrive(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        id: Option<i64>,
        now: i64,
    ) -> Result<usize, DataError>;
}

/// The queues in use: the node's SQLite, or the cluster's.
pub enum Queues<'a> {
    Local(Local<'a>),
    Cluster(super::cluster_queues::ClusterQueues),
}

impl<'a> std::ops::Deref for Queues<'a> {
    type Target = dyn Broker + 'a;
    fn deref(&self) -> &Self::Target {
        match self {
            Queues::Local(l) => l,
            Queues::Cluster(c) => c,
        }
    }
}

impl Data {
    /// The cluster's queues on a member (an error until they are
    /// reachable), else the node's own.
    pub fn queues(&self) -> Result<Queues<'_>, DataError> {
        Ok(match self.cluster.kv()? {
            Some(kv) => Queues::Cluster(super::cluster_queues::ClusterQueues(kv)),
            None => Queues::Local(Local(self)),
        })
    }
}

/// The SQLite queues: one row per message and subscriber.
pub struct Local<'a>(pub &'a Data);

pub(super) fn msg_id() -> String {
    alpharen_store::uuid4().replace('-', "")
}

impl Broker for Local<'_> {
    fn queue_stats(&self) -> Result<Vec<QueueStat>, DataError> {
        self.0.with(|c| {
            let mut st = c.prepare(
                "SELECT topic, subscriber,
                        SUM(state = 'ready'), SUM(state = 'leased'), SUM(state = 'dlq')
                 FROM integrator_queue GROUP BY topic, subscriber ORDER BY topic, subscriber",
            )?;
            let rows = st.query_map([], |r| {
                Ok(QueueStat {
                    topic: r.get(0)?,
                    subscriber: r.get(1)?,
                    ready: r.get(2)?,
                    in_flight: r.get(3)?,
                    dead: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn queue_messages(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        dlq: bool,
        limit: i64,
    ) -> Result<Value, DataError> {
        self.0.with(|c| {
            let mut st = c.prepare(
                "SELECT id, msg_id, subscriber, data, attempts, state, last_error, published_at
                 FROM integrator_queue WHERE topic = ?1 AND (?2 IS NULL OR subscriber = ?2)
                 AND ((?3 AND state = 'dlq') OR (NOT ?3 AND state != 'dlq'))
                 ORDER BY id LIMIT ?4",
            )?;
            let rows = st.query_map(params![topic, subscriber, dlq, limit], |r| {
                let data: String = r.get(3)?;
                Ok(json!({
                    "id": r.get::<_, i64>(0)?, "msg_id": r.get::<_, String>(1)?,
                    "subscriber": r.get::<_, String>(2)?,
                    "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::Null),
                    "attempts": r.get::<_, i64>(4)?, "state": r.get::<_, String>(5)?,
                    "last_error": r.get::<_, Option<String>>(6)?,
                    "published_at": r.get::<_, i64>(7)?,
                }))
            })?;
            Ok(Value::Array(rows.collect::<Result<Vec<_>, _>>()?))
        })
    }

    fn purge(&self, topic: &str, subscriber: Option<&str>, dlq: bool) -> Result<usize, DataError> {
        self.0.with(|c| {
            Ok(c.execute(
                "DELETE FROM integrator_queue WHERE topic = ?1 AND (?2 IS NULL OR subscriber = ?2)
                 AND state = ?3",
                params![topic, subscriber, if dlq { "dlq" } else { "ready" }],
            )?)
        })
    }
    fn redrive(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        id: Option<i64>,
        now: i64,
    ) -> Result<usize, DataError> {
        self.0.with(|c| {
            Ok(c.execute(
                "UPDATE integrator_queue SET state = 'ready', attempts = 0, last_error = NULL,
                   next_at = ?4,
                   expires_at = CASE WHEN expires_at IS NULL THEN NULL
                                ELSE ?4 + (expires_at - published_at) END
                 WHERE topic = ?1 AND (?2 IS NULL OR subscriber = ?2)
                   AND (?3 IS NULL OR id = ?3) AND state = 'dlq'",
                params![topic, subscriber, id, now],
            )?)
        })
    }

    fn publish(&self, routes: &[Route], data: &Value, now: i64) -> Result<String, DataError> {
        let id = msg_id();
        let text = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
        self.0.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for r in routes {
                let depth: i64 = tx
                    .prepare_cached(
                        "SELECT COUNT(*) FROM integrator_queue WHERE topic = ?1 AND subscriber = ?2
                         AND state != 'dlq'",
                    )?
                    .query_row(params![r.topic, r.subscriber], |row| row.get(0))?;
                if depth as u64 >= r.max_depth {
                    return Err(DataError::Full {
                        topic: r.topic.clone(),
                        subscriber: r.subscriber.clone(),
                        depth: r.max_depth,
                    });
                }
                tx.prepare_cached(
                    "INSERT INTO integrator_queue (msg_id, topic, subscriber, data, published_at,
                     expires_at, max_attempts, backoff_ms, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?5)",
                )?
                .execute(params![
                    id,
                    r.topic,
                    r.subscriber,
                    text,
                    now,
                    r.expiry_ms.map(|e| now + e),
                    r.max_attempts,
                    r.backoff_ms as i64
                ])?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    fn take_due(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, DataError> {
        self.0.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE integrator_queue SET state = 'dlq', last_error = 'expired before delivery'
                 WHERE state = 'ready' AND expires_at IS NOT NULL AND expires_at <= ?1",
                params![now],
            )?;
            let out = {
                let mut st = tx.prepare_cached(
                    "SELECT id, msg_id, topic, subscriber, data, attempts, max_attempts, backoff_ms
                     FROM integrator_queue WHERE state = 'ready' AND next_at <= ?1
                     ORDER BY next_at, id LIMIT ?2",
                )?;
                let rows = st.query_map(params![now, limit as i64], |r| {
                    let data: String = r.get(4)?;
                    Ok(Delivery {
                        id: r.get(0)?,
                        msg_id: r.get(1)?,
                        topic: r.get(2)?,
                        subscriber: r.get(3)?,
                        data: serde_json::from_str(&data).unwrap_or(Value::Null),
                        attempts: r.get(5)?,
                        max_attempts: r.get(6)?,
                        backoff_ms: r.get::<_, i64>(7)?.max(0) as u64,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            for d in &out {
                tx.prepare_cached("UPDATE integrator_queue SET state = 'leased' WHERE id = ?1")?
                    .execute(params![d.id])?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn ack(&self, id: i64) -> Result<(), DataError> {
        self.0.with(|c| {
            c.prepare_cached("DELETE FROM integrator_queue WHERE id = ?1")?
                .execute(params![id])?;
            Ok(())
        })
    }

    fn nack(&self, id: i64, error: &str, next_at: Option<i64>) -> Result<(), DataError> {
        self.0.with(|c| {
            match next_at {
                Some(t) => c.execute(
                    "UPDATE integrator_queue SET state = 'ready', attempts = attempts + 1,
                     last_error = ?2, next_at = ?3 WHERE id = ?1",
                    params![id, error, t],
                )?,
                None => c.execute(
                    "UPDATE integrator_queue SET state = 'dlq', attempts = attempts + 1,
                     last_error = ?2 WHERE id = ?1",
                    params![id, error],
                )?,
            };
            Ok(())
        })
    }

    fn release(&self, id: i64, next_at: i64) -> Result<(), DataError> {
        self.0.with(|c| {
            c.execute(
                "UPDATE integrator_queue SET state = 'ready', next_at = ?2 WHERE id = ?1",
                params![id, next_at],
            )?;
            Ok(())
        })
    }

    fn touch(&self, _id: i64) -> Result<(), DataError> {
        // A lease here lasts until the message is settled or the
        // integrator restarts.
        Ok(())
    }

    fn recover(&self) -> Result<usize, DataError> {
        self.0.with(|c| {
            Ok(c.execute(
                "UPDATE integrator_queue SET state = 'ready' WHERE state = 'leased'",
                [],
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_data as open;

    #[test]
    fn queue_depth_retry_dlq_expiry_recover() {
        let (_d, data) = open();
        let data = Local(&data);
        let route = Route {
            topic: "t".into(),
            subscriber: "s".into(),
            max_depth: 2,
            expiry_ms: Some(10_000),
            max_attempts: 2,
            backoff_ms: 100,
        };
        let routes = [route];
        data.publish(&routes, &json!(1), 0).expect("pub");
        data.publish(&routes, &json!(2), 0).expect("pub");
        assert!(matches!(
            data.publish(&routes, &json!(3), 0),
            Err(DataError::Full { .. })
        ));
        let got = data.take_due(0, 10).expect("take");
        assert_eq!(got.len(), 2);
        assert!(
            data.take_due(0, 10).expect("take").is_empty(),
            "leased twice"
        );
        data.ack(got[0].id).expect("ack");
        data.nack(got[1].id, "boom", Some(100)).expect("nack");
        assert!(data.take_due(99, 10).expect("take").is_empty());
        let again = data.take_due(100, 10).expect("take");
        assert_eq!(again[0].attempts, 1);
        data.nack(again[0].id, "boom", None).expect("dlq");
        let stats = data.queue_stats().expect("stats");
        assert_eq!((stats[0].ready, stats[0].dead), (0, 1));
        data.publish(&routes, &json!(4), 0).expect("pub");
        let leased = data.take_due(0, 10).expect("take");
        assert_eq!(leased.len(), 1);
        assert_eq!(data.recover().expect("recover"), 1);
        assert!(
            data.take_due(20_000, 10).expect("take").is_empty(),
            "expired one delivered"
        );
        assert_eq!(data.queue_stats().expect("stats")[0].dead, 2);
        assert_eq!(data.purge("t", None, true).expect("purge"), 2);
    }

    #[test]
    fn redrive_puts_dead_letters_back_as_new() {
        let (_d, data) = open();
        let data = Local(&data);
        let route = |sub: &str| Route {
            topic: "t".into(),
            subscriber: sub.into(),
            max_depth: 10,
            expiry_ms: Some(1_000),
            max_attempts: 1,
            backoff_ms: 100,
        };
        data.publish(&[route("a"), route("b")], &json!("m"), 0)
            .expect("pub");
        for d in data.take_due(0, 10).expect("take") {
            data.nack(d.id, "boom", None).expect("dlq");
        }
        // Long after the message would have expired.
        let now = 50_000;
        assert_eq!(data.redrive("t", Some("a"), None, now).expect("redrive"), 1);
        assert_eq!(data.redrive("t", Some("a"), None, now).expect("again"), 0);
        let got = data.take_due(now, 10).expect("take");
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].subscriber.as_str(), got[0].attempts), ("a", 0));
        let dead = data.queue_messages("t", Some("b"), true, 10).expect("dlq");
        let id = dead[0]["id"].as_i64().expect("id");
        assert_eq!(
            data.redrive("t", None, Some(id + 100), now).expect("none"),
            0
        );
        assert_eq!(data.redrive("t", None, Some(id), now).expect("one"), 1);
        assert_eq!(data.take_due(now + 999, 10).expect("take").len(), 1);
    }
}
