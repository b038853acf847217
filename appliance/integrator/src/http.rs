//! The load-balancer port's requests (`door` accepts the connections):
//! picks a server for each request (this one or a cluster peer), and on
//! this server runs the channel: method check, failed-authentication limit,
//! security, body parsing by the worker, timeout, error mapping.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::app::App;
use crate::clientcert::Chain;
use crate::door::Door;
use crate::lb;
use crate::pool::Outcome;
use crate::remote::{Remote, SendError};
use crate::routes::Selected;
use crate::security::{self, AuthError, Parts, Passed};
use crate::worker::Failure;

/// Largest request body accepted.
const MAX_BODY: usize = 10 << 20;
/// Marks a request already balanced once, so a peer serves it itself.
const FORWARDED: &str = "x-alpharen-forwarded";
/// Names the node that ran the request (`node.hostname`), on every answer
/// of a channel, so a client sees where the balancer sent it.
const SERVED_BY: &str = "x-alpharen-served-by";
/// On a 421 answer to a forwarded request: this member has no channel or
/// no service for it (it has not caught up with the cluster's
/// configuration or deploys yet, e.g. just after joining), nothing ran,
/// and the member that forwarded it serves it itself.
const NOT_HERE: &str = "x-alpharen-not-here";

type Resp = Response<Full<Bytes>>;

fn json_response(status: StatusCode, body: Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>, cid: &str) -> Resp {
    json_response(status, json!({"error": message.into(), "cid": cid}))
}

pub(crate) fn new_cid() -> String {
    let b: [u8; 12] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub async fn handle(
    app: Arc<App>,
    door: &Door,
    client: IpAddr,
    chain: Option<Chain>,
    req: Request<Incoming>,
) -> Resp {
    let forwarded = req.headers().contains_key(FORWARDED);
    let remotes = app.remotes();
    let mut req = req.map(Either::Left);
    if !remotes.is_empty()
        && !forwarded
        && !crate::wsx::is_upgrade(req.headers())
        && !needs_certificate(&app, &req)
    {
        let cands = app.candidates(&remotes);
        if let Some(i) = lb::balance(&cands, rand::random()).filter(|&i| i > 0)
            && let Some(r) = remotes.get(i - 1)
        {
            match proxy(&app, r.clone(), req).await {
                Ok(resp) => return resp,
                // It never reached the peer: served here instead.
                Err(unsent) => req = unsent.map(Either::Right),
            }
        }
    }
    app.local_in_flight.fetch_add(1, Ordering::Relaxed);
    if forwarded {
        app.forwarded_in_flight.fetch_add(1, Ordering::Relaxed);
    }
    let started = Instant::now();
    let chain = chain.as_deref().map(Vec::as_slice);
    let mut resp = local(&app, door, client, chain, req, forwarded).await;
    if let Ok(v) = HeaderValue::from_str(&app.node_name()) {
        resp.headers_mut().insert(SERVED_BY, v);
    }
    app.local_in_flight.fetch_sub(1, Ordering::Relaxed);
    if forwarded {
        app.forwarded_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    if let Ok(mut rtt) = app.local_rtt_us.lock() {
        *rtt = lb::ewma(*rtt, started.elapsed().as_micros() as f64);
    }
    resp
}

/// A channel checking client certificates is served here: the certificate
/// belongs to this connection and cannot be forwarded to a peer.
fn needs_certificate<B>(app: &App, req: &Request<B>) -> bool {
    matches!(app.route(req.uri().path(), req.method().as_str()),
        Selected::Route(r, _) if matches!(r.rule, Some(security::Rule::ClientCert(_))))
}

type Body = Either<Incoming, Full<Bytes>>;

/// Forwards a request to another server as it came. A request that
/// never reached it (no connection), or that it has no channel or service
/// for ([`NOT_HERE`]), comes back, to be served here.
async fn proxy(
    app: &App,
    remote: Arc<Remote>,
    req: Request<Body>,
) -> Result<Resp, Request<Full<Bytes>>> {
    let cid = new_cid();
    remote.in_flight.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            remote.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Ok(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {MAX_BODY} bytes"),
                &cid,
            ));
        }
    };
    let original = || {
        let mut r = Request::new(Full::new(body.clone()));
        *r.method_mut() = parts.method.clone();
        *r.uri_mut() = parts.uri.clone();
        *r.version_mut() = parts.version;
        *r.headers_mut() = parts.headers.clone();
        r
    };
    let result = async {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut out = original();
        *out.uri_mut() = format!("{}{pq}", remote.base)
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| SendError::Unsent(e.to_string()))?;
        out.headers_mut()
            .insert(FORWARDED, HeaderValue::from_static("1"));
        out.headers_mut().remove("host");
        let resp = tokio::time::timeout(
            Duration::from_secs(app.config().timeout),
            remote.send(&app.client, out),
        )
        .await
        .map_err(|_| SendError::Failed("timed out".to_string()))??;
        let (p, b) = resp.into_parts();
        let bytes = b
            .collect()
            .await
            .map_err(|e| SendError::Failed(e.to_string()))?
            .to_bytes();
        Ok::<_, SendError>(Response::from_parts(p, Full::new(bytes)))
    }
    .await;
    remote.in_flight.fetch_sub(1, Ordering::Relaxed);
    match result {
        Ok(r) if lb::not_here(r.status().as_u16(), r.headers().contains_key(NOT_HERE)) => {
            tracing::debug!(server = %remote.base, "server has no channel or service for it yet; served here");
            Err(original())
        }
        Ok(r) => Ok(r),
        Err(e) => {
            remote.healthy.store(false, Ordering::Relaxed);
            tracing::warn!(server = %remote.base, error = %e, "server failed; marked unhealthy");
            match e {
                SendError::Unsent(_) => Err(original()),
                SendError::Failed(e) => Ok(error(
                    StatusCode::BAD_GATEWAY,
                    format!("server {} failed: {e}", remote.base),
                    &cid,
                )),
            }
        }
    }
}

async fn local<B>(
    app: &Arc<App>,
    door: &Door,
    client: IpAddr,
    chain: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    req: Request<B>,
    forwarded: bool,
) -> Resp
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let cid = new_cid();
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let (route, path_params) = match app.route(&path, &method) {
        Selected::Route(r, bound) => (r, bound),
        Selected::NotFound | Selected::MethodNotAllowed(_) if forwarded => return not_here(&cid),
        Selected::NotFound => {
            return error(StatusCode::NOT_FOUND, format!("no channel at {path}"), &cid);
        }
        Selected::MethodNotAllowed(allowed) => {
            let allowed = allowed.join(", ");
            let mut r = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path}; allowed: {allowed}"),
                &cid,
            );
            if let Ok(v) = HeaderValue::from_str(&allowed) {
                r.headers_mut().insert("allow", v);
            }
            return r;
        }
    };
    let ch = &route.channel;
    if route.rule.is_some()
        && let Err(wait) = door.check(client, Instant::now())
    {
        let secs = wait.as_secs() + 1;
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed authentications from your network; try again in {secs} s"),
            &cid,
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert("retry-after", v);
        }
        return r;
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {MAX_BODY} bytes"),
                &cid,
            );
        }
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut certificate = None;
    if let Some(rule) = &route.rule {
        let now = SystemTime::now();
        let checked = security::check(
            rule,
            &Parts {
                method: &method,
                path: &path,
                header: &header,
                body: &body,
                now,
            },
            chain,
        );
        let refused = match checked {
            Ok(Passed::Plain) => None,
            Ok(Passed::Certificate(id)) => {
                certificate = Some(id.to_json());
                None
            }
            Ok(Passed::Signature(sig)) => {
                let skew = match rule {
                    security::Rule::Hmac { skew, .. } => *skew,
                    _ => 300,
                };
                let fresh = app
                    .replay
                    .lock()
                    .map(|mut c| c.admit(sig, now, skew))
                    .unwrap_or(false);
                (!fresh).then_some(AuthError::Replay)
            }
            Err(e) => Some(e),
        };
        if let Some(e) = refused {
            door.failed(client, Instant::now());
            tracing::info!(channel = %ch.name, cid, %client, reason = %e, "request refused");
            let status = match e {
                AuthError::Subject(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            };
            let mut r = error(status, e.to_string(), &cid);
            if let Some(v) =
                security::challenge(rule, &e).and_then(|c| HeaderValue::from_str(&c).ok())
            {
                r.headers_mut().insert("www-authenticate", v);
            }
            return r;
        }
    }
    if ch.is_websocket() {
        return crate::wsx::upgrade(app.clone(), route.clone(), parts, client, &cid);
    }
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != "authorization")
        .filter_map(|(k, v)| Some((k.as_str().to_string(), json!(v.to_str().ok()?))))
        .collect();
    let msg = json!({
        "op": "call",
        "service": ch.service,
        "channel": ch.name,
        "cid": cid,
        "data_format": ch.data_format,
        "body": B64.encode(&body),
        "http": {"method": method, "path": path, "query": query, "headers": headers,
                 "remote_addr": client.to_string(), "client_cert": certificate,
                 "path_params": path_params.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<_, _>>()},
    });
    let started = Instant::now();
    let deadline = started + route.timeout;
    // In its own task: if the client goes away mid-request, dropping this
    // future must not drop a checked-out worker (the pool would shrink).
    let pool = app.pool.clone();
    let outcome = match tokio::spawn(async move { pool.run(&msg, deadline).await }).await {
        Ok(o) => o,
        Err(e) => Outcome::Failed(Failure::Died(format!("dispatch task failed: {e}"))),
    };
    let resp = match outcome {
        Outcome::Reply(reply) if forwarded && reply["unknown_service"] == true => {
            return not_here(&cid);
        }
        Outcome::Reply(reply) => from_reply(&reply, &cid),
        Outcome::Busy => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no worker became free within {:?}", route.timeout),
            &cid,
        ),
        Outcome::Failed(Failure::Timeout(d)) => {
            tracing::warn!(service = %ch.service, cid, "timed out; worker replaced");
            error(
                StatusCode::GATEWAY_TIMEOUT,
                format!("service {} did not answer within {d:?}", ch.service),
                &cid,
            )
        }
        Outcome::Failed(Failure::Died(why)) => {
            tracing::warn!(service = %ch.service, cid, reason = %why, "worker failed; replaced");
            error(
                StatusCode::BAD_GATEWAY,
                format!("service {} failed: the worker {why}", ch.service),
                &cid,
            )
        }
    };
    let failed = resp.status().is_server_error();
    if let Ok(mut s) = app.stats.lock() {
        s.record(&ch.service, started.elapsed().as_micros() as u64, failed);
    }
    resp
}

/// The answer to a forwarded request this member cannot run (see
/// [`NOT_HERE`]).
fn not_here(cid: &str) -> Resp {
    let mut r = error(
        StatusCode::MISDIRECTED_REQUEST,
        "no channel or service for this request on this member yet",
        cid,
    );
    r.headers_mut()
        .insert(NOT_HERE, HeaderValue::from_static("1"));
    r
}

/// A worker's answer → HTTP response.
fn from_reply(reply: &Value, cid: &str) -> Resp {
    let status = reply["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match reply["body"].as_str().map(|b| B64.decode(b)) {
        Some(Ok(b)) => b,
        _ => {
            return error(
                StatusCode::BAD_GATEWAY,
                "worker sent a malformed answer",
                cid,
            );
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Some(h) = reply["headers"].as_object() {
        for (k, v) in h {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                r.headers_mut().insert(name, value);
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(cid) {
        r.headers_mut().insert("x-alpharen-cid", v);
    }
    r
}
