//! `/api/v1/system/update`: install an update bundle from the request
//! body, and the install in progress. The body is never held whole: the
//! limits layer lets this one route through unread (after checking the
//! caller is an admin), and the handler cuts it into
//! `system.update.data` chunks as it arrives, so at most one chunk (plus
//! the supervisor's small queue) is in memory whatever the bundle's size.

use std::time::Duration;

use alpharen_rpc::system::{self, UPDATE_CHUNK, UpdateData, Upload, UploadId};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Reader, rpc};
use crate::App;
use crate::error::ApiError;

/// A body that sends nothing for this long is taken as ended: the
/// install then fails as truncated (the supervisor would give up at 120 s).
const STALL: Duration = Duration::from_secs(60);
/// After a refusal the rest of the body is read and dropped, up to this
/// much, so the client hears the reason instead of a reset connection.
const DRAIN: u64 = 4 << 30;

#[utoipa::path(get, path = "/api/v1/system/update", tag = "node",
    responses((status = 200, description = "The install in progress: `installing`, and while it runs its `upload` id and the bundle bytes `received` so far", body = Value)))]
pub(super) async fn update_status(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, system::UPDATE_STATUS, json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/system/update", tag = "node",
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "An update bundle (.aru), streamed: verified and written to the inactive slot as it arrives"),
    responses((status = 200, description = "Installed into the inactive slot and armed for one trial at the next reboot: slot, version, build_id, accept (upgrade or reinstall), bytes", body = Value),
        (status = 400, description = "The body ended or stalled before the bundle did (`body_incomplete`); the inactive slot is left invalid", body = ErrorBody),
        (status = 409, description = "Another install is running (`busy`), or this node cannot install now (`update_unavailable`: no update keys, not booted from an A/B slot, running slot still on trial)", body = ErrorBody),
        (status = 422, description = "The bundle was refused (`update_refused`: signature, board, version, corrupt block, truncated); the message says why and where", body = ErrorBody)))]
pub(super) async fn update(State(app): AppState, _c: Admin, body: axum::body::Body) -> ApiResult {
    let begun: Upload =
        serde_json::from_value(rpc(&app, system::UPDATE_BEGIN, json!({})).await?)
            .map_err(|e| ApiError::internal(format!("system.update.begin answered: {e}")))?;
    // In its own task: if the client goes away the handler is dropped,
    // but the upload must still be ended (the slot stays invalid) rather
    // than left to block the next install until the supervisor gives up.
    tokio::spawn(pump(app, begun.upload, body.into_data_stream()))
        .await
        .map_err(|e| ApiError::internal(format!("the upload task died: {e}")))?
}

/// Feeds the body to the supervisor in chunks of [`UPDATE_CHUNK`], then
/// ends the upload.
async fn pump(
    app: std::sync::Arc<App>,
    upload: String,
    mut body: axum::body::BodyDataStream,
) -> ApiResult {
    let mut buf = Vec::with_capacity(UPDATE_CHUNK);
    let mut cut_short = false;
    loop {
        let bytes = match tokio::time::timeout(STALL, body.next()).await {
            Ok(Some(Ok(b))) => b,
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => {
                cut_short = true;
                break;
            }
        };
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = (UPDATE_CHUNK - buf.len()).min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if buf.len() == UPDATE_CHUNK {
                if let Err(e) = send(&app, &upload, &buf).await {
                    drain(body).await;
                    return Err(e);
                }
                buf.clear();
            }
        }
    }
    if !buf.is_empty() {
        send(&app, &upload, &buf).await?;
    }
    let end = rpc(&app, system::UPDATE_END, UploadId { upload }).await;
    if cut_short {
        let why = match end {
            Err(e) => e.message,
            Ok(_) => "the bundle was complete".into(),
        };
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body_incomplete",
            format!(
                "the request body broke off or sent nothing for {} s: {why}",
                STALL.as_secs()
            ),
        ));
    }
    Ok(Json(end?))
}

async fn send(app: &App, upload: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    let data = UpdateData {
        upload: upload.to_string(),
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
    };
    rpc(app, system::UPDATE_DATA, data).await
}

/// Reads and drops the rest of a refused body (at most [`DRAIN`] bytes).
async fn drain(mut body: axum::body::BodyDataStream) {
    let mut seen = 0u64;
    while seen < DRAIN {
        match tokio::time::timeout(STALL, body.next()).await {
            Ok(Some(Ok(b))) => seen += b.len() as u64,
            _ => return,
        }
    }
}
