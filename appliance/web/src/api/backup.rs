//! `/api/v1/backup`: download a backup file, restore one as a new revision.

use alpharen_rpc::backup::{CREATE, RESTORE, Restore};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Authed, Body, rpc};
use crate::error::ApiError;

#[utoipa::path(get, path = "/api/v1/backup", tag = "backup",
    responses((status = 200, description = "A backup file (JSON) to download", body = Value)))]
pub(super) async fn backup_download(State(app): AppState, _c: Admin) -> Result<Response, ApiError> {
    let backup = rpc(&app, CREATE, json!({})).await?;
    let stamp = alpharen_store::now_unix();
    let mut resp = Json(backup).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"alpharen-backup-{stamp}.json\""
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[utoipa::path(post, path = "/api/v1/backup/restore", tag = "backup", request_body = Value,
    responses((status = 200, description = "Restored as a new revision", body = Value),
        (status = 422, description = "Not a usable backup", body = ErrorBody)))]
pub(super) async fn backup_restore(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<Value>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            RESTORE,
            Restore {
                backup: b,
                author: Some(c.user),
            },
        )
        .await?,
    ))
}
