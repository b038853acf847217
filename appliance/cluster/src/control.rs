//! `cluster.status`, `cluster.init`, `cluster.token`, `cluster.join`,
//! `cluster.admit` (the admitting side of a join, reached through the web
//! API's public `POST /api/v1/cluster/join`) and `cluster.leave`.

use std::sync::Arc;
use std::time::Duration;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use alpharen_store::View;
use async_nats::jetstream;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::checks::{check_names, check_request};
use crate::join::{self, Admission};
use crate::members::{self, Heartbeat, Member};
use crate::{Error, Node, conf, pki, secret, token};

pub struct Rpc {
    pub node: Arc<Node>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Init {
    name: String,
    #[serde(default)]
    advertise: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Join {
    token: String,
    #[serde(default)]
    advertise: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Admit {
    request: String,
    mac: String,
}

pub(crate) fn conflict(message: impl Into<String>) -> RpcError {
    RpcError::new("conflict", message)
}

pub(crate) fn rpc_err(e: Error) -> RpcError {
    match e {
        Error::Rpc(e) => e,
        Error::Token(_) => RpcError::invalid_params(e.to_string()),
        e @ Error::Join(_) => RpcError::new("join_failed", e.to_string()),
        e => RpcError::new("internal_error", e.to_string()),
    }
}

impl Handler for Rpc {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        let node = &self.node;
        let v = match call.method.as_str() {
            "cluster.status" => status(node).await,
            "cluster.init" => init(node, call.params()?).await?,
            "cluster.token" => json!({ "token": token_of(node, &node.view())? }),
            "cluster.join" => join_cluster(node, call.params()?).await?,
            "cluster.admit" => admit(node, call.params()?).await?,
            "cluster.leave" => leave(node).await?,
            "cluster.link_token" => crate::linkctl::link_token(node, call.params()?).await?,
            "cluster.link_admit" => crate::linkctl::link_admit(node, call.params()?).await?,
            "cluster.link" => crate::linkctl::link(node, call.params()?).await?,
            "cluster.unlink" => crate::linkctl::unlink(node, call.params()?).await?,
            m => {
                return Err(RpcError::new(
                    "method_not_found",
                    format!("no method {m:?} in the cluster service"),
                ));
            }
        };
        Ok(v.into())
    }
}

/// Every heartbeat in the bucket, with its state. Reads through the stream
/// leader (stream info with subjects, then `STREAM.MSG.GET` per member)
/// rather than a KV key watcher or a direct get: while a bucket changes
/// replicas, nats-server 2.9 can fail a watcher's consumer and answer a
/// direct get from a replica that has not caught up. Retries a few times,
/// then says why.
pub async fn member_list(js: &jetstream::Context) -> Result<Vec<Member>, String> {
    let mut last = String::new();
    for attempt in 0..4 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match read_beats(js).await {
            Ok(beats) => return Ok(members::classify(beats)),
            Err(e) => last = e,
        }
    }
    Err(format!("cannot read the member list: {last}"))
}

async fn read_beats(js: &jetstream::Context) -> Result<Vec<members::Stored>, String> {
    let stream = js
        .get_stream(format!("KV_{}", members::BUCKET))
        .await
        .map_err(|e| e.to_string())?;
    let prefix = format!("$KV.{}.", members::BUCKET);
    let mut subjects = stream
        .info_with_subjects(format!("{prefix}>"))
        .await
        .map_err(|e| e.to_string())?;
    let mut beats = Vec::new();
    while let Some(entry) = subjects.next().await {
        let (subject, _) = entry.map_err(|e| e.to_string())?;
        let m = stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .map_err(|e| format!("{subject}: {e}"))?;
        let heartbeat = serde_json::from_slice::<Heartbeat>(&m.payload)
            .map_err(|e| format!("{subject}: not a heartbeat: {e}"))?;
        beats.push(members::Stored {
            heartbeat,
            stored_ms: (m.time.unix_timestamp_nanos() / 1_000_000) as i64,
        });
    }
    Ok(beats)
}

/// A page of nats-server's monitoring port (`/jsz`: the meta group;
/// `/leafz`: the links).
async fn monitor(port: u16, page: &str) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(format!("GET {page} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        s.take(1 << 20).read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        let body = text.split_once("\r\n\r\n")?.1;
        serde_json::from_str::<Value>(body).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .ok()?
}

async fn status(node: &Arc<Node>) -> Value {
    let view = node.view();
    let c = &view.config.cluster;
    if !c.enabled() {
        return json!({ "name": null, "node": view.config.node.hostname, "nats": "not in a cluster", "members": [] });
    }
    let shared = node.nats.get();
    let (members, members_error) = match &shared.js {
        Some(js) => match member_list(js).await {
            Ok(m) => (m, None),
            Err(e) => (Vec::new(), Some(e)),
        },
        None => (
            Vec::new(),
            Some("not connected to nats-server yet".to_string()),
        ),
    };
    let singletons = match &shared.js {
        Some(js) => crate::singletons::shown(js)
            .await
            .unwrap_or_else(|e| json!({ "error": e.to_string() })),
        None => json!({}),
    };
    let up = members.iter().filter(|m| m.state == "up").count();
    let meta = monitor(c.monitor_port, "/jsz").await;
    let leafz = monitor(c.monitor_port, "/leafz").await;
    let meta = meta.as_ref().and_then(|j| j.get("meta_cluster"));
    let replicas = members::replicas(up);
    json!({
        "name": c.name,
        "node": view.config.node.hostname,
        "advertise": node.advertise(&view),
        "route_port": c.route_port,
        "seeds": c.seeds,
        "nats": shared.state,
        "jetstream": {
            "mode": if conf::clustered(&c.seeds) { "cluster" } else { "single server" },
            "meta_leader": meta.and_then(|m| m.get("leader")).cloned(),
            "cluster_size": meta.and_then(|m| m.get("cluster_size")).cloned(),
        },
        "replicas": replicas,
        "replicas_note": if replicas < 3 {
            "R1: with fewer than three members up, the cluster's data has one copy"
        } else {
            "R3: the cluster's data survives the loss of one member"
        },
        "members": members,
        "members_error": members_error,
        "singletons": singletons,
        "links": crate::linkctl::status(c, leafz.as_ref()),
    })
}

pub(crate) fn web_port(node: &Node, view: &View) -> u16 {
    view.config
        .web
        .https_port
        .unwrap_or(if node.dev { 8443 } else { 443 })
}

fn token_of(node: &Node, view: &View) -> Result<String, RpcError> {
    if !view.config.cluster.enabled() {
        return Err(conflict(
            "this node is not in a cluster: `ctl cluster init NAME` makes one",
        ));
    }
    let ca = view
        .secret(secret::CA_CERT)
        .ok_or_else(|| conflict("the cluster CA certificate is missing"))?;
    let secret = view
        .secret(secret::JOIN_SECRET)
        .ok_or_else(|| conflict("this member has no join secret"))?;
    let host = node
        .advertise(view)
        .ok_or_else(|| conflict("this node has no global address: set cluster.advertise"))?;
    Ok(token::JoinToken {
        addr: conf::host_port(&host, web_port(node, view)),
        ca_fingerprint: pki::fingerprint(ca).map_err(rpc_err)?,
        secret: secret.to_string(),
    }
    .encode())
}

/// The names a member's certificate carries: its advertised address and
/// every global address.
pub(crate) fn sans(node: &Node, view: &View, advertise: &Option<String>) -> Vec<String> {
    let mut out: Vec<String> = advertise.iter().cloned().collect();
    if let Some(a) = node.advertise(view) {
        out.push(a);
    }
    out.extend(
        alpharen_store::host::global_addresses(None)
            .iter()
            .map(|ip| ip.to_string()),
    );
    out.dedup();
    out
}

/// Writes `[cluster]` and the member's secrets as one revision.
pub(crate) async fn apply(
    node: &Node,
    cluster: Value,
    secrets: Vec<(&str, String)>,
    comment: String,
) -> Result<(), RpcError> {
    let mut doc = json!({ "cluster": cluster });
    if !secrets.is_empty() {
        let table: serde_json::Map<String, Value> = secrets
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        doc["secrets"] = Value::Object(table);
    }
    alpharen_rpc::call(
        &alpharen_rpc::control_socket(&node.state_dir),
        "config.apply",
        json!({ "config": doc, "comment": comment, "author": "cluster" }),
        Duration::from_secs(30),
    )
    .await?;
    Ok(())
}

pub(crate) fn cluster_doc(
    view: &View,
    name: &str,
    advertise: &Option<String>,
    seeds: &[String],
) -> Value {
    let c = &view.config.cluster;
    let mut doc = json!({
        "name": name,
        "seeds": seeds,
        "route_port": c.route_port,
        "client_port": c.client_port,
        "monitor_port": c.monitor_port,
    });
    if let Some(a) = advertise.as_ref().or(c.advertise.as_ref()) {
        doc["advertise"] = json!(a);
    }
    crate::linkctl::keep(c, &mut doc);
    doc
}

async fn init(node: &Arc<Node>, p: Init) -> Result<Value, RpcError> {
    check_names(Some(&p.name), &p.advertise)?;
    let view = node.view();
    if view.config.cluster.enabled() {
        return Err(conflict(format!(
            "this node is already in cluster {:?}: `ctl cluster leave` first",
            view.config.cluster.name
        )));
    }
    let ca = pki::new_ca(&p.name).map_err(rpc_err)?;
    let me = pki::member(
        &p.name,
        &ca.key,
        &view.config.node.hostname,
        &sans(node, &view, &p.advertise),
    )
    .map_err(rpc_err)?;
    apply(
        node,
        cluster_doc(&view, &p.name, &p.advertise, &[]),
        vec![
            (secret::CA_CERT, ca.cert),
            (secret::CA_KEY, ca.key),
            (secret::NODE_CERT, me.cert),
            (secret::NODE_KEY, me.key),
            (secret::JOIN_SECRET, token::new_secret()),
            (secret::CLIENT_PASSWORD, token::new_secret()),
        ],
        format!("cluster {} created on this node", p.name),
    )
    .await?;
    node.reload().await.map_err(rpc_err)?;
    Ok(json!({ "cluster": p.name, "token": token_of(node, &node.view())? }))
}

/// Asks the member in the token to admit this node (blocking HTTPS, off
/// the runtime) at `path` (the join, or a link). The member's web
/// certificate is not checked: the answer is sealed under the token's
/// secret and the CA is pinned by its fingerprint.
pub(crate) fn ask(addr: &str, path: &str, request: &str, mac: &str) -> Result<String, Error> {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .disable_verification(true)
        .build();
    let agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(Duration::from_secs(20)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("https://{addr}{path}");
    let mut resp = agent
        .post(&url)
        .send_json(json!({ "request": request, "mac": mac }))
        .map_err(|e| Error::Join(format!("cannot reach {url}: {e}")))?;
    let status = resp.status();
    let body: Value = resp
        .body_mut()
        .read_json()
        .map_err(|e| Error::Join(format!("{url} answered {status} without JSON: {e}")))?;
    if !status.is_success() {
        let why = body["message"].as_str().unwrap_or("no reason given");
        return Err(Error::Join(format!("the member at {addr} refused: {why}")));
    }
    body["sealed"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Join(format!("{url} answered without `sealed`")))
}

async fn join_cluster(node: &Arc<Node>, p: Join) -> Result<Value, RpcError> {
    check_names(None, &p.advertise)?;
    let view = node.view();
    if view.config.cluster.enabled() {
        return Err(conflict(format!(
            "this node is already in cluster {:?}: `ctl cluster leave` first",
            view.config.cluster.name
        )));
    }
    let t = token::JoinToken::parse(&p.token).map_err(rpc_err)?;
    let adv = p
        .advertise
        .clone()
        .or_else(|| node.advertise(&view))
        .ok_or_else(|| conflict("this node has no global address: give --advertise"))?;
    let request = join::Request {
        node: view.config.node.hostname.clone(),
        sans: sans(node, &view, &p.advertise),
        route: conf::host_port(&adv, view.config.cluster.route_port),
        nonce: join::new_nonce(),
        ts: now_s(),
    };
    let (text, mac) = join::sign(&t.secret, &request).map_err(rpc_err)?;
    let addr = t.addr.clone();
    let sealed =
        tokio::task::spawn_blocking(move || ask(&addr, "/api/v1/cluster/join", &text, &mac))
            .await
            .map_err(|e| RpcError::new("internal_error", e.to_string()))?
            .map_err(rpc_err)?;
    let a: Admission = join::open(&t.secret, &request.nonce, &sealed).map_err(rpc_err)?;
    if pki::fingerprint(&a.ca_cert).map_err(rpc_err)? != t.ca_fingerprint {
        return Err(RpcError::new(
            "forbidden",
            "the cluster's CA does not match the token's fingerprint: not joined",
        ));
    }
    apply(
        node,
        cluster_doc(&view, &a.cluster, &Some(adv), &a.seeds),
        vec![
            (secret::CA_CERT, a.ca_cert),
            (secret::CA_KEY, a.ca_key),
            (secret::NODE_CERT, a.node_cert),
            (secret::NODE_KEY, a.node_key),
            (secret::JOIN_SECRET, a.join_secret),
            (secret::CLIENT_PASSWORD, token::new_secret()),
        ],
        format!("joined cluster {} through {}", a.cluster, t.addr),
    )
    .await?;
    node.reload().await.map_err(rpc_err)?;
    Ok(json!({ "cluster": a.cluster, "seeds": a.seeds }))
}

pub(crate) fn now_s() -> i64 {
    members::now_ms() / 1000
}

async fn admit(node: &Arc<Node>, p: Admit) -> Result<Value, RpcError> {
    let view = node.view();
    let c = &view.config.cluster;
    let (Some(secret), Some(ca_cert), Some(ca_key)) = (
        view.secret(secret::JOIN_SECRET),
        view.secret(secret::CA_CERT),
        view.secret(secret::CA_KEY),
    ) else {
        return Err(conflict(
            "this node admits no members: it is not in a cluster",
        ));
    };
    if !c.enabled() {
        return Err(conflict(
            "this node admits no members: it is not in a cluster",
        ));
    }
    let r: join::Request = join::check(secret, &p.request, &p.mac, now_s())
        .map_err(|e| RpcError::new("forbidden", e.to_string()))?;
    check_request(&r)?;
    let member = pki::member(&c.name, ca_key, &r.node, &r.sans).map_err(rpc_err)?;
    let me = node
        .advertise(&view)
        .map(|a| conf::host_port(&a, c.route_port));
    let mut seeds: Vec<String> = me.into_iter().collect();
    seeds.extend(c.seeds.iter().filter(|s| **s != r.route).cloned());
    seeds.dedup();
    let admission = Admission {
        cluster: c.name.clone(),
        seeds,
        ca_cert: ca_cert.to_string(),
        ca_key: ca_key.to_string(),
        node_cert: member.cert,
        node_key: member.key,
        join_secret: secret.to_string(),
    };
    let sealed = join::seal(secret, &r.nonce, &admission).map_err(rpc_err)?;
    if !c.seeds.contains(&r.route) {
        let mut mine = c.seeds.clone();
        mine.push(r.route.clone());
        apply(
            node,
            cluster_doc(&view, &c.name, &None, &mine),
            Vec::new(),
            format!("cluster member {} admitted ({})", r.node, r.route),
        )
        .await?;
        node.reload().await.map_err(rpc_err)?;
    }
    tracing::info!(member = %r.node, route = %r.route, "cluster member admitted");
    Ok(json!({ "sealed": sealed }))
}

async fn leave(node: &Arc<Node>) -> Result<Value, RpcError> {
    let view = node.view();
    if !view.config.cluster.enabled() {
        return Err(conflict("this node is not in a cluster"));
    }
    let name = view.config.cluster.name.clone();
    let drained = drain(node, &view).await;
    apply(node, json!({}), Vec::new(), format!("left cluster {name}")).await?;
    node.reload().await.map_err(rpc_err)?;
    Ok(json!({ "left": name, "drain": drained }))
}

/// Drains this member before it leaves: announces it in its heartbeat,
/// gives the others' balancers [`members::DRAIN_NOTICE`] to stop sending
/// it new requests, then waits until the requests they sent have
/// finished here (at most `integrator.timeout`, the longest one may
/// take, and 40 s: the supervisor gives a forwarded call 60 s). Says what it did; a step that cannot be done is reported, not
/// fatal: leaving must stay possible when the cluster is broken.
async fn drain(node: &Arc<Node>, view: &View) -> Value {
    node.set_draining(true);
    let base = node
        .running
        .lock()
        .await
        .as_ref()
        .map(|r| r.heartbeat().clone());
    let announced = match (node.nats.get().js, base) {
        (Some(js), Some(base)) => match js.get_key_value(members::BUCKET).await {
            Ok(kv) => crate::nats::put_beat(node, &kv, &base).await,
            Err(e) => Err(e.to_string()),
        },
        _ => Err("not connected to nats-server".to_string()),
    };
    if let Err(e) = &announced {
        tracing::warn!(error = %e, "leaving without announcing the drain");
        return json!({ "announced": false, "error": e });
    }
    tracing::info!("draining: the other members send no new requests");
    tokio::time::sleep(members::DRAIN_NOTICE).await;
    let limit = Duration::from_secs(view.config.integrator.timeout.clamp(1, 40));
    let started = tokio::time::Instant::now();
    let mut last = None;
    while started.elapsed() < limit {
        last = forwarded_in_flight(node).await;
        if last.is_none_or(|n| n == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::info!(in_flight = ?last, "drained");
    json!({ "announced": true, "forwarded_in_flight": last })
}

/// Requests other members sent to this node's integrator that are still
/// running; `None` when the integrator does not answer.
async fn forwarded_in_flight(node: &Node) -> Option<u64> {
    let status = alpharen_rpc::call(
        &alpharen_rpc::control_socket(&node.state_dir),
        "integrator.status",
        json!({}),
        Duration::from_secs(5),
    )
    .await
    .ok()?;
    status.get("forwarded_in_flight")?.as_u64()
}
