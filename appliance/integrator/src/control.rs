//! `integrator.*` control methods on `<state>/run/integrator.sock`.

use std::sync::Arc;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::data::{KvValue, now_ms};
use crate::engine;

use crate::app::App;
use crate::project::Upload;

pub struct Control(pub Arc<App>);

/// One of `source` (a `.py` file), `zip` (base64 of a project zip) or
/// `files` (a project directory: path → source).
#[derive(Deserialize)]
struct Deploy {
    file: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    zip: Option<String>,
    #[serde(default)]
    files: Option<crate::registry::Files>,
    #[serde(default)]
    author: Option<String>,
}

impl Deploy {
    fn upload(self) -> Result<(String, Upload, Option<String>), RpcError> {
        let upload = match (self.source, self.zip, self.files) {
            (Some(s), None, None) => Upload::Source(s),
            (None, Some(z), None) => Upload::Zip(z),
            (None, None, Some(f)) => Upload::Files(f),
            _ => {
                return Err(RpcError::invalid_params(
                    "a deploy takes exactly one of source, zip or files",
                ));
            }
        };
        Ok((self.file, upload, self.author))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageAdd {
    file: String,
    /// The wheel, base64.
    wheel: String,
    #[serde(default)]
    author: Option<String>,
}

/// `integrator.package_rollback`: the package set version to restore.
#[derive(Deserialize)]
struct SetVersion {
    version: i64,
    #[serde(default)]
    author: Option<String>,
}

#[derive(Deserialize)]
struct Named {
    name: String,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invoke {
    name: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Password {
    security: String,
}

#[derive(Deserialize)]
struct Kv {
    #[serde(default = "default_ns")]
    ns: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    ttl: Option<f64>,
    #[serde(default)]
    prefix: Option<String>,
}

fn default_ns() -> String {
    "default".into()
}

#[derive(Deserialize)]
struct QueueSel {
    topic: String,
    #[serde(default)]
    subscriber: Option<String>,
    #[serde(default)]
    dlq: bool,
    #[serde(default)]
    data: Option<Value>,
    /// One message (`redrive`).
    #[serde(default)]
    id: Option<i64>,
}

/// `integrator.topics` lists the queues of `invoke_async` (topic "") as
/// this name; the queue methods take it back.
pub(crate) const INVOKE_ASYNC: &str = "(invoke_async)";

fn stored_topic(topic: &str) -> &str {
    if topic == INVOKE_ASYNC { "" } else { topic }
}

fn data_err(e: crate::data::DataError) -> RpcError {
    RpcError::new(e.code(), e.to_string())
}

/// Who made a change: the user a door (web, ssh) names, else the Unix
/// user of the socket peer. Only root and the node's own services can
/// reach this socket, so a named author is the door's word.
fn actor(call: &Call, author: Option<&str>) -> String {
    match author.map(str::trim) {
        Some(a) if !a.is_empty() => a.to_string(),
        _ => format!("uid:{}", call.peer.uid),
    }
}

impl Handler for Control {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        let app = &self.0;
        let v = match call.method.as_str() {
            "integrator.deploy" => {
                let (file, upload, author) = call.params::<Deploy>()?.upload()?;
                app.deploy(&file, upload, &actor(&call, author.as_deref()))
                    .await?
            }
            "integrator.packages" => crate::packages::list(app)?,
            "integrator.package_add" => {
                let p: PackageAdd = call.params()?;
                crate::packages::add(app, &p.file, &p.wheel, &actor(&call, p.author.as_deref()))
                    .await?
            }
            "integrator.package_sets" => crate::package_sets::history(app)?,
            "integrator.package_rollback" => {
                let p: SetVersion = call.params()?;
                crate::package_sets::rollback(app, p.version, &actor(&call, p.author.as_deref()))
                    .await?
            }
            "integrator.package_remove" => {
                let p: Named = call.params()?;
                crate::packages::remove(app, &p.name, &actor(&call, p.author.as_deref())).await?
            }
            "integrator.list" => app.list()?,
            "integrator.openapi" => app.openapi()?,
            "integrator.source" => {
                let p: Named = call.params()?;
                app.source(&p.name, p.version)?
            }
            "integrator.versions" => app.versions(&call.params::<Named>()?.name)?,
            "integrator.rollback" => {
                let p: Named = call.params()?;
                let v = p
                    .version
                    .ok_or_else(|| RpcError::invalid_params("rollback needs a version"))?;
                app.rollback(&p.name, v, &actor(&call, p.author.as_deref()))
                    .await?
            }
            "integrator.undeploy" => {
                let p: Named = call.params()?;
                app.undeploy(&p.name, &actor(&call, p.author.as_deref()))
                    .await?
            }
            "integrator.stats" => app
                .stats
                .lock()
                .map(|s| s.to_json())
                .unwrap_or_else(|_| json!([])),
            "integrator.invoke" => {
                let p: Invoke = call.params()?;
                crate::invoke::invoke(app, &p.name, &p.payload, &actor(&call, p.author.as_deref()))
                    .await?
            }
            "integrator.ping" => app.ping(&call.params::<Named>()?.name).await?,
            "integrator.password" => {
                let p: Password = call.params()?;
                app.password(&p.security)?
            }
            "integrator.job_run" => {
                let name = call.params::<Named>()?.name;
                engine::start_job(app, &name, "manual", None)
                    .map_err(|e| RpcError::new("conflict", e))?;
                json!({"job": name, "started": true})
            }
            _ => crate::engine::off_thread_in_cluster(app, call, |app, call| data_call(app, &call))
                .await
                .map_err(|e| RpcError::new("internal", e.to_string()))??,
        };
        Ok(Reply::Value(v))
    }
}

/// The calls that read or change the integrator's data (KV, queues,
/// locks, jobs, the status's queue depths): in a cluster each is a
/// JetStream round trip, run off the integrator's runtime thread.
fn data_call(app: &App, call: &Call) -> Result<Value, RpcError> {
    Ok(match call.method.as_str() {
        "integrator.status" => app.status(),
        "integrator.jobs" => app.engine.jobs_json().map_err(data_err)?,
        "integrator.kv_get" => {
            let p: Kv = call.params()?;
            let v = app
                .engine
                .data
                .kv_get(&p.ns, &p.key, now_ms())
                .map_err(data_err)?;
            json!({"ns": p.ns, "key": p.key, "found": v.is_some(), "value": v.map(|v| v.to_wire())})
        }
        "integrator.kv_set" => {
            let p: Kv = call.params()?;
            if p.key.is_empty() {
                return Err(RpcError::invalid_params("key must not be empty"));
            }
            let v = KvValue::Json(p.value.unwrap_or(Value::Null));
            let ttl = p.ttl.filter(|t| *t > 0.0).map(|t| (t * 1000.0) as i64);
            app.engine
                .data
                .kv_set(&p.ns, &p.key, &v, ttl, now_ms())
                .map_err(data_err)?;
            json!({"ns": p.ns, "key": p.key, "set": true})
        }
        "integrator.kv_del" => {
            let p: Kv = call.params()?;
            let d = app
                .engine
                .data
                .kv_del(&p.ns, &p.key, now_ms())
                .map_err(data_err)?;
            json!({"ns": p.ns, "key": p.key, "deleted": d})
        }
        "integrator.kv_list" => {
            let p: Kv = call.params()?;
            let prefix = p.prefix.unwrap_or_default();
            let keys = app
                .engine
                .data
                .kv_keys(&p.ns, &prefix, now_ms(), 10_000)
                .map_err(data_err)?;
            let namespaces = app.engine.data.kv_namespaces(now_ms()).map_err(data_err)?;
            json!({"ns": p.ns, "keys": keys,
                       "namespaces": namespaces.into_iter().map(|(n, c)| json!({"ns": n, "keys": c})).collect::<Vec<_>>()})
        }
        "integrator.topics" => {
            let stats = app
                .engine
                .data
                .queues()
                .and_then(|q| q.queue_stats())
                .map_err(data_err)?;
            let config = app.config();
            let mut out: Vec<Value> = Vec::new();
            for t in &config.topics {
                for sub in &t.subscribers {
                    let st = stats
                        .iter()
                        .find(|s| s.topic == t.name && &s.subscriber == sub);
                    out.push(json!({"topic": t.name, "subscriber": sub, "max_depth": t.max_depth,
                            "ready": st.map_or(0, |s| s.ready), "in_flight": st.map_or(0, |s| s.in_flight),
                            "dead": st.map_or(0, |s| s.dead)}));
                }
            }
            for s in stats.iter().filter(|s| {
                s.topic.is_empty()
                    || !config
                        .topics
                        .iter()
                        .any(|t| t.name == s.topic && t.subscribers.contains(&s.subscriber))
            }) {
                let topic = if s.topic.is_empty() {
                    INVOKE_ASYNC.to_string()
                } else {
                    s.topic.clone()
                };
                out.push(
                    json!({"topic": topic, "subscriber": s.subscriber, "max_depth": null,
                        "ready": s.ready, "in_flight": s.in_flight, "dead": s.dead}),
                );
            }
            Value::Array(out)
        }
        "integrator.queue" => {
            let p: QueueSel = call.params()?;
            app.engine
                .data
                .queues()
                .and_then(|q| {
                    q.queue_messages(stored_topic(&p.topic), p.subscriber.as_deref(), p.dlq, 1000)
                })
                .map_err(data_err)?
        }
        "integrator.purge" => {
            let p: QueueSel = call.params()?;
            let n = app
                .engine
                .data
                .queues()
                .and_then(|q| q.purge(stored_topic(&p.topic), p.subscriber.as_deref(), p.dlq))
                .map_err(data_err)?;
            json!({"topic": p.topic, "purged": n})
        }
        "integrator.redrive" => {
            let p: QueueSel = call.params()?;
            let n = app
                .engine
                .redrive(stored_topic(&p.topic), p.subscriber.as_deref(), p.id)
                .map_err(data_err)?;
            json!({"topic": p.topic, "redriven": n})
        }
        "integrator.publish" => {
            let p: QueueSel = call.params()?;
            let id = app
                .engine
                .publish(&app.config(), &p.topic, &p.data.unwrap_or(Value::Null))
                .map_err(data_err)?;
            json!({"topic": p.topic, "msg_id": id})
        }
        "integrator.locks" => app.engine.data.locks(now_ms()).map_err(data_err)?,
        other => {
            return Err(RpcError::new(
                "method_not_found",
                format!("no method {other:?}"),
            ));
        }
    })
}
