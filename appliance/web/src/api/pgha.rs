//! `/api/v1/pgha`: the PostgreSQL HA controller's actions, as `ctl pgha`
//! has them (its status is `/api/v1/services/pgha/status`).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Body, rpc};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnpinBody {
    /// `host:port` of the server's SSH, as the status shows it.
    host: String,
}

#[utoipa::path(post, path = "/api/v1/pgha/backup", tag = "pgha",
    responses((status = 200, description = "The backup controller runs now; its result shows in the status's `backup_last`", body = Value),
        (status = 409, description = "No `pgha.backup_controller` is configured (`not_configured`)", body = ErrorBody)))]
pub(super) async fn backup(State(app): AppState, _c: Admin) -> ApiResult {
    Ok(Json(rpc(&app, "pgha.backup", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/pgha/unpin", tag = "pgha", request_body = UnpinBody,
    responses((status = 200, description = "The host's pinned SSH key is forgotten: the next login pins the key it shows (after a reinstall)", body = Value),
        (status = 404, description = "No key is pinned for that host", body = ErrorBody)))]
pub(super) async fn unpin(State(app): AppState, _c: Admin, Body(b): Body<UnpinBody>) -> ApiResult {
    Ok(Json(
        rpc(&app, "pgha.unpin", json!({"host": b.host})).await?,
    ))
}
