//! `GET /metrics`: the node's figures in the Prometheus text format
//! (0.0.4), for an operator's Prometheus. The web service is the node's
//! only HTTP door, so it serves them; it owns none of them but its own
//! request counts (`http`). Everything else is gathered at scrape time
//! over the control socket (`gather`): the supervisor's
//! `services.metrics` (state, restarts, memory and CPU of every service)
//! and the `<svc>.status` each running built-in already answers, turned
//! into series by plain functions (`series`) and encoded with
//! `prometheus-client` (`render`). A service that is down or slow only
//! loses its own series; the scrape still answers.
//!
//! Access: an API token of any role (a scraper only reads, so a
//! `viewer` token is enough) or an admin's console session. A viewer's
//! session is refused: the console's viewers have no use for the raw
//! figures, and the brief for this endpoint names admins only.
//!
//! The console's charts read the same figures from `history`, sampled in
//! process every 10 s (`GET /api/v1/metrics/history`, any logged-in role).

pub mod gather;
pub mod history;
pub mod http;
pub mod render;
pub mod series;

use std::sync::Arc;

use alpharen_store::Role;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::App;
use crate::api::{Authed, Reader};
use crate::auth::Via;
use crate::error::ApiError;

/// The `Content-Type` of the answer: the Prometheus text format 0.0.4,
/// one of the types Prometheus 3 accepts without a fallback setting.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// `GET /metrics`.
pub async fn scrape(State(app): State<Arc<App>>, Authed(caller): Reader) -> Response {
    if caller.via == Via::Session && caller.role != Role::Admin {
        return ApiError::forbidden(format!(
            "user {:?} has the {} role; /metrics needs an admin session or an API token",
            caller.user,
            caller.role.as_str()
        ))
        .into_response();
    }
    let snapshot = gather::gather(&app.socket).await;
    match render::render(&snapshot, &app.http) {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => ApiError::internal(format!("cannot encode the metrics: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests;
