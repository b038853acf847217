//! The node as a whole: health, status, A/B slots, reboot and power-off.

use alpharen_rpc::{services, system};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Body, Reader, rpc};

#[utoipa::path(get, path = "/api/v1/health", tag = "node", security(()),
    responses((status = 200, description = "The web service is up", body = Value)))]
/// A fixed body: monitors poll this often, so it builds no JSON value.
pub(super) async fn health() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            const { HeaderValue::from_static("application/json") },
        )],
        r#"{"status":"ok"}"#,
    )
}

#[utoipa::path(get, path = "/api/v1/status", tag = "node",
    responses((status = 200, description = "Node name, version, uptime, services, pending change", body = Value)))]
pub(super) async fn status(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, services::STATUS, json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/metrics/history", tag = "node",
    responses((status = 200, description = "The dashboard's last hour, sampled every `interval_secs`: `times` (Unix seconds, oldest first) and `series`, each a `key` (`web_requests`, `cpu/<service>`, `rss/<service>`, `dns_answers`, `vpn_rx`, `vpn_tx`, `mail_queue`, `queue_depth`, `queue_dead`, `integrator_in_flight`), a `unit` and one value per time (`null` where there is none)", body = Value)))]
pub(super) async fn metrics_history(
    State(app): AppState,
    _c: Reader,
) -> Json<crate::metrics::history::Answer> {
    let history = app.history.lock();
    Json(
        history
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .answer(crate::metrics::history::PERIOD),
    )
}

#[utoipa::path(get, path = "/api/v1/system/slots", tag = "node",
    responses((status = 200, description = "The A/B slots: state (good, trial, failed, invalid), version, build, which one is booted", body = Value),
        (status = 409, description = "This node has no A/B slots to show: not booted from one (a development node), or its boot partition cannot be read (`slots_unavailable`, the message says which)", body = ErrorBody)))]
pub(super) async fn slots(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, system::SLOTS, json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/system/reboot", tag = "node",
    responses((status = 200, description = "Rebooting", body = Value)))]
pub(super) async fn reboot(State(app): AppState, _c: Admin) -> ApiResult {
    Ok(Json(rpc(&app, system::REBOOT, json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/system/reboot/schedule", tag = "node",
    responses((status = 200, description = "The scheduled reboot: `at` (Unix seconds) or null", body = Value)))]
pub(super) async fn reboot_scheduled(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, system::REBOOT_SCHEDULED, json!({})).await?))
}

#[utoipa::path(put, path = "/api/v1/system/reboot/schedule", tag = "node",
    request_body(content = Value, description = "`{\"at\": \"HH:MM\"}`: reboot at the next such local time (the node's `node.timezone`), replacing an earlier schedule"),
    responses((status = 200, description = "Scheduled: `at` (Unix seconds)", body = Value),
        (status = 400, description = "`at` is not a time of day HH:MM", body = ErrorBody),
        (status = 501, description = "A development node, which cannot reboot (`not_supported`)", body = ErrorBody)))]
pub(super) async fn reboot_schedule(
    State(app): AppState,
    _c: Admin,
    Body(b): Body<system::ScheduleReboot>,
) -> ApiResult {
    Ok(Json(rpc(&app, system::REBOOT_SCHEDULE, b).await?))
}

#[utoipa::path(delete, path = "/api/v1/system/reboot/schedule", tag = "node",
    responses((status = 200, description = "No reboot is scheduled any more: `at` null", body = Value)))]
pub(super) async fn reboot_cancel(State(app): AppState, _c: Admin) -> ApiResult {
    let cancel = system::ScheduleReboot {
        at: None,
        cancel: true,
    };
    Ok(Json(rpc(&app, system::REBOOT_SCHEDULE, cancel).await?))
}

#[utoipa::path(post, path = "/api/v1/system/poweroff", tag = "node",
    responses((status = 200, description = "Powering off", body = Value)))]
pub(super) async fn poweroff(State(app): AppState, _c: Admin) -> ApiResult {
    Ok(Json(rpc(&app, system::POWEROFF, json!({})).await?))
}
