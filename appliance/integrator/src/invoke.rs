//! `integrator.invoke`: run a deployed service once with a payload, as a
//! developer does from the console or ctl to try it, and answer with what
//! a channel would have sent back and how long it took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alpharen_rpc::RpcError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::app::App;
use crate::engine::call_msg;
use crate::pool::Outcome;
use crate::worker::Failure;

/// Runs `service` with `payload` on a worker within the configured
/// timeout. A service error is an answer (its status and body), like a
/// channel's; only a missing worker is an error of the call.
pub async fn invoke(
    app: &Arc<App>,
    service: &str,
    payload: &Value,
    actor: &str,
) -> Result<Value, RpcError> {
    let meta = json!({"invoked_by": actor});
    let mut msg = call_msg(service, "invoke", payload, meta);
    // The worker returns the call's log lines with its reply.
    msg["capture_logs"] = json!(true);
    let cid = msg["cid"].clone();
    let timeout = Duration::from_secs(app.config().timeout);
    let started = Instant::now();
    let out = app.pool.clone().run(&msg, Instant::now() + timeout).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(service, actor, ms, "invoked");
    answer(out, service, timeout, ms, cid)
}

/// The answer for a worker's outcome: status, headers, the body as JSON
/// when it is JSON (else as text), time and correlation id.
fn answer(
    out: Outcome,
    service: &str,
    timeout: Duration,
    ms: f64,
    cid: Value,
) -> Result<Value, RpcError> {
    let mut logs = json!([]);
    let (status, headers, body) = match out {
        Outcome::Reply(v) => {
            if v["logs"].is_array() {
                logs = v["logs"].clone();
            }
            let raw = B64
                .decode(v["body"].as_str().unwrap_or_default())
                .unwrap_or_default();
            let body = serde_json::from_slice::<Value>(&raw)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
            (
                v["status"].as_u64().unwrap_or(200),
                v["headers"].clone(),
                body,
            )
        }
        Outcome::Busy => {
            return Err(RpcError::new(
                "unavailable",
                format!("no worker became free within {timeout:?}"),
            ));
        }
        Outcome::Failed(Failure::Timeout(d)) => (
            504,
            json!({}),
            json!({"error": format!("service {service} did not answer within {d:?}")}),
        ),
        Outcome::Failed(Failure::Died(why)) => (
            502,
            json!({}),
            json!({"error": format!("service {service} failed: the worker {why}")}),
        ),
    };
    Ok(json!({
        "service": service, "status": status, "headers": headers, "body": body,
        "ms": (ms * 10.0).round() / 10.0, "cid": cid, "logs": logs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u64, body: &[u8]) -> Outcome {
        Outcome::Reply(json!({
            "ok": status < 400, "status": status,
            "headers": {"content-type": "application/json"},
            "body": B64.encode(body),
        }))
    }

    #[test]
    fn a_json_body_is_json_and_text_stays_text() {
        let t = Duration::from_secs(5);
        let a = answer(reply(201, br#"{"hi": 1}"#), "s", t, 1.23, json!("c")).unwrap();
        assert_eq!(a["status"], 201);
        assert_eq!(a["body"], json!({"hi": 1}));
        assert_eq!(a["ms"], 1.2);
        let a = answer(reply(200, b"<x/>"), "s", t, 0.0, json!("c")).unwrap();
        assert_eq!(a["body"], "<x/>");
    }

    #[test]
    fn service_errors_are_answers_but_no_worker_is_an_error() {
        let t = Duration::from_secs(5);
        let a = answer(
            reply(400, br#"{"error": "Missing input: user"}"#),
            "s",
            t,
            0.0,
            json!("c"),
        )
        .unwrap();
        assert_eq!(a["status"], 400);
        let a = answer(
            Outcome::Failed(Failure::Timeout(t)),
            "s",
            t,
            0.0,
            json!("c"),
        )
        .unwrap();
        assert_eq!(a["status"], 504);
        let e = answer(Outcome::Busy, "s", t, 0.0, json!("c")).unwrap_err();
        assert_eq!(e.code, "unavailable");
    }

    #[test]
    fn the_worker_log_lines_come_with_the_answer() {
        let t = Duration::from_secs(5);
        let mut out = reply(200, b"{}");
        if let Outcome::Reply(v) = &mut out {
            v["logs"] = json!(["INFO svc: hello"]);
        }
        let a = answer(out, "s", t, 0.0, json!("c")).unwrap();
        assert_eq!(a["logs"], json!(["INFO svc: hello"]));
        let a = answer(reply(200, b"{}"), "s", t, 0.0, json!("c")).unwrap();
        assert_eq!(a["logs"], json!([]));
    }
}
