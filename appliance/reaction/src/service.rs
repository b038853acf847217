//! The `service` task: the engine invokes an integrator service through
//! the supervisor's control socket (`integrator.invoke`, as `ctl
//! integrator invoke` does); the integrator's answer (status and body)
//! becomes the step's exit code and output. Services and the engine talk
//! only through that socket: this crate does not link the integrator.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// What a service step records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The service's HTTP status (what `if on = "exit_code"` tests).
    pub status: i32,
    /// A text body as it is; any other JSON body compact.
    pub output: String,
    /// A 2xx status: the step is done; any other fails it.
    pub ok: bool,
}

/// Reads `integrator.invoke`'s answer `{status, body, ...}`.
pub fn answer(v: &Value) -> Answer {
    let status = v["status"]
        .as_i64()
        .and_then(|s| i32::try_from(s).ok())
        .unwrap_or(-1);
    let output = match &v["body"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    Answer {
        status,
        output,
        ok: (200..300).contains(&status),
    }
}

/// Invokes `service` with `payload`, waiting at most `timeout`; an error
/// (the integrator not running, no such service) is the reason, as text.
pub async fn invoke(
    state_dir: &Path,
    service: &str,
    payload: Option<&Value>,
    run: i64,
    timeout: Duration,
) -> Result<Answer, String> {
    let params = json!({
        "name": service,
        "payload": payload.cloned().unwrap_or(Value::Null),
        "author": format!("reaction run {run}"),
    });
    alpharen_rpc::call(
        &alpharen_rpc::control_socket(state_dir),
        "integrator.invoke",
        params,
        timeout,
    )
    .await
    .map(|v| answer(&v))
    .map_err(|e| format!("integrator.invoke {service}: {}", e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_body_become_exit_code_and_output() {
        let a = answer(&json!({"status": 200, "body": {"free": 12}}));
        assert_eq!(
            a,
            Answer {
                status: 200,
                output: r#"{"free":12}"#.into(),
                ok: true
            }
        );
        let a = answer(&json!({"status": 500, "body": "boom"}));
        assert_eq!((a.status, a.output.as_str(), a.ok), (500, "boom", false));
        let a = answer(&json!({"status": 204, "body": null}));
        assert_eq!((a.output.as_str(), a.ok), ("", true));
        assert!(!answer(&json!({})).ok);
    }
}
