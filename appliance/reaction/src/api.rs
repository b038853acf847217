//! The agent API: HTTPS with the node's certificate (`<state>/tls/`, read
//! per connection so a renewal needs no restart), every request signed
//! (`alpharen-httpsig`: keyid = agent name, key = its secret
//! `reaction.agent.<name>`) and never accepted twice. A refusal is
//! logged with its reason and nothing of the request is acted on.
//!
//! - `GET /agent/v1/config`: the files and patterns its reader watches.
//! - `POST /agent/v1/events {epoch, events}`: matching lines.
//! - `POST /agent/v1/lease {wait_ms}`: long-poll for a command.
//! - `POST /agent/v1/result {run, seq, token, exit_code, output, timed_out}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::engine::{Event, Node, now_ms};

/// Largest request body: a batch of events.
const MAX_BODY: usize = 1 << 20;
/// Longest long-poll an agent may ask for.
const MAX_WAIT_MS: u64 = 30_000;

fn acceptor(state_dir: &Path) -> Result<TlsAcceptor, String> {
    let dir = state_dir.join("tls");
    let config = alpharen_nodetls::server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "agent API accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let node = node.clone();
        tokio::spawn(async move {
            let tls = match acceptor(&node.state_dir) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "no certificate for the agent API");
                    return;
                }
            };
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| {
                let node = node.clone();
                async move { Ok::<_, Infallible>(handle(&node, req, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn refuse(peer: SocketAddr, path: &str, agent: &str, why: &str) -> Response<Full<Bytes>> {
    tracing::warn!(%peer, path, agent, reason = why, "agent call refused");
    answer(StatusCode::UNAUTHORIZED, json!({ "error": why }))
}

/// Checks the signature and the replay cache; the agent's name when both pass.
fn authenticate(
    node: &Node,
    method: &str,
    path: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> Result<String, String> {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let now = SystemTime::now();
    let parts = alpharen_httpsig::Parts {
        method,
        path,
        header: &header,
        body,
        now,
    };
    let name = alpharen_httpsig::keyid(&parts)
        .ok_or("the request is not signed (Signature-Input with keyid)")?;
    let s = node.settings();
    let key = s
        .keys
        .get(&name)
        .filter(|_| s.reaction.agent(&name).is_some())
        .ok_or_else(|| format!("unknown agent {name:?}"))?;
    let sig =
        alpharen_httpsig::verify(&parts, &name, key, s.reaction.skew).map_err(|e| e.to_string())?;
    let fresh =
        node.replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(sig, now, s.reaction.skew);
    if !fresh {
        return Err("signature already used (replay)".into());
    }
    Ok(name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Events {
    epoch: String,
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseReq {
    wait_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultReq {
    run: i64,
    seq: i64,
    token: String,
    exit_code: i32,
    output: String,
    timed_out: bool,
}

async fn handle(node: &Node, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let version = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": format!("the body is over {MAX_BODY} bytes") }),
            );
        }
    };
    let agent = match authenticate(node, &method, &path, &headers, &body) {
        Ok(a) => a,
        Err(why) => return refuse(peer, &path, "", &why),
    };
    // Message-level encryption: the signature covered the sealed bytes.
    let s = node.settings();
    let key = s
        .reaction
        .agent(&agent)
        .filter(|a| a.encrypt)
        .and_then(|_| s.keys.get(&agent))
        .map(|secret| crate::seal::Key::derive(secret, &agent));
    let body = match unseal(key.as_ref(), &method, &path, body) {
        Ok(b) => b,
        Err(e) => return refuse(peer, &path, &agent, &e.to_string()),
    };
    let resp = route(node, &agent, &method, &path, version, body).await;
    match &key {
        Some(k) => seal_answer(k, &method, &path, resp).await,
        None => resp,
    }
}

/// The plaintext of a request body: opened with the agent's key when its
/// encryption is on (plaintext refused), refused when sealed and it is off.
fn unseal(
    key: Option<&crate::seal::Key>,
    method: &str,
    path: &str,
    body: Bytes,
) -> Result<Bytes, crate::seal::SealError> {
    match key {
        Some(k) if !body.is_empty() => k
            .open(&crate::seal::request_aad(method, path), &body)
            .map(Bytes::from),
        None if crate::seal::is_sealed(&body) => Err(crate::seal::SealError::Unexpected),
        _ => Ok(body),
    }
}

/// An answer with its body sealed for the agent.
async fn seal_answer(
    key: &crate::seal::Key,
    method: &str,
    path: &str,
    resp: Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = resp.into_parts();
    let plain = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(never) => match never {},
    };
    if plain.is_empty() {
        return Response::from_parts(parts, Full::new(plain));
    }
    match key.seal(&crate::seal::answer_aad(method, path), &plain) {
        Ok(sealed) => Response::from_parts(parts, Full::new(Bytes::from(sealed))),
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": e.to_string() }),
        ),
    }
}

/// A signed (and opened) call of `agent`.
async fn route(
    node: &Node,
    agent: &str,
    method: &str,
    path: &str,
    version: String,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let agent = agent.to_string();
    let (method, path) = (method.to_string(), path.to_string());
    {
        let mut seen = node.agents.lock().unwrap_or_else(|p| p.into_inner());
        let e = seen.entry(agent.clone()).or_default();
        e.last_ms = now_ms();
        e.version = version;
        e.calls += 1;
    }
    let bad = |e: String| answer(StatusCode::BAD_REQUEST, json!({ "error": e }));
    let result = match (method.as_str(), path.as_str()) {
        ("GET", "/agent/v1/config") => Ok(answer(StatusCode::OK, reader_config(node, &agent))),
        ("POST", "/agent/v1/events") => {
            let r: Events = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return bad(format!("events body: {e}")),
            };
            node.events(&agent, &r.epoch, r.events)
                .await
                .map(|n| answer(StatusCode::OK, json!({ "accepted": n })))
        }
        ("POST", "/agent/v1/lease") => {
            let r: LeaseReq = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return bad(format!("lease body: {e}")),
            };
            lease(node, &agent, r.wait_ms.min(MAX_WAIT_MS)).await
        }
        ("POST", "/agent/v1/result") => {
            let r: ResultReq = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => return bad(format!("result body: {e}")),
            };
            node.result(r.run, r.seq, &r.token, r.exit_code, &r.output, r.timed_out).await.map(|taken| {
                if taken {
                    answer(StatusCode::OK, json!({ "taken": true }))
                } else {
                    answer(StatusCode::CONFLICT, json!({ "error": "the lease is no longer yours (expired, or the task was skipped)" }))
                }
            })
        }
        _ => Ok(answer(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no {method} {path}") }),
        )),
    };
    result.unwrap_or_else(|e| {
        if let crate::db::DbError::NotFound(m) = &e {
            return answer(StatusCode::NOT_FOUND, json!({ "error": m }));
        }
        tracing::error!(error = %e, path, "agent call failed");
        answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": e.to_string() }),
        )
    })
}

/// The watches of an agent with each pattern's regex.
fn reader_config(node: &Node, agent: &str) -> Value {
    let s = node.settings();
    let watches: Vec<Value> = s
        .reaction
        .agent(agent)
        .map(|a| a.watch.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|w| {
            let patterns: Vec<Value> = w
                .patterns
                .iter()
                .filter_map(|p| s.reaction.patterns.iter().find(|x| &x.name == p))
                .map(|p| json!({ "name": p.name, "regex": p.regex }))
                .collect();
            json!({ "path": w.path, "patterns": patterns })
        })
        .collect();
    json!({ "watch": watches })
}

/// Hands out a command for this agent, waiting up to `wait_ms` for one;
/// 204 when none came. Leases that ran out are looked at every second.
async fn lease(
    node: &Node,
    agent: &str,
    wait_ms: u64,
) -> Result<Response<Full<Bytes>>, crate::db::DbError> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    loop {
        let notified = node.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let grace = node.settings().reaction.lease_grace;
        let got = node.db().lease(agent, now_ms(), grace, |db, run, seq| {
            let r = db.run(run).ok().flatten()?;
            let step = r.steps.iter().find(|s| s.seq == seq)?;
            let t = r.def?.tasks.get(step.task)?.clone();
            Some((t.command?, t.timeout))
        })?;
        if let Some(l) = got {
            tracing::info!(agent, run = l.run, seq = l.seq, "command leased");
            return Ok(answer(
                StatusCode::OK,
                serde_json::to_value(&l).unwrap_or_default(),
            ));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            return Ok(r);
        }
        let tick = deadline.min(now + Duration::from_secs(1));
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(tick) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dir: &Path) -> Arc<Node> {
        crate::engine_tests::node_with(dir, crate::engine_tests::ONE_COMMAND)
    }

    #[tokio::test(start_paused = true)]
    async fn long_poll_waits_then_hands_out_a_command_the_moment_it_is_ready() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let r = lease(&node, "h", 5_000).await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let waiting = node.clone();
        let poll = tokio::spawn(async move {
            let t = tokio::time::Instant::now();
            let r = lease(&waiting, "h", 25_000).await.unwrap();
            (r.status(), t.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        node.start("f").await.unwrap();
        let (status, waited) = poll.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        // Woken by the new step, not by the next one-second look.
        assert_eq!(waited, Duration::from_millis(3_500));
        // Leased: another poll of the same host gets nothing.
        let r = lease(&node, "h", 1_000).await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
}
