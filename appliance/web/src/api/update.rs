//! `/api/v1/system/update`: install an update bundle from the request
//! body, and the install in progress. The body is never held whole: the
//! limits layer lets this one route through unread (after checking the
//! caller is an admin), and the handler passes it on as a raw upload
//! (`system.update.upload`, frames of 1 MiB) as it arrives, so at most one
//! frame (plus the supervisor's small queue) is in memory whatever the
//! bundle's size.

use std::time::Duration;

use alpharen_rpc::Uploader;
use alpharen_rpc::system;
use alpharen_rpc::upload::MAX_FRAME;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde_json::json;

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Reader, rpc};
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
    let (_ready, up) = alpharen_rpc::upload(
        &app.socket,
        system::UPDATE_UPLOAD,
        json!({}),
        crate::CALL_TIMEOUT,
    )
    .await?;
    // In its own task: if the client goes away the handler is dropped,
    // but the upload must still be broken off (the slot stays invalid)
    // rather than left to block the next install until the supervisor
    // gives up.
    tokio::spawn(pump(up, body.into_data_stream()))
        .await
        .map_err(|e| ApiError::internal(format!("the upload task died: {e}")))?
}

/// Feeds the body to the supervisor in frames of [`MAX_FRAME`], then
/// ends the upload; a body that breaks off or stalls breaks it off.
async fn pump(mut up: Uploader, mut body: axum::body::BodyDataStream) -> ApiResult {
    let mut buf = Vec::with_capacity(MAX_FRAME);
    loop {
        let bytes = match tokio::time::timeout(STALL, body.next()).await {
            Ok(Some(Ok(b))) => b,
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => {
                let why = match up.abort().await {
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
        };
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = (MAX_FRAME - buf.len()).min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if buf.len() == MAX_FRAME {
                if let Err(e) = up.send(&buf).await {
                    drain(body).await;
                    return Err(e.into());
                }
                buf.clear();
            }
        }
    }
    up.send(&buf).await?;
    Ok(Json(up.finish().await?))
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
