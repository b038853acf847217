//! `/api/v1/setup`: whether first-boot setup is needed, and completing it.

use alpharen_rpc::setup::{self as m, Setup};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::openapi::ErrorBody;
use super::{ApiResult, AppState, Body, rpc};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    /// The one-time code from the node's console or `<state>/setup-code`.
    code: String,
    admin_password: String,
    hostname: String,
    network: Option<Value>,
    timezone: Option<String>,
    mail: Option<Value>,
    #[serde(default)]
    ssh_authorized_keys: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/setup", tag = "setup", security(()),
    responses((status = 200, description = "`{\"required\": bool}`", body = Value)))]
pub(super) async fn setup_status(State(app): AppState) -> ApiResult {
    Ok(Json(rpc(&app, m::STATUS, json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/setup", tag = "setup", security(()), request_body = SetupBody,
    responses((status = 200, description = "Setup done; log in as admin", body = Value),
        (status = 403, description = "Wrong setup code", body = ErrorBody),
        (status = 409, description = "Setup already done", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody),
        (status = 429, description = "Too many wrong codes", body = ErrorBody)))]
pub(super) async fn setup_complete(
    State(app): AppState,
    ip: Option<axum::Extension<crate::ClientIp>>,
    Body(b): Body<SetupBody>,
) -> ApiResult {
    let params = Setup {
        code: b.code,
        admin_password: b.admin_password,
        hostname: b.hostname,
        network: b.network,
        timezone: b.timezone,
        mail: b.mail,
        ssh_authorized_keys: b.ssh_authorized_keys,
        // Wrong codes lock out only this client's network.
        client: ip.map(|i| i.0.0),
    };
    Ok(Json(rpc(&app, m::COMPLETE, params).await?))
}
