//! What a scrape asks, over the control socket: the supervisor's
//! `services.metrics`, then the status of each running built-in that has
//! one, all at once and each with a short timeout, so one slow service
//! costs the scrape at most that timeout and only its own series.

use std::path::Path;
use std::time::Duration;

use alpharen_rpc::services::{METRICS, ServiceMetrics};
use futures_util::future::join_all;
use serde_json::{Value, json};

/// Longest any one call of a scrape may take (Prometheus's default
/// scrape timeout is 10 s; the calls run side by side).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The built-ins whose `<svc>.status` the series draw on (`net.status`
/// reads the links over netlink: a few small messages per scrape).
pub const WITH_STATUS: &[&str] = &["net", "vpn", "dpx", "mail", "pgha", "integrator"];

/// One scrape's answers.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Empty when the supervisor did not answer.
    pub services: Vec<ServiceMetrics>,
    /// Each running built-in of [`WITH_STATUS`] and its status, `None`
    /// when it did not answer in time.
    pub statuses: Vec<(String, Option<Value>)>,
}

/// The services whose status a scrape asks for: running built-ins with one.
pub fn wanted(services: &[ServiceMetrics]) -> Vec<String> {
    services
        .iter()
        .filter(|s| s.kind == "builtin" && s.state == "running")
        .filter(|s| WITH_STATUS.contains(&s.name.as_str()))
        .map(|s| s.name.clone())
        .collect()
}

pub async fn gather(socket: &Path) -> Snapshot {
    let services: Vec<ServiceMetrics> =
        match alpharen_rpc::call(socket, METRICS, json!({}), CALL_TIMEOUT).await {
            Ok(v) => serde_json::from_value(v).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "services.metrics: unexpected answer");
                Vec::new()
            }),
            Err(e) => {
                tracing::warn!(error = %e, "services.metrics failed");
                Vec::new()
            }
        };
    let names = wanted(&services);
    let answers = join_all(names.iter().map(|name| async move {
        let method = format!("{name}.status");
        match alpharen_rpc::call(socket, &method, json!({}), CALL_TIMEOUT).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(service = %name, error = %e, "status for /metrics failed");
                None
            }
        }
    }))
    .await;
    Snapshot {
        services,
        statuses: names.into_iter().zip(answers).collect(),
    }
}
