//! The queues of a cluster member: [`Broker`] over the cluster's
//! JetStream streams (`alpharen_cluster::pubsub`), so a message published
//! on any member is delivered by any member, and the dead letters,
//! counts, purges and redrives are the cluster's.

use std::sync::Arc;
use std::time::Duration;

use alpharen_cluster::kv::ClusterKv;
use alpharen_cluster::pubsub::{Envelope, Stored, Taken, Target};
use serde_json::{Value, json};

use super::queues::{Broker, Delivery, QueueStat, Route};
use super::{DataError, now_ms};

pub struct ClusterQueues(pub Arc<ClusterKv>);

/// The stored form of a publish: the policy of its topic (all routes of
/// a publish share it) travels with the message.
fn envelope(routes: &[Route], msg_id: String, data: &Value, now: i64) -> Envelope {
    let first = routes.first();
    Envelope {
        msg_id,
        published_at: now,
        expires_at: first.and_then(|r| r.expiry_ms).map(|e| now + e),
        max_attempts: first.map_or(1, |r| r.max_attempts),
        backoff_ms: first.map_or(0, |r| r.backoff_ms),
        data: data.clone(),
        last_error: None,
        attempts: 0,
    }
}

fn delivery(t: Taken) -> Delivery {
    Delivery {
        id: t.id as i64,
        msg_id: t.envelope.msg_id,
        topic: t.topic,
        subscriber: t.subscriber,
        data: t.envelope.data,
        attempts: t.attempts,
        max_attempts: t.envelope.max_attempts,
        backoff_ms: t.envelope.backoff_ms,
    }
}

/// A stored message as `ctl integrator queue` lists it.
fn listed(m: Stored, dlq: bool) -> Value {
    json!({
        "id": m.seq, "msg_id": m.envelope.msg_id, "subscriber": m.subscriber,
        "data": m.envelope.data, "attempts": m.envelope.attempts,
        "state": if dlq { "dlq" } else { "ready" },
        "last_error": m.envelope.last_error, "published_at": m.envelope.published_at,
    })
}

fn until(at: i64) -> Duration {
    Duration::from_millis((at - now_ms()).max(0) as u64)
}

impl Broker for ClusterQueues {
    fn publish(&self, routes: &[Route], data: &Value, now: i64) -> Result<String, DataError> {
        let env = envelope(routes, super::queues::msg_id(), data, now);
        let targets: Vec<Target<'_>> = routes
            .iter()
            .map(|r| Target {
                topic: &r.topic,
                subscriber: &r.subscriber,
                max_depth: r.max_depth,
            })
            .collect();
        match self.0.queue_publish(&targets, &env)? {
            None => Ok(env.msg_id),
            Some(i) => Err(DataError::Full {
                topic: routes[i].topic.clone(),
                subscriber: routes[i].subscriber.clone(),
                depth: routes[i].max_depth,
            }),
        }
    }

    fn take_due(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, DataError> {
        Ok(self
            .0
            .queue_take(limit, now)?
            .into_iter()
            .map(delivery)
            .collect())
    }

    fn ack(&self, id: i64) -> Result<(), DataError> {
        Ok(self.0.queue_ack(id as u64)?)
    }

    fn nack(&self, id: i64, error: &str, next_at: Option<i64>) -> Result<(), DataError> {
        match next_at {
            Some(t) => self.0.queue_retry(id as u64, until(t))?,
            None => self.0.queue_dead(id as u64, error)?,
        }
        Ok(())
    }

    fn release(&self, id: i64, next_at: i64) -> Result<(), DataError> {
        Ok(self.0.queue_retry(id as u64, until(next_at))?)
    }

    fn touch(&self, id: i64) -> Result<(), DataError> {
        Ok(self.0.queue_touch(id as u64)?)
    }

    /// JetStream hands a message that was in flight on a member that
    /// stopped to another after the ack wait; nothing to do here.
    fn recover(&self) -> Result<usize, DataError> {
        Ok(0)
    }

    fn queue_stats(&self) -> Result<Vec<QueueStat>, DataError> {
        Ok(self
            .0
            .queue_counts()?
            .into_iter()
            .map(|c| QueueStat {
                topic: c.topic,
                subscriber: c.subscriber,
                ready: c.ready,
                in_flight: c.in_flight,
                dead: c.dead,
            })
            .collect())
    }

    fn queue_messages(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        dlq: bool,
        limit: i64,
    ) -> Result<Value, DataError> {
        let list = self
            .0
            .queue_list(topic, subscriber, dlq, limit.max(0) as usize)?;
        Ok(Value::Array(
            list.into_iter().map(|m| listed(m, dlq)).collect(),
        ))
    }

    fn purge(&self, topic: &str, subscriber: Option<&str>, dlq: bool) -> Result<usize, DataError> {
        Ok(self.0.queue_purge(topic, subscriber, dlq)? as usize)
    }

    fn redrive(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        id: Option<i64>,
        now: i64,
    ) -> Result<usize, DataError> {
        Ok(self
            .0
            .queue_redrive(topic, subscriber, id.map(|i| i as u64), now)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_carries_its_topics_policy_and_a_take_gives_it_back() {
        let route = |sub: &str| Route {
            topic: "t".into(),
            subscriber: sub.into(),
            max_depth: 10,
            expiry_ms: Some(5_000),
            max_attempts: 4,
            backoff_ms: 250,
        };
        let env = envelope(
            &[route("a"), route("b")],
            "m1".into(),
            &json!({"n": 1}),
            1_000,
        );
        assert_eq!(
            (env.expires_at, env.max_attempts, env.backoff_ms),
            (Some(6_000), 4, 250)
        );
        let d = delivery(Taken {
            id: 7,
            topic: "t".into(),
            subscriber: "b".into(),
            envelope: env,
            attempts: 2,
        });
        assert_eq!(
            (d.id, d.msg_id.as_str(), d.attempts, d.max_attempts),
            (7, "m1", 2, 4)
        );
        assert_eq!(d.data, json!({"n": 1}));
        let none = envelope(&[], "m2".into(), &Value::Null, 0);
        assert_eq!((none.expires_at, none.max_attempts), (None, 1));
    }
}
