//! Services of other clusters (linked LANs, docs/cluster.md): a service
//! here calls `self.invoke(name, payload, cluster='lan-b')` or
//! `self.pubsub.publish(topic, data, cluster='lan-b')`, and this
//! integrator answers what other clusters send to this one. The link
//! client is `alpharen_cluster::bridge`; this module keeps it connected
//! while the node is in a cluster and runs its two loops: serving the
//! requests of other clusters and forwarding the outbox.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use alpharen_cluster::bridge::{Answer, Bridge, Incoming};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::app::App;

/// The link client, while connected.
#[derive(Default)]
pub struct Links {
    bridge: RwLock<Option<Arc<Bridge>>>,
}

impl Links {
    fn get(&self) -> Option<Arc<Bridge>> {
        self.bridge.read().ok().and_then(|b| b.clone())
    }

    fn set(&self, b: Option<Arc<Bridge>>) {
        if let Ok(mut g) = self.bridge.write() {
            *g = b;
        }
    }
}

/// What to connect with: the client port, password and cluster name.
type Target = (u16, String, String);

fn target(app: &App) -> Option<Target> {
    let view = app.view();
    let c = &view.config.cluster;
    let pw = view.secret("cluster.client_password")?;
    c.enabled()
        .then(|| (c.client_port, pw.to_string(), c.name.clone()))
}

/// Keeps the link client connected to the node's nats-server while the
/// node is in a cluster (checked every 2 s), with its loops running.
pub async fn link_loop(app: Arc<App>) {
    // The target connected to, with the tasks of its loops.
    let mut current: Option<(Option<Target>, Vec<JoinHandle<()>>)> = None;
    let mut last_error = String::new();
    loop {
        let want = target(&app);
        let stale = match &current {
            Some((t, tasks)) => *t != want || tasks.iter().any(|t| t.is_finished()),
            None => want.is_some(),
        };
        if stale {
            if let Some((_, tasks)) = current.take() {
                tasks.iter().for_each(|t| t.abort());
            }
            app.links.set(None);
            if let Some((port, pw, me)) = &want {
                match Bridge::connect(*port, pw, me).await {
                    Ok(b) => {
                        let b = Arc::new(b);
                        app.links.set(Some(b.clone()));
                        let tasks = vec![
                            tokio::spawn(serve(app.clone(), b.clone())),
                            tokio::spawn(forward(b)),
                        ];
                        tracing::info!(cluster = %me, "links to other clusters served");
                        last_error.clear();
                        current = Some((want.clone(), tasks));
                    }
                    Err(e) => {
                        let e = e.to_string();
                        if e != last_error {
                            tracing::warn!(error = %e, "links to other clusters not served yet; retrying");
                            last_error = e;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn forward(b: Arc<Bridge>) {
    loop {
        if let Err(e) = b.forward().await {
            tracing::debug!(error = %e, "the outbox forwarder stopped; starting again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Answers other clusters' requests, each on its own task.
async fn serve(app: Arc<App>, b: Arc<Bridge>) {
    let mut requests = match b.requests().await {
        Ok(r) => Box::pin(r),
        Err(e) => {
            tracing::warn!(error = %e, "cannot take requests from other clusters");
            return;
        }
    };
    while let Some(r) = requests.next().await {
        let (app, b) = (app.clone(), b.clone());
        tokio::spawn(async move {
            let answer = match handle(&app, &r.incoming).await {
                Ok(value) => Answer {
                    ok: true,
                    value,
                    error: None,
                },
                Err(e) => Answer {
                    ok: false,
                    value: Value::Null,
                    error: Some(e),
                },
            };
            if let Err(e) = b.answer(r, answer).await {
                tracing::warn!(error = %e, "cannot answer another cluster");
            }
        });
    }
}

async fn handle(app: &Arc<App>, incoming: &Incoming) -> Result<Value, String> {
    match incoming {
        Incoming::Invoke {
            from,
            service,
            payload,
        } => crate::invoke::invoke(app, service, payload, &format!("cluster {from}"))
            .await
            .map_err(|e| e.message),
        Incoming::Publish {
            from,
            id,
            topic,
            data,
        } => {
            let ids = app
                .engine
                .publish(&app.config(), topic, data)
                .map_err(|e| e.to_string())?;
            tracing::debug!(%from, %id, %topic, "a message from another cluster queued");
            Ok(json!(ids))
        }
    }
}

fn arg<'a>(req: &'a Value, key: &str) -> Result<&'a str, (String, &'static str)> {
    req[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| (format!("{key} is required"), "invalid_params"))
}

/// `link.invoke` and `link.publish` from a service.
pub async fn host_call(app: &App, req: &Value) -> Result<Value, (String, &'static str)> {
    let b = app.links.get().ok_or_else(|| {
        (
            "this node is not in a cluster, or not connected to its nats-server yet: no other cluster is reachable"
                .to_string(),
            "unavailable",
        )
    })?;
    let cluster = arg(req, "cluster")?;
    let unavailable = |e: alpharen_cluster::Error| (e.to_string(), "unavailable");
    match req["call"].as_str().unwrap_or_default() {
        "link.invoke" => {
            let service = arg(req, "service")?;
            let timeout = Duration::from_secs(app.config().timeout);
            let a = b
                .invoke(cluster, service, &req["payload"], timeout)
                .await
                .map_err(unavailable)?;
            let status = a["status"].as_u64().unwrap_or(200);
            if status >= 400 {
                return Err((
                    format!(
                        "service {service} in cluster {cluster} answered {status}: {}",
                        a["body"]
                    ),
                    "remote_error",
                ));
            }
            Ok(a["body"].clone())
        }
        "link.publish" => Ok(json!(
            b.publish(cluster, arg(req, "topic")?, &req["data"])
                .await
                .map_err(unavailable)?
        )),
        other => Err((format!("unknown host call {other:?}"), "method_not_found")),
    }
}
