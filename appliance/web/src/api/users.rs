//! `/api/v1/users`: list, add and delete users, change a password.

use alpharen_rpc::users::{self as m, Add, Del, Passwd};
use alpharen_store::Role;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Authed, Body, Reader, rpc};
use crate::error::ApiError;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    name: String,
    password: String,
    /// `admin`, `operator` (approves and runs reaction flows) or `viewer` (default).
    role: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    password: String,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "Users and roles", body = Value)))]
pub(super) async fn users_list(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, m::LIST, json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserBody,
    responses((status = 200, description = "User created", body = Value),
        (status = 409, description = "User exists", body = ErrorBody),
        (status = 422, description = "Bad name, role or password", body = ErrorBody)))]
pub(super) async fn users_add(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<UserBody>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            m::ADD,
            Add {
                name: b.name,
                password: b.password,
                role: b.role.unwrap_or_else(|| m::DEFAULT_ROLE.into()),
                author: Some(c.user),
            },
        )
        .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/users/{name}/password", tag = "users", request_body = PasswordBody,
    params(("name" = String, Path, description = "User name")),
    responses((status = 200, description = "Password changed (admins: anyone's; others: their own)", body = Value),
        (status = 404, description = "No such user", body = ErrorBody)))]
pub(super) async fn users_passwd(
    State(app): AppState,
    Authed(c): Reader,
    Path(name): Path<String>,
    Body(b): Body<PasswordBody>,
) -> ApiResult {
    if c.role != Role::Admin && c.user != name {
        return Err(ApiError::forbidden(
            "only admins change other users' passwords",
        ));
    }
    Ok(Json(
        rpc(
            &app,
            m::PASSWD,
            Passwd {
                name,
                password: b.password,
                author: Some(c.user),
            },
        )
        .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users",
    params(("name" = String, Path, description = "User name")),
    responses((status = 200, description = "User deleted", body = Value),
        (status = 404, description = "No such user", body = ErrorBody)))]
pub(super) async fn users_del(
    State(app): AppState,
    Authed(c): Admin,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            m::DEL,
            Del {
                name,
                author: Some(c.user),
            },
        )
        .await?,
    ))
}
