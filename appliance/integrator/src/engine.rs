//! The async side of the integrator: answers workers' KV / publish / lock /
//! invoke_async requests, delivers queued messages to services (at least
//! once: a message is deleted only after its handler returned without
//! error) and runs scheduled jobs. All state is in `Data` (SQLite, or on
//! a cluster member the cluster's JetStream).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use alpharen_store::config::{Integrator, Job};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::app::App;
use crate::data::{Data, DataError, KvValue, Route, now_ms};
use crate::pool::Outcome;
use crate::retry;
use crate::sched::Plan;
use crate::worker::{BoxFuture, CallHost, Host};
use alpharen_store::uuid4;

mod claim;
mod jobs;
pub use jobs::{scheduler_loop, start_job};

/// How often a delivery whose handler still runs renews its lease.
const TOUCH_EVERY: Duration = Duration::from_secs(10);
/// Late by more than this at startup counts as a misfire (seconds).
const MISFIRE_GRACE: i64 = 1;
/// Longest a single key or namespace may be.
const MAX_KEY: usize = 1024;

/// One job as the scheduler holds it.
struct JobState {
    job: Job,
    plan: Result<Plan, String>,
    next_run: Option<i64>,
    running: Arc<AtomicU32>,
}

pub struct Engine {
    pub data: Arc<Data>,
    /// Woken by publish / invoke_async so delivery does not wait for a tick.
    wake: Notify,
    in_flight: AtomicUsize,
    jobs: Mutex<HashMap<String, JobState>>,
    /// The config the job table was last reconciled with.
    jobs_config: Mutex<Option<Arc<Integrator>>>,
    /// Claims of fires lost to another member and watched (`claim.rs`).
    watched: AtomicU32,
}

impl Engine {
    pub fn new(data: Arc<Data>) -> Arc<Engine> {
        Arc::new(Engine {
            data,
            wake: Notify::new(),
            in_flight: AtomicUsize::new(0),
            jobs: Mutex::new(HashMap::new()),
            jobs_config: Mutex::new(None),
            watched: AtomicU32::new(0),
        })
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobState>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Routes of a publish: one per subscriber of the topic.
    fn topic_routes(config: &Integrator, topic: &str) -> Result<Vec<Route>, DataError> {
        let t = config
            .topics
            .iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| DataError::NotFound(format!("no topic is named {topic:?}")))?;
        if t.subscribers.is_empty() {
            return Err(DataError::NotFound(format!(
                "topic {topic:?} has no subscribers; the message would be lost"
            )));
        }
        Ok(t.subscribers
            .iter()
            .map(|s| Route {
                topic: t.name.clone(),
                subscriber: s.clone(),
                max_depth: t.max_depth,
                expiry_ms: (t.expiry > 0).then(|| t.expiry as i64 * 1000),
                max_attempts: t.max_attempts,
                backoff_ms: t.backoff_ms,
            })
            .collect())
    }

    pub fn publish(
        &self,
        config: &Integrator,
        topic: &str,
        data: &Value,
    ) -> Result<String, DataError> {
        let routes = Self::topic_routes(config, topic)?;
        let id = self.data.queues()?.publish(&routes, data, now_ms())?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Dead letters back on their queue, delivered at once.
    pub fn redrive(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        id: Option<i64>,
    ) -> Result<usize, DataError> {
        let n = self
            .data
            .queues()?
            .redrive(topic, subscriber, id, now_ms())?;
        self.wake.notify_one();
        Ok(n)
    }

    /// `invoke_async`: a queue of its own (topic "") with the async retry policy.
    pub fn invoke_async(
        &self,
        config: &Integrator,
        service: &str,
        payload: &Value,
    ) -> Result<String, DataError> {
        let route = Route {
            topic: String::new(),
            subscriber: service.to_string(),
            max_depth: 100_000,
            expiry_ms: None,
            max_attempts: config.async_attempts,
            backoff_ms: config.async_backoff_ms,
        };
        let id = self.data.queues()?.publish(&[route], payload, now_ms())?;
        self.wake.notify_one();
        Ok(id)
    }
}

// ---- requests from workers ---------------------------------------------------

/// Answers host frames; holds the app weakly (the app owns the pool that
/// owns this).
pub struct HostImpl(pub Weak<App>);

fn s<'a>(req: &'a Value, key: &str) -> Result<&'a str, (String, &'static str)> {
    req[key]
        .as_str()
        .filter(|v| v.len() <= MAX_KEY)
        .ok_or_else(|| {
            (
                format!("{key} must be a string of at most {MAX_KEY} bytes"),
                "invalid_params",
            )
        })
}

fn ttl_ms(req: &Value) -> Option<i64> {
    req["ttl"]
        .as_f64()
        .filter(|t| *t > 0.0)
        .map(|t| (t * 1000.0) as i64)
}

fn host_call(app: &App, req: &Value) -> Result<Value, (String, &'static str)> {
    let engine = &app.engine;
    let data = &engine.data;
    let now = now_ms();
    let db = |e: DataError| (e.to_string(), e.code());
    let value = |key: &str| -> Result<Option<KvValue>, (String, &'static str)> {
        match &req[key] {
            Value::Null => Ok(None),
            v => KvValue::from_wire(v).map(Some).ok_or_else(|| {
                (
                    format!("{key} is neither {{\"json\": ...}} nor {{\"b64\": ...}}"),
                    "invalid_params",
                )
            }),
        }
    };
    match req["call"].as_str().unwrap_or_default() {
        "kv.get" => Ok(data
            .kv_get(s(req, "ns")?, s(req, "key")?, now)
            .map_err(db)?
            .map(|v| v.to_wire())
            .unwrap_or(Value::Null)),
        "kv.set" => {
            let v = value("value")?
                .ok_or_else(|| ("value is required".to_string(), "invalid_params"))?;
            data.kv_set(s(req, "ns")?, s(req, "key")?, &v, ttl_ms(req), now)
                .map_err(db)?;
            Ok(json!(true))
        }
        "kv.del" => Ok(json!(
            data.kv_del(s(req, "ns")?, s(req, "key")?, now)
                .map_err(db)?
        )),
        "kv.cas" => {
            let (exp, new) = (value("expected")?, value("new")?);
            Ok(json!(
                data.kv_cas(
                    s(req, "ns")?,
                    s(req, "key")?,
                    exp.as_ref(),
                    new.as_ref(),
                    ttl_ms(req),
                    now
                )
                .map_err(db)?
            ))
        }
        "kv.keys" => {
            let prefix = req["prefix"].as_str().unwrap_or_default();
            Ok(json!(
                data.kv_keys(s(req, "ns")?, prefix, now, 100_000)
                    .map_err(db)?
            ))
        }
        "publish" => Ok(json!(
            engine
                .publish(&app.config(), s(req, "topic")?, &req["data"])
                .map_err(db)?
        )),
        "invoke_async" => Ok(json!(
            engine
                .invoke_async(&app.config(), s(req, "service")?, &req["payload"])
                .map_err(db)?
        )),
        "lock.acquire" => {
            let ttl = ttl_ms(req).unwrap_or(20_000);
            Ok(json!(
                data.lock_acquire(s(req, "name")?, s(req, "owner")?, ttl, now)
                    .map_err(db)?
            ))
        }
        "lock.release" => Ok(json!(
            data.lock_release(s(req, "name")?, s(req, "owner")?, now)
                .map_err(db)?
        )),
        "wsx.send" => crate::wsx::host_send(app, req),
        "kv.command" => {
            let args = req["args"].as_array().map_or(&[][..], Vec::as_slice);
            data.kv_command(s(req, "ns")?, s(req, "key")?, s(req, "cmd")?, args, now)
                .map_err(db)
        }
        other => crate::zato::host_call(&app.view(), &app.config().user_config, req)
            .unwrap_or_else(|| Err((format!("unknown host call {other:?}"), "method_not_found"))),
    }
}

impl Host for HostImpl {
    fn begin(&self) -> Box<dyn CallHost> {
        Box::new(CallScope {
            app: self.0.clone(),
            sql: crate::sql::Sessions::default(),
        })
    }
}

/// The requests of one service call; its SQL sessions end with it.
struct CallScope {
    app: Weak<App>,
    sql: crate::sql::Sessions,
}

impl CallHost for CallScope {
    fn call<'a>(&'a mut self, req: &'a Value) -> BoxFuture<'a, Value> {
        Box::pin(async move {
            let Some(app) = self.app.upgrade() else {
                return json!({"ok": false, "code": "unavailable", "error": "integrator stopping"});
            };
            if req["call"] == "amqp.send" {
                return match app.amqp.send(req).await {
                    Ok(v) => json!({"ok": true, "value": v}),
                    Err(e) => e.to_reply(),
                };
            }
            if req["call"].as_str().is_some_and(|c| c.starts_with("link.")) {
                return match crate::links::host_call(&app, req).await {
                    Ok(v) => json!({"ok": true, "value": v}),
                    Err((error, code)) => json!({"ok": false, "code": code, "error": error}),
                };
            }
            if req["call"].as_str().is_some_and(|c| c.starts_with("sql.")) {
                return match self.sql.call(&app.sql, req).await {
                    Ok(v) => json!({"ok": true, "value": v}),
                    Err(e) => e.to_reply(),
                };
            }
            let out = off_thread_in_cluster(&app, req.clone(), |app, req| host_call(app, &req))
                .await
                .unwrap_or_else(|e| Err((format!("the host call failed: {e}"), "internal")));
            match out {
                Ok(v) => json!({"ok": true, "value": v}),
                Err((error, code)) => json!({"ok": false, "code": code, "error": error}),
            }
        })
    }
}

/// Runs a data-plane call. In a cluster each is a JetStream round trip,
/// which takes seconds while a stream leader is elected: it runs on a
/// blocking thread, so the integrator's only runtime thread goes on
/// serving channels, other calls and the scheduler. Outside a cluster
/// (SQLite, microseconds) it runs here, without the hand-off.
pub(crate) async fn off_thread_in_cluster<A, R>(
    app: &Arc<App>,
    arg: A,
    f: fn(&App, A) -> R,
) -> Result<R, tokio::task::JoinError>
where
    A: Send + 'static,
    R: Send + 'static,
{
    if !app.engine.data.cluster.clustered() {
        return Ok(f(app, arg));
    }
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app, arg)).await
}

// ---- delivery ----------------------------------------------------------------

/// What one service call in a worker came to.
pub(crate) fn call_result(out: Outcome) -> Result<(), Option<String>> {
    match out {
        Outcome::Reply(v)
            if v["ok"] == json!(true) && v["status"].as_u64().unwrap_or(200) < 400 =>
        {
            Ok(())
        }
        Outcome::Reply(v) => Err(Some(
            v["error"]
                .as_str()
                .unwrap_or("service answered with an error")
                .to_string(),
        )),
        Outcome::Busy => Err(None),
        Outcome::Failed(f) => Err(Some(f.to_string())),
    }
}

pub(crate) fn call_msg(service: &str, channel: &str, payload: &Value, meta: Value) -> Value {
    json!({
        "op": "call", "service": service, "channel": channel, "cid": uuid4().replace('-', ""),
        "data_format": "json", "body": B64.encode(serde_json::to_vec(payload).unwrap_or_default()),
        "http": {}, "meta": meta,
    })
}

async fn deliver(app: Arc<App>, d: crate::data::Delivery) {
    let timeout = Duration::from_secs(app.config().timeout);
    let channel = if d.topic.is_empty() {
        "invoke_async"
    } else {
        "pubsub"
    };
    let meta = json!({"msg_id": d.msg_id, "topic": d.topic, "attempt": d.attempts + 1});
    let msg = call_msg(&d.subscriber, channel, &d.data, meta);
    let pool = app.pool.clone();
    let run = pool.run(&msg, Instant::now() + timeout);
    tokio::pin!(run);
    // A long handler keeps its lease (a cluster hands a message on after
    // its ack wait).
    let out = loop {
        tokio::select! {
            out = &mut run => break out,
            _ = tokio::time::sleep(TOUCH_EVERY) => {
                if let Err(e) = app.engine.data.queues().and_then(|q| q.touch(d.id)) {
                    tracing::warn!(error = %e, "cannot extend a delivery's lease");
                }
            }
        }
    };
    let data = match app.engine.data.queues() {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, msg_id = %d.msg_id, "cannot record a delivery; it will be delivered again");
            return;
        }
    };
    let done = match call_result(out) {
        Ok(()) => data.ack(d.id),
        Err(None) => data.release(d.id, now_ms() + 100),
        Err(Some(e)) => {
            let next = retry::next_delay(d.attempts + 1, d.max_attempts, d.backoff_ms)
                .map(|ms| now_ms() + ms as i64);
            if next.is_none() {
                tracing::warn!(topic = %d.topic, subscriber = %d.subscriber, msg_id = %d.msg_id, error = %e, "message dead-lettered after {} attempts", d.attempts + 1);
            }
            data.nack(d.id, &e, next)
        }
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, "cannot record a delivery");
    }
}

/// Hands due messages to workers, never more at once than there are
/// workers, so HTTP channels keep getting served.
pub async fn delivery_loop(app: Arc<App>) {
    match app.engine.data.queues().and_then(|q| q.recover()) {
        Ok(n) if n > 0 => tracing::info!(
            messages = n,
            "redelivering messages in flight at the last stop"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot recover leased messages"),
    }
    let engine = app.engine.clone();
    // The last error logged: a cluster's queues unreachable for a while
    // would log one every 200 ms.
    let mut last_error = String::new();
    loop {
        let cap = app.pool.alive().max(1);
        let free = cap.saturating_sub(engine.in_flight.load(Ordering::Relaxed));
        let mut took = 0;
        if free > 0 {
            let due = off_thread_in_cluster(&app, free, |app, free| {
                app.engine
                    .data
                    .queues()
                    .and_then(|q| q.take_due(now_ms(), free))
            })
            .await
            .unwrap_or_else(|e| {
                Err(DataError::Cluster(format!(
                    "reading the queues failed: {e}"
                )))
            });
            match due {
                Ok(batch) => {
                    last_error.clear();
                    took = batch.len();
                    for d in batch {
                        engine.in_flight.fetch_add(1, Ordering::Relaxed);
                        let app2 = app.clone();
                        tokio::spawn(async move {
                            let engine = app2.engine.clone();
                            deliver(app2, d).await;
                            engine.in_flight.fetch_sub(1, Ordering::Relaxed);
                            engine.wake.notify_one();
                        });
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    if e != last_error {
                        tracing::warn!(error = %e, "cannot read the queues");
                        last_error = e;
                    }
                }
            }
        }
        if took == 0 || took == free {
            // Nothing due or all slots busy: wait for a publish, a finished
            // delivery or a retry coming due.
            let _ = tokio::time::timeout(Duration::from_millis(200), engine.wake.notified()).await;
        }
    }
}

/// The least time between two wake-ups of the delivery loop by other
/// members' publishes: the wake-ups in between fold into one, so a
/// stream of publishes costs each member a take every few milliseconds,
/// not one per message.
const WAKE_GAP: Duration = Duration::from_millis(10);

/// In a cluster, wakes the delivery loop when any member stored
/// messages (`alpharen_cluster::pubsub`), so a member other than the
/// publisher's takes them within [`WAKE_GAP`], not at its next poll.
/// Subscribes again when the cluster's connection is made anew.
pub async fn cluster_wake_loop(app: Arc<App>) {
    use futures_util::{FutureExt, StreamExt};
    loop {
        let wakes = off_thread_in_cluster(&app, (), |app, ()| match app.engine.data.cluster.kv() {
            Ok(Some(kv)) => kv.queue_wakes().ok(),
            _ => None,
        })
        .await
        .ok()
        .flatten();
        match wakes {
            Some(mut wakes) => {
                while wakes.next().await.is_some() {
                    app.engine.wake.notify_one();
                    tokio::time::sleep(WAKE_GAP).await;
                    while let Some(Some(_)) = wakes.next().now_or_never() {}
                }
            }
            None => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Deletes expired keys and locks every few seconds.
pub async fn sweep_loop(app: Arc<App>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if let Err(e) = app.engine.data.sweep(now_ms()) {
            tracing::warn!(error = %e, "KV sweep failed");
        }
    }
}
