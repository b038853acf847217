//! `/api/v1/tokens`: API tokens, kept by this service in `web.db`
//! (hashed); the secret is shown once, at creation.

use alpharen_store::Role;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Authed, Body};
use crate::auth;
use crate::error::ApiError;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    name: String,
    /// `viewer` (default), `operator` or `admin`; the token never has more than its user.
    role: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, description = "API tokens (never their secrets)", body = [auth::TokenInfo])))]
pub(super) async fn tokens_list(State(app): AppState, _c: Admin) -> ApiResult {
    let db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
    Ok(Json(json!(auth::list_tokens(&db)?)))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenBody,
    responses((status = 200, description = "The token; its `secret` is shown only now", body = Value),
        (status = 422, description = "Bad name or role", body = ErrorBody)))]
pub(super) async fn tokens_create(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<TokenBody>,
) -> ApiResult {
    let name = b.name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            "name: 1-64 printable characters",
        ));
    }
    let role = Role::parse(b.role.as_deref().unwrap_or("viewer")).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            format!("role: {e}"),
        )
    })?;
    let (info, secret) = {
        let db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
        auth::create_token(&db, name, &c.user, role)?
    };
    app.audit(
        &c.user,
        "web.token.create",
        &format!("{} ({})", info.name, info.role),
    )
    .await;
    Ok(Json(json!({"token": info, "secret": secret})))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, description = "Revoked", body = Value),
        (status = 404, description = "No such token", body = ErrorBody)))]
pub(super) async fn tokens_revoke(
    State(app): AppState,
    Authed(c): Admin,
    Path(id): Path<String>,
) -> ApiResult {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a token id")))?;
    let revoked = {
        let db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
        auth::revoke_token(&db, id)?
    };
    if !revoked {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_token",
            format!("there is no token {id}"),
        ));
    }
    app.audit(&c.user, "web.token.revoke", &id.to_string())
        .await;
    Ok(Json(json!({"revoked": id})))
}
