//! What a service asks the supervisor for instead of opening the node's
//! database: its view (`services.view`: the current document and the
//! secrets it may read), a secret it generated kept once
//! (`services.keep_secret`), and an audit entry (`services.audit`); how
//! it says it is serving (`services.ready`); and an alert for the admin
//! (`services.alert`).
//! Params name the service; under privilege separation the supervisor
//! checks the name against the caller's user.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::call::{call, call_limited, control_socket};
use crate::protocol::{MAX_LINE, RpcError};

pub const VIEW: &str = "services.view";
pub const KEEP_SECRET: &str = "services.keep_secret";
pub const AUDIT: &str = "services.audit";
pub const READY: &str = "services.ready";
pub const ALERT: &str = "services.alert";

/// A supervisor that is starting services answers late, never not at all.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Largest view answer: the configuration document can be far longer
/// than a line (a zone of 100,000 `[[dpx.records]]` is about 8 MB).
const MAX_VIEW: u64 = MAX_LINE as u64 * 64;

/// `service`'s view (an `alpharen_store::View`).
pub async fn view<T: DeserializeOwned>(state_dir: &Path, service: &str) -> Result<T, RpcError> {
    let v = call_limited(
        &control_socket(state_dir),
        VIEW,
        json!({ "service": service }),
        TIMEOUT,
        MAX_VIEW,
    )
    .await?;
    serde_json::from_value(v).map_err(|e| {
        RpcError::new(
            "internal_error",
            format!("the supervisor's view for {service} does not parse: {e}"),
        )
    })
}

/// Keeps `value` as secret `name` unless one is already kept; returns the
/// kept one (so of two racing generators, one value wins everywhere).
pub async fn keep_secret(
    state_dir: &Path,
    service: &str,
    name: &str,
    value: &str,
) -> Result<String, RpcError> {
    let v = call(
        &control_socket(state_dir),
        KEEP_SECRET,
        json!({ "service": service, "name": name, "value": value }),
        TIMEOUT,
    )
    .await?;
    v["value"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| RpcError::new("internal_error", "keep_secret answered no value"))
}

#[derive(Debug, Serialize)]
pub struct AuditEntry<'a> {
    pub service: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub detail: &'a str,
}

/// Adds an entry to the node's audit log. Not fatal when it fails (the
/// action it records is done): logged.
pub async fn audit(state_dir: &Path, entry: &AuditEntry<'_>) {
    let result = match serde_json::to_value(entry) {
        Ok(params) => call(&control_socket(state_dir), AUDIT, params, TIMEOUT)
            .await
            .map(|_| ()),
        Err(e) => Err(RpcError::new("internal_error", e.to_string())),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, action = entry.action, "audit entry not written");
    }
}

/// Tells the supervisor `service` is serving (its listeners bound, its
/// socket answering), as systemd's `READY=1`: the node announces "ready"
/// only when every built-in has. Not fatal when unheard (a service run
/// alone by a test): the service serves anyway.
pub async fn ready(state_dir: &Path, service: &str) {
    let params = json!({ "service": service });
    if let Err(e) = call(&control_socket(state_dir), READY, params, TIMEOUT).await {
        tracing::warn!(error = %e, "the supervisor did not hear that this service is serving");
    }
}

/// Raises an alert for the admin: the supervisor logs it as the event
/// `notification: alert from SERVICE: TEXT` (which logfwd also sends as an
/// SNMP trap) and mails it when the mail service is there. Not fatal
/// when unheard: logged.
pub async fn alert(state_dir: &Path, service: &str, text: &str) {
    let params = json!({ "service": service, "text": text });
    if let Err(e) = call(&control_socket(state_dir), ALERT, params, TIMEOUT).await {
        tracing::warn!(error = %e, "the supervisor did not take the alert");
    }
}
