//! AMQP channels (`[[integrator.channel_amqp]]`): each consumes a queue
//! on its own connection to an `outgoing_amqp` broker and calls its
//! service once per message. A message is acknowledged only after the
//! service returned; one whose call failed is published again to the end
//! of the queue with its attempt count in the header `x-alpharen-attempts`
//! (confirmed before the original is acknowledged), and after
//! `max_attempts` failures it goes to `dead_letter_queue`, or, without
//! one, is rejected without requeue so the queue's dead-letter exchange
//! takes it. Whatever is in flight when the integrator dies stays
//! unacknowledged, and the broker delivers it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use alpharen_store::config::{ChannelAmqp, OutgoingAmqp};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};
use serde_json::{Value, json};

use crate::amqp::{self, BACKOFF_FIRST, PublishError};
use crate::app::App;
use crate::pool::Outcome;

/// The header that counts a message's failed calls.
pub const ATTEMPTS_HEADER: &str = "x-alpharen-attempts";
/// The header that carries the last failure's text.
const ERROR_HEADER: &str = "x-alpharen-error";
/// Longest error text kept in a header.
const MAX_ERROR: usize = 1000;
/// Time to connect to the broker.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// What becomes of a delivery after its call.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Ack,
    /// No worker was free: back on the queue, not counted as an attempt.
    Requeue,
    /// Failed, attempts left: published again with the new count.
    Retry(String),
    /// Failed for the last time.
    DeadLetter(String),
}

/// `attempt` counts from 1; `result` is the call's (`Err(None)` = busy).
pub fn decide(result: Result<(), Option<String>>, attempt: u32, max_attempts: u32) -> Decision {
    match result {
        Ok(()) => Decision::Ack,
        Err(None) => Decision::Requeue,
        Err(Some(e)) if attempt < max_attempts => Decision::Retry(e),
        Err(Some(e)) => Decision::DeadLetter(e),
    }
}

/// Failed calls a message had before this delivery (its header).
pub fn attempts_before(headers: Option<&FieldTable>) -> u32 {
    let v = headers.and_then(|h| h.inner().get(ATTEMPTS_HEADER));
    match v.map(amqp::to_json) {
        Some(Value::Number(n)) => n.as_u64().map_or(0, |n| n.min(u64::from(u32::MAX)) as u32),
        _ => 0,
    }
}

/// The properties of a message published again: its own, with the new
/// attempt count and the failure.
fn with_attempt(props: &BasicProperties, attempts: u32, error: &str) -> BasicProperties {
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempts));
    let mut text = error.to_string();
    if text.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(LongString::from(text)),
    );
    props.clone().with_headers(headers)
}

/// A channel's consumer task and what it was started from.
struct Running {
    def: ChannelAmqp,
    conn: OutgoingAmqp,
    password: Option<String>,
    task: tokio::task::AbortHandle,
}

/// The running channels, by name.
#[derive(Default)]
pub struct Channels {
    running: Mutex<HashMap<String, Running>>,
}

impl Channels {
    /// Starts, restarts (changed definition or broker) and stops channel
    /// consumers to match the configuration (start, SIGHUP).
    pub fn reconcile(&self, app: &Arc<App>) {
        let config = app.config();
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut keep = Vec::new();
        for def in &config.channel_amqp {
            let Some(out) = app.amqp.get(&def.connection) else {
                tracing::warn!(channel = %def.name, connection = %def.connection, "AMQP channel not started: its connection is left out");
                continue;
            };
            keep.push(def.name.clone());
            if let Some(r) = running.get(&def.name)
                && r.def == *def
                && r.conn == out.def
                && r.password == out.password
            {
                continue;
            }
            if let Some(old) = running.remove(&def.name) {
                old.task.abort();
            }
            let task = tokio::spawn(consume_loop(
                Arc::downgrade(app),
                Arc::new(def.clone()),
                out.def.clone(),
                out.password.clone(),
            ));
            running.insert(
                def.name.clone(),
                Running {
                    def: def.clone(),
                    conn: out.def.clone(),
                    password: out.password.clone(),
                    task: task.abort_handle(),
                },
            );
        }
        running.retain(|name, r| {
            let stay = keep.contains(name);
            if !stay {
                r.task.abort();
            }
            stay
        });
    }

    /// Stops every consumer (shutdown): unacknowledged messages go back.
    pub fn stop(&self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for (_, r) in running.drain() {
            r.task.abort();
        }
    }
}

/// Closes its connection when the consumer ends or is aborted.
struct Closer(Option<Connection>);

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            amqp::drop_connection(c);
        }
    }
}

/// Consumes until aborted, connecting again with backoff after a loss.
async fn consume_loop(
    app: Weak<App>,
    def: Arc<ChannelAmqp>,
    conn: OutgoingAmqp,
    password: Option<String>,
) {
    let mut pause = BACKOFF_FIRST;
    loop {
        let (connected, e) = session(&app, &def, &conn, password.as_deref()).await;
        if connected {
            pause = BACKOFF_FIRST;
        }
        tracing::warn!(channel = %def.name, error = %e, retry_in = ?pause, "AMQP channel lost its broker");
        tokio::time::sleep(pause).await;
        pause = amqp::next_backoff(pause);
    }
}

/// One connection's consumer; answers whether it got connected, and why
/// it ended.
async fn session(
    app: &Weak<App>,
    def: &Arc<ChannelAmqp>,
    conn_def: &OutgoingAmqp,
    password: Option<&str>,
) -> (bool, String) {
    let purpose = format!("channel {}", def.name);
    let conn = match amqp::connect(conn_def, password, &purpose, CONNECT_LIMIT).await {
        Ok(c) => c,
        Err(e) => return (false, e),
    };
    let closer = Closer(Some(conn));
    let Some(conn) = closer.0.as_ref() else {
        return (false, "no connection".into());
    };
    let setup = async {
        let consume = conn.create_channel().await?;
        consume
            .basic_qos(def.prefetch, BasicQosOptions::default())
            .await?;
        let publish = amqp::confirm_channel(conn).await?;
        let consumer = consume
            .basic_consume(
                def.queue.as_str().into(),
                format!("alpharen-{}", def.name).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>((publish, consumer))
    };
    let (publish, mut consumer) = match setup.await {
        Ok(v) => v,
        Err(e) => return (true, format!("cannot consume queue {:?}: {e}", def.queue)),
    };
    tracing::info!(channel = %def.name, queue = %def.queue, "AMQP channel consuming");
    while let Some(d) = consumer.next().await {
        match d {
            Ok(d) => {
                let (app, def, publish) = (app.clone(), def.clone(), publish.clone());
                tokio::spawn(async move { handle(app, def, publish, d).await });
            }
            Err(e) => return (true, e.to_string()),
        }
    }
    (true, "the broker ended the consumer".into())
}

/// The service call of one delivery.
fn call_msg(def: &ChannelAmqp, d: &Delivery, attempt: u32) -> Value {
    let props = &d.properties;
    let headers = props
        .headers()
        .as_ref()
        .map_or_else(|| json!({}), amqp::table_to_json);
    let msg_id = props.message_id().as_ref().map(|m| m.as_str().to_string());
    json!({
        "op": "call", "service": def.service, "channel": def.name,
        "cid": alpharen_store::uuid4().replace('-', ""),
        "data_format": def.data_format, "body": B64.encode(&d.data), "http": {},
        "meta": {
            "msg_id": msg_id, "attempt": attempt,
            "amqp": {
                "queue": def.queue, "exchange": d.exchange.as_str(),
                "routing_key": d.routing_key.as_str(), "redelivered": d.redelivered,
                "delivery_tag": d.delivery_tag, "headers": headers,
                "properties": amqp::properties_json(props), "attempt": attempt,
            },
        },
    })
}

async fn handle(app: Weak<App>, def: Arc<ChannelAmqp>, publish: Channel, d: Delivery) {
    let Some(app) = app.upgrade() else { return };
    let attempt = attempts_before(d.properties.headers().as_ref()) + 1;
    let timeout = Duration::from_secs(def.timeout.unwrap_or(app.config().timeout));
    let out = app
        .pool
        .run(&call_msg(&def, &d, attempt), Instant::now() + timeout)
        .await;
    drop(app);
    let decision = decide(result(out), attempt, def.max_attempts);
    let done = match &decision {
        Decision::Ack => d.acker.ack(BasicAckOptions::default()).await,
        Decision::Requeue => requeue(&d).await,
        Decision::Retry(e) => {
            let props = with_attempt(&d.properties, attempt, e);
            forward(&publish, &def.queue, &d, props, timeout).await
        }
        Decision::DeadLetter(e) => {
            tracing::warn!(channel = %def.name, queue = %def.queue, attempts = attempt, error = %e, "AMQP message dead-lettered");
            match &def.dead_letter_queue {
                Some(q) => {
                    let props = with_attempt(&d.properties, attempt, e);
                    forward(&publish, q, &d, props, timeout).await
                }
                None => d.acker.reject(BasicRejectOptions { requeue: false }).await,
            }
        }
    };
    if let Err(e) = done {
        // The broker delivers it again: nothing unacknowledged is lost.
        tracing::warn!(channel = %def.name, error = %e, "AMQP delivery not settled; the broker will redeliver it");
    }
}

fn result(out: Outcome) -> Result<(), Option<String>> {
    crate::engine::call_result(out)
}

async fn requeue(d: &Delivery) -> lapin::Result<bool> {
    d.acker
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
}

/// Publishes a copy to `queue` through the default exchange and, once the
/// broker confirmed it, acknowledges the original; if it was not
/// confirmed, the original goes back to its queue instead.
async fn forward(
    publish: &Channel,
    queue: &str,
    d: &Delivery,
    props: BasicProperties,
    limit: Duration,
) -> lapin::Result<bool> {
    match amqp::publish(publish, "", queue, &d.data, props, limit).await {
        Ok(()) => d.acker.ack(BasicAckOptions::default()).await,
        Err(PublishError::Refused(e) | PublishError::Lost(e)) => {
            tracing::warn!(queue = %queue, error = %e, "AMQP message not forwarded; requeued");
            requeue(d).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_message_is_retried_until_its_last_attempt() {
        let fail = || Err(Some("boom".to_string()));
        assert_eq!(decide(Ok(()), 1, 3), Decision::Ack);
        assert_eq!(decide(Err(None), 3, 3), Decision::Requeue);
        assert_eq!(decide(fail(), 1, 3), Decision::Retry("boom".into()));
        assert_eq!(decide(fail(), 2, 3), Decision::Retry("boom".into()));
        assert_eq!(decide(fail(), 3, 3), Decision::DeadLetter("boom".into()));
        assert_eq!(decide(fail(), 1, 1), Decision::DeadLetter("boom".into()));
    }

    #[test]
    fn the_attempt_count_travels_in_a_header() {
        assert_eq!(attempts_before(None), 0);
        let props = with_attempt(&BasicProperties::default(), 2, &"é".repeat(800));
        let headers = props.headers().clone().unwrap();
        assert_eq!(attempts_before(Some(&headers)), 2);
        let err = amqp::table_to_json(&headers)[ERROR_HEADER].clone();
        assert_eq!(err.as_str().unwrap().len(), MAX_ERROR);
        // Another client's integer type counts too; a string does not.
        let mut h = FieldTable::default();
        h.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(4));
        assert_eq!(attempts_before(Some(&h)), 4);
        h.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongString("4".into()));
        assert_eq!(attempts_before(Some(&h)), 0);
    }
}
