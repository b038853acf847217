//! `/api/v1/mail`: the relay's queue and dead letters, with retry, delete,
//! flush and a test mail, as `ctl mail` has them.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Body, Q, Reader, rpc};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// The dead letters (given up on) instead of the queue.
    #[serde(default)]
    dead: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// Recipients; `mail.admin_recipients` when empty.
    #[serde(default)]
    to: Vec<String>,
}

/// A relay to test in place of the configured one; both fields optional.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayTestBody {
    /// A `[mail.relay]` table (mode, host, port, tls, username, ca_file),
    /// e.g. the console's form before it is saved.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    relay: Option<Value>,
    /// Used for this test only, never stored; the stored
    /// `mail.relay.password` secret when absent or empty.
    #[serde(default)]
    password: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/mail/queue", tag = "mail", params(QueueQuery),
    responses((status = 200, description = "`messages`: id, from, to, received, origin, size, attempts, next_try, last_error", body = Value),
        (status = 503, description = "The mail service is not running", body = ErrorBody)))]
pub(super) async fn queue(State(app): AppState, _c: Reader, Q(q): Q<QueueQuery>) -> ApiResult {
    Ok(Json(
        rpc(&app, "mail.queue", json!({"dead": q.dead})).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/mail/queue/{id}/retry", tag = "mail",
    params(("id" = String, Path, description = "A message id from the queue or the dead letters")),
    responses((status = 200, description = "The message is due now (a dead letter goes back on the queue)", body = Value),
        (status = 404, description = "No such message", body = ErrorBody)))]
pub(super) async fn retry(State(app): AppState, _c: Admin, Path(id): Path<String>) -> ApiResult {
    Ok(Json(rpc(&app, "mail.retry", json!({"id": id})).await?))
}

#[utoipa::path(delete, path = "/api/v1/mail/queue/{id}", tag = "mail",
    params(("id" = String, Path, description = "A message id from the queue or the dead letters")),
    responses((status = 200, description = "Deleted", body = Value),
        (status = 404, description = "No such message", body = ErrorBody)))]
pub(super) async fn delete(State(app): AppState, _c: Admin, Path(id): Path<String>) -> ApiResult {
    Ok(Json(rpc(&app, "mail.delete", json!({"id": id})).await?))
}

#[utoipa::path(post, path = "/api/v1/mail/flush", tag = "mail",
    responses((status = 200, description = "Every queued message is tried now: `queued`, `relay_usable`", body = Value)))]
pub(super) async fn flush(State(app): AppState, _c: Admin) -> ApiResult {
    Ok(Json(rpc(&app, "mail.flush", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/mail/test", tag = "mail", request_body = TestBody,
    responses((status = 200, description = "A test mail is queued", body = Value),
        (status = 400, description = "A recipient is not a mail address", body = ErrorBody),
        (status = 409, description = "No recipient given and `mail.admin_recipients` is empty (`no_recipients`)", body = ErrorBody)))]
pub(super) async fn test(State(app): AppState, _c: Admin, Body(b): Body<TestBody>) -> ApiResult {
    Ok(Json(rpc(&app, "mail.test", json!({"to": b.to})).await?))
}

#[utoipa::path(post, path = "/api/v1/mail/relay/test", tag = "mail", request_body = RelayTestBody,
    responses((status = 200, description = "The connection was tried: `ok`, `error` (the server's or the network's words), `host`, `port`, `tls`, `auth`, `millis`", body = Value),
        (status = 400, description = "The relay given cannot be used (e.g. no host, an unreadable CA file, a username without a password)", body = ErrorBody),
        (status = 409, description = "No relay to test, or direct mode (`no_relay`)", body = ErrorBody)))]
pub(super) async fn relay_test(
    State(app): AppState,
    _c: Admin,
    Body(b): Body<RelayTestBody>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            "mail.relay_test",
            json!({"relay": b.relay, "password": b.password}),
        )
        .await?,
    ))
}
