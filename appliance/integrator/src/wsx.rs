//! WebSocket channels (`transport = "websocket"`): the upgrade on the
//! channel's path (after `http` checked its security), then one service
//! call per text or binary message, its answer sent back to that client;
//! and the hub through which services push to a channel's clients
//! (`self.wsx` in the SDK, the `wsx.send` host call).
//!
//! Connections live in this process only: in a cluster a push reaches the
//! clients connected to this server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::app::App;
use crate::pool::Outcome;
use crate::routes::Route;
use crate::worker::Failure;

/// Defaults of the channel keys (docs/integrator.md).
const DEFAULT_MAX_MESSAGE: u64 = 1 << 20;
const DEFAULT_PING: u64 = 30;
const DEFAULT_IDLE: u64 = 600;
/// Pushed messages a client may have waiting; beyond, pushes skip it.
const OUTBOX: usize = 64;
/// How long a closing connection waits for the client to hang up.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

type Resp = Response<Full<Bytes>>;
type Outbox = mpsc::Sender<Message>;

/// The connected clients of every WebSocket channel, by channel name and
/// client id.
#[derive(Default)]
pub struct Hub {
    clients: Mutex<HashMap<String, HashMap<String, Outbox>>>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Outbox>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new client of `channel`: its id and the queue of its pushes.
    fn join(&self, channel: &str) -> (String, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(OUTBOX);
        let b: [u8; 12] = rand::random();
        let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
        self.lock()
            .entry(channel.to_string())
            .or_default()
            .insert(id.clone(), tx);
        (id, rx)
    }

    fn leave(&self, channel: &str, id: &str) {
        let mut all = self.lock();
        if let Some(c) = all.get_mut(channel) {
            c.remove(id);
            if c.is_empty() {
                all.remove(channel);
            }
        }
    }

    /// Queues `msg` for every client of `channel` (or the one `client`);
    /// answers how many took it. A client whose queue is full is skipped.
    pub fn push(&self, channel: &str, client: Option<&str>, msg: &Message) -> usize {
        let all = self.lock();
        let Some(c) = all.get(channel) else {
            return 0;
        };
        let targets: Vec<(&String, &Outbox)> = match client {
            Some(id) => c.get_key_value(id).into_iter().collect(),
            None => c.iter().collect(),
        };
        let mut n = 0;
        for (id, tx) in targets {
            match tx.try_send(msg.clone()) {
                Ok(()) => n += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(channel, client_id = %id, "WebSocket client is not reading; push skipped")
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        n
    }

    /// Connected clients per channel, for the status.
    pub fn counts(&self) -> Value {
        let all = self.lock();
        all.iter()
            .map(|(k, v)| (k.clone(), json!(v.len())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// True for a WebSocket upgrade request (never balanced to a peer: the
/// balancer's proxy forwards whole requests, not connections).
pub fn is_upgrade(h: &HeaderMap) -> bool {
    h.get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The `Sec-WebSocket-Key` of a valid RFC 6455 upgrade request, or what
/// is wrong with it.
fn handshake_key(h: &HeaderMap) -> Result<&str, String> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if !is_upgrade(h) {
        return Err(
            "this is a WebSocket channel: connect with a WebSocket client (Upgrade: websocket)"
                .into(),
        );
    }
    let connection_upgrade = get("connection").is_some_and(|c| {
        c.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    });
    if !connection_upgrade {
        return Err("the upgrade request lacks Connection: Upgrade".into());
    }
    if get("sec-websocket-version") != Some("13") {
        return Err("only WebSocket version 13 is spoken (Sec-WebSocket-Version: 13)".into());
    }
    match get("sec-websocket-key") {
        Some(k) if B64.decode(k.trim()).is_ok_and(|b| b.len() == 16) => Ok(k.trim()),
        _ => Err("Sec-WebSocket-Key is missing or not 16 bytes in base64".into()),
    }
}

/// `Sec-WebSocket-Accept` (RFC 6455 4.2.2): SHA-1 of the key and the
/// protocol's GUID, in base64. ring, the node's only crypto provider.
fn accept_key(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    B64.encode(ctx.finish())
}

/// A channel's limits with the defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Limits {
    max_message: usize,
    ping: Duration,
    idle: Duration,
}

impl Limits {
    fn of(ch: &alpharen_store::config::Channel) -> Limits {
        Limits {
            max_message: ch.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE) as usize,
            ping: Duration::from_secs(ch.ping_interval.unwrap_or(DEFAULT_PING)),
            idle: Duration::from_secs(ch.idle_timeout.unwrap_or(DEFAULT_IDLE)),
        }
    }
}

/// Answers an upgrade request whose channel security passed: 101 and the
/// connection served from then on, or 426 saying what is wrong.
pub fn upgrade(
    app: Arc<App>,
    route: Arc<Route>,
    mut parts: hyper::http::request::Parts,
    client: IpAddr,
    cid: &str,
) -> Resp {
    let key = match handshake_key(&parts.headers) {
        Ok(k) => accept_key(k),
        Err(why) => {
            let mut r = crate::http::error(StatusCode::UPGRADE_REQUIRED, why, cid);
            r.headers_mut()
                .insert("upgrade", HeaderValue::from_static("websocket"));
            return r;
        }
    };
    let Some(on) = parts.extensions.remove::<OnUpgrade>() else {
        return crate::http::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this connection cannot be upgraded",
            cid,
        );
    };
    tokio::spawn(async move {
        match on.await {
            Ok(io) => serve(app, route, io, client).await,
            Err(e) => tracing::debug!(%client, error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("connection", HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert("sec-websocket-accept", v);
    }
    r
}

/// Why a connection ended: the client went, or we close it with a code.
enum End {
    Gone,
    Close(CloseCode, String),
}

async fn serve(app: Arc<App>, route: Arc<Route>, io: Upgraded, client: IpAddr) {
    let ch = &route.channel;
    let limits = Limits::of(ch);
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_message))
        .max_frame_size(Some(limits.max_message));
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, Some(config)).await;
    let (id, mut outbox) = app.wsx.join(&ch.name);
    tracing::info!(channel = %ch.name, client_id = %id, %client, "WebSocket client connected");
    let end = session(&app, &route, &id, &mut ws, &mut outbox, limits).await;
    app.wsx.leave(&ch.name, &id);
    if let End::Close(code, reason) = end {
        tracing::info!(channel = %ch.name, client_id = %id, code = u16::from(code), %reason, "closing WebSocket");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        if ws.send(Message::Close(Some(frame))).await.is_ok() {
            // End our side, then read what the client still sends until
            // it hangs up (raw: after an oversized frame the stream is not
            // at a frame boundary), so unread data does not turn our
            // close into a reset that loses the close frame.
            let raw = ws.get_mut();
            let _ = raw.shutdown().await;
            let mut buf = vec![0u8; 64 << 10];
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                while raw.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            })
            .await;
        }
    } else {
        tracing::info!(channel = %ch.name, client_id = %id, "WebSocket client disconnected");
    }
}

/// A message's service call in flight: its task, whether the message was
/// binary, when it started, its correlation id.
type Call = (tokio::task::JoinHandle<Outcome>, bool, Instant, String);

async fn session(
    app: &Arc<App>,
    route: &Route,
    id: &str,
    ws: &mut WebSocketStream<TokioIo<Upgraded>>,
    outbox: &mut mpsc::Receiver<Message>,
    limits: Limits,
) -> End {
    let ch = &route.channel;
    let mut call: Option<Call> = None;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + limits.ping, limits.ping);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut awaiting_pong = false;
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            m = ws.next(), if call.is_none() => match m {
                None => return End::Gone,
                Some(Err(WsError::Capacity(_))) => {
                    return End::Close(
                        CloseCode::Size,
                        format!("message larger than {} bytes", limits.max_message),
                    );
                }
                Some(Err(e)) => {
                    tracing::debug!(channel = %ch.name, client_id = %id, error = %e, "WebSocket read failed");
                    return End::Gone;
                }
                Some(Ok(Message::Text(t))) => {
                    last = tokio::time::Instant::now();
                    call = Some(start_call(app, route, id, Bytes::from(t), false));
                }
                Some(Ok(Message::Binary(b))) => {
                    last = tokio::time::Instant::now();
                    call = Some(start_call(app, route, id, b, true));
                }
                Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                // Close (answered by tungstenite; the stream ends next),
                // pings (answered by tungstenite), raw frames.
                Some(Ok(_)) => {}
            },
            out = async { call.as_mut().map(|c| &mut c.0)?.await.ok() }, if call.is_some() => {
                let Some((_, binary, started, cid)) = call.take() else { continue };
                let out = out.unwrap_or_else(|| Outcome::Failed(Failure::Died("dispatch task failed".into())));
                let (reply, failed) = reply(out, binary, &ch.service, route.timeout, &cid);
                if let Ok(mut s) = app.stats.lock() {
                    s.record(&ch.service, started.elapsed().as_micros() as u64, failed);
                }
                // What the service pushed to this client goes first.
                while let Ok(m) = outbox.try_recv() {
                    if ws.send(m).await.is_err() {
                        return End::Gone;
                    }
                }
                if let Some(m) = reply {
                    if ws.send(m).await.is_err() {
                        return End::Gone;
                    }
                    last = tokio::time::Instant::now();
                }
            },
            m = outbox.recv() => {
                let Some(m) = m else { return End::Gone };
                if ws.send(m).await.is_err() {
                    return End::Gone;
                }
                last = tokio::time::Instant::now();
            },
            _ = ping.tick() => {
                if awaiting_pong {
                    return End::Close(
                        CloseCode::Away,
                        format!("no answer to a ping within {} s", limits.ping.as_secs()),
                    );
                }
                awaiting_pong = true;
                if ws.send(Message::Ping(Bytes::from_static(b"alpharen"))).await.is_err() {
                    return End::Gone;
                }
            },
            _ = tokio::time::sleep_until(last + limits.idle), if call.is_none() => {
                return End::Close(
                    CloseCode::Normal,
                    format!("no message for {} s", limits.idle.as_secs()),
                );
            },
        }
    }
}

fn start_call(app: &Arc<App>, route: &Route, id: &str, body: Bytes, binary: bool) -> Call {
    let ch = &route.channel;
    let cid = crate::http::new_cid();
    let msg = json!({
        "op": "call",
        "service": ch.service,
        "channel": ch.name,
        "channel_type": "web-socket",
        "cid": cid,
        "data_format": ch.data_format,
        "body": B64.encode(&body),
        "http": {},
        "wsx": {"client_id": id, "channel": ch.name, "binary": binary},
    });
    let pool = app.pool.clone();
    let deadline = Instant::now() + route.timeout;
    let task = tokio::spawn(async move { pool.run(&msg, deadline).await });
    (task, binary, Instant::now(), cid)
}

/// The message a call's outcome sends back (none for an empty answer),
/// and whether the call failed. A service error goes back as its JSON
/// error text; the connection stays open.
fn reply(
    out: Outcome,
    binary: bool,
    service: &str,
    timeout: Duration,
    cid: &str,
) -> (Option<Message>, bool) {
    let error = |text: String| {
        Some(Message::text(
            json!({"error": text, "cid": cid}).to_string(),
        ))
    };
    match out {
        Outcome::Reply(v) => {
            let status = v["status"].as_u64().unwrap_or(500);
            let Some(Ok(body)) = v["body"].as_str().map(|b| B64.decode(b)) else {
                return (error("worker sent a malformed answer".into()), true);
            };
            let failed = status >= 500;
            if body.is_empty() {
                return (None, failed);
            }
            let m = if binary || status >= 400 {
                if status >= 400 {
                    Message::text(String::from_utf8_lossy(&body).into_owned())
                } else {
                    Message::Binary(Bytes::from(body))
                }
            } else {
                match String::from_utf8(body) {
                    Ok(t) => Message::text(t),
                    Err(e) => Message::Binary(Bytes::from(e.into_bytes())),
                }
            };
            (Some(m), failed)
        }
        Outcome::Busy => (
            error(format!("no worker became free within {timeout:?}")),
            true,
        ),
        Outcome::Failed(Failure::Timeout(d)) => (
            error(format!("service {service} did not answer within {d:?}")),
            true,
        ),
        Outcome::Failed(Failure::Died(why)) => (
            error(format!("service {service} failed: the worker {why}")),
            true,
        ),
    }
}

/// `wsx.send` from a service: `data` ({"json": v} sent as text, a string
/// as itself; {"b64": ...} as binary) to every client of `channel`, or to
/// `client_id`. Answers how many clients it was queued for.
pub fn host_send(app: &App, req: &Value) -> Result<Value, (String, &'static str)> {
    let channel = req["channel"].as_str().unwrap_or_default();
    let config = app.config();
    if !config
        .channels
        .iter()
        .any(|c| c.name == channel && c.is_websocket())
    {
        return Err((
            format!("no WebSocket channel is named {channel:?}"),
            "not_found",
        ));
    }
    let msg = match (&req["data"]["b64"], &req["data"]["json"]) {
        (Value::String(b), _) => Message::Binary(Bytes::from(
            B64.decode(b)
                .map_err(|e| (format!("data: bad base64: {e}"), "invalid_params"))?,
        )),
        (_, Value::String(s)) => Message::text(s.clone()),
        (_, v) => Message::text(v.to_string()),
    };
    let client = req["client_id"].as_str();
    Ok(json!(app.wsx.push(channel, client, &msg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn handshake_needs_upgrade_connection_version_and_key() {
        let good = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert_eq!(
            handshake_key(&headers(&good)),
            Ok("dGhlIHNhbXBsZSBub25jZQ==")
        );
        for (drop, word) in [
            (0, "Upgrade: websocket"),
            (1, "Connection"),
            (2, "version 13"),
            (3, "Sec-WebSocket-Key"),
        ] {
            let mut h = good.to_vec();
            h.remove(drop);
            let e = handshake_key(&headers(&h)).unwrap_err();
            assert!(e.contains(word), "{e}");
        }
        let mut h = good.to_vec();
        h[3] = ("sec-websocket-key", "c2hvcnQ=");
        assert!(handshake_key(&headers(&h)).is_err());
    }

    #[test]
    fn pushes_reach_all_or_one_and_skip_a_full_queue() {
        let hub = Hub::default();
        let (a, mut ra) = hub.join("chat");
        let (_b, mut rb) = hub.join("chat");
        let m = Message::text("hi");
        assert_eq!(hub.push("chat", None, &m), 2);
        assert_eq!(hub.push("chat", Some(&a), &m), 1);
        assert_eq!(hub.push("chat", Some("nobody"), &m), 0);
        assert_eq!(hub.push("other", None, &m), 0);
        assert_eq!(ra.try_recv().unwrap(), m);
        assert_eq!(ra.try_recv().unwrap(), m);
        assert_eq!(rb.try_recv().unwrap(), m);
        assert!(rb.try_recv().is_err());
        for _ in 0..OUTBOX {
            hub.push("chat", Some(&a), &m);
        }
        assert_eq!(hub.push("chat", None, &m), 1);
        hub.leave("chat", &a);
        assert_eq!(hub.counts(), json!({"chat": 1}));
    }

    #[test]
    fn replies_follow_the_message_kind_and_errors_are_text() {
        let t = Duration::from_secs(1);
        let ok = |status: u64, body: &[u8]| {
            Outcome::Reply(json!({"ok": true, "status": status, "body": B64.encode(body)}))
        };
        assert_eq!(
            reply(ok(200, b"{\"a\":1}"), false, "s", t, "c"),
            (Some(Message::text("{\"a\":1}")), false)
        );
        assert_eq!(
            reply(ok(200, b"\x01\x02"), true, "s", t, "c"),
            (
                Some(Message::Binary(Bytes::from_static(b"\x01\x02"))),
                false
            )
        );
        assert_eq!(reply(ok(200, b""), false, "s", t, "c"), (None, false));
        assert_eq!(
            reply(ok(400, b"{\"error\":\"bad\"}"), true, "s", t, "c"),
            (Some(Message::text("{\"error\":\"bad\"}")), false)
        );
        let (m, failed) = reply(Outcome::Failed(Failure::Timeout(t)), false, "s", t, "c");
        assert!(failed);
        assert!(matches!(m, Some(Message::Text(x)) if x.contains("did not answer")));
    }
}
