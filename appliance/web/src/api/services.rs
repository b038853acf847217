//! `/api/v1/services`: the supervised services, each one's own status,
//! and restarting one.

use alpharen_rpc::services::{LIST, RESTART, Restart};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::json;

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Reader, rpc};
use crate::error::ApiError;

#[utoipa::path(get, path = "/api/v1/services", tag = "node",
    responses((status = 200, description = "Supervised services with state, restarts, since", body = Value)))]
pub(super) async fn services(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, LIST, json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/services/{name}/status", tag = "node",
    params(("name" = String, Path, description = "Service name: net, vpn, dpx, mail, pgha, integrator, logfwd, web")),
    responses((status = 200, description = "The service's own status (`<name>.status`): leases, peers, queue, HA groups, workers, the ACME certificate (web)", body = Value),
        (status = 404, description = "No such service, or one without a status", body = ErrorBody)))]
pub(super) async fn service_status(
    State(app): AppState,
    _c: Reader,
    Path(name): Path<String>,
) -> ApiResult {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_service",
            format!("there is no service {name:?}"),
        ));
    }
    Ok(Json(rpc(&app, &format!("{name}.status"), json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/services/{name}/restart", tag = "node",
    params(("name" = String, Path, description = "Service name")),
    responses((status = 200, description = "Restart requested", body = Value),
        (status = 404, description = "No such service", body = ErrorBody)))]
pub(super) async fn service_restart(
    State(app): AppState,
    _c: Admin,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(
        rpc(&app, RESTART, Restart { name, wait: false }).await?,
    ))
}
