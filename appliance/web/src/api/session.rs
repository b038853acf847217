//! `/api/v1/session`: console login (rate-limited, sets the session and
//! CSRF cookies), who is logged in, and logout.

use alpharen_rpc::auth::{AuthOutcome, AuthParams};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::openapi::ErrorBody;
use super::{AppState, Authed, Body, Reader, cookies};
use crate::ClientIp;
use crate::auth::{self, Via};
use crate::error::ApiError;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

fn session_cookies(id: &str, csrf: &str, max_age: i64) -> [(header::HeaderName, String); 2] {
    [
        (
            header::SET_COOKIE,
            format!(
                "{}={id}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
                auth::SESSION_COOKIE
            ),
        ),
        (
            header::SET_COOKIE,
            format!(
                "{}={csrf}; Path=/; Max-Age={max_age}; Secure; SameSite=Strict",
                auth::CSRF_COOKIE
            ),
        ),
    ]
}

fn limited(secs: u64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many failed logins; try again in {secs} s"),
    );
    e.retry_after = Some(secs);
    e
}

#[utoipa::path(post, path = "/api/v1/session", tag = "session", security(()), request_body = LoginBody,
    responses((status = 200, description = "Logged in: sets the session and CSRF cookies", body = Value),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins (at any door: web, SMTP, ssh)", body = ErrorBody)))]
pub(super) async fn login(
    State(app): AppState,
    ip: Option<axum::Extension<ClientIp>>,
    Body(b): Body<LoginBody>,
) -> Result<Response, ApiError> {
    let client = ip.map(|i| i.0.0);
    let params = AuthParams {
        username: b.username,
        password: b.password,
        client,
        service: "web".into(),
    };
    // The supervisor checks the password behind the limiter every door shares.
    let user = match alpharen_rpc::auth::authenticate(&app.state_dir, &params).await {
        AuthOutcome::Ok(user) => user,
        AuthOutcome::RateLimited { retry_after } => return Err(limited(retry_after)),
        AuthOutcome::Refused => {
            tracing::warn!(user = %params.username, client = ?client, "failed login");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong user name or password",
            ));
        }
        AuthOutcome::Unavailable(why) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("cannot check the password now: {why}"),
            ));
        }
    };
    let sess = {
        let db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
        auth::create_session(&db, &user.user)?
    };
    tracing::info!(user = %user.user, client = ?client, "login");
    let body = json!({"user": user.user, "role": user.role, "csrf": sess.csrf});
    let mut resp = Json(body).into_response();
    for (k, v) in session_cookies(&sess.id, &sess.csrf, app.idle_secs().max(3600) * 24) {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, description = "Who is logged in", body = Value),
        (status = 401, description = "Not logged in", body = ErrorBody)))]
pub(super) async fn whoami(Authed(c): Reader, headers: HeaderMap) -> Json<Value> {
    let jar = cookies(&headers);
    let csrf = auth::cookie(&jar, auth::CSRF_COOKIE);
    Json(
        json!({"user": c.user, "role": c.role, "via": match c.via { Via::Session => "session", Via::Token => "token" }, "csrf": csrf}),
    )
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 200, description = "Logged out", body = Value)))]
pub(super) async fn logout(
    State(app): AppState,
    _c: Reader,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let jar = cookies(&headers);
    if let Some(sid) = auth::cookie(&jar, auth::SESSION_COOKIE) {
        let db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
        auth::delete_session(&db, sid)?;
    }
    let mut resp = Json(json!({"logged_out": true})).into_response();
    for (k, v) in session_cookies("", "", 0) {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}
