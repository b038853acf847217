//! `/api/v1/config`: read, apply, set, history, diff, rollback, confirm
//! and export of the configuration document; each change names the
//! logged-in user as its author.

use alpharen_rpc::config::{self as m, Apply, Confirm, Diff, Export, Get, Limit, Rollback, Set};
use alpharen_store::Role;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Authed, Body, Q, Reader, rpc};
use crate::error::ApiError;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// The document as JSON (PUT: the whole of it; PATCH: the sections it
    /// has)...
    config: Option<Value>,
    /// ...or as TOML/JSON text.
    text: Option<String>,
    #[serde(default)]
    comment: String,
    /// Refused with 409 `conflict` unless this is the current revision.
    expect_revision: Option<i64>,
    /// Answers with the changes (`changes`) without making them.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBody {
    /// Key path such as `node.confirm_timeout` or `dpx.records[0].value`.
    path: String,
    value: Value,
    #[serde(default)]
    comment: String,
    /// Refused with 409 `conflict` unless this is the current revision.
    expect_revision: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    revision: i64,
    /// Refused with 409 `conflict` unless this is the current revision.
    expect_revision: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The pending revision to keep; nothing else is confirmed.
    revision: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConfigQuery {
    section: Option<String>,
    revision: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    a: i64,
    b: i64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    with_secrets: bool,
}

#[utoipa::path(get, path = "/api/v1/config", tag = "config", params(ConfigQuery),
    responses((status = 200, description = "`{revision, config, pending}`", body = Value),
        (status = 404, description = "No such revision", body = ErrorBody)))]
pub(super) async fn config_get(
    State(app): AppState,
    _c: Reader,
    Q(q): Q<ConfigQuery>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            m::GET,
            Get {
                section: q.section,
                revision: q.revision,
            },
        )
        .await?,
    ))
}

/// Checks a user certificate pair before it is stored, so a bad upload is
/// a 422 naming the key rather than a silent fallback later.
fn precheck_web(doc: &Value) -> Result<(), ApiError> {
    let web = doc.get("web");
    let get = |k: &str| web.and_then(|w| w.get(k)).and_then(Value::as_str);
    if let (Some(c), Some(k)) = (get("cert"), get("key"))
        && c.starts_with('/')
        && k.starts_with('/')
        && let Err(e) = crate::tls::load_pair(std::path::Path::new(c), std::path::Path::new(k))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            format!("the configuration is invalid:\n  web.key: {e}"),
        )
        .with_details(json!([{"path": "web.key", "message": e}])));
    }
    Ok(())
}

#[utoipa::path(put, path = "/api/v1/config", tag = "config", request_body = ApplyBody,
    responses((status = 200, description = "The whole document replaced: new revision, changed sections, `changes`, pending confirmation", body = Value),
        (status = 409, description = "`expect_revision` is not the current revision", body = ErrorBody),
        (status = 422, description = "Invalid document; `details` lists each problem with its path", body = ErrorBody)))]
pub(super) async fn config_apply(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<ApplyBody>,
) -> ApiResult {
    apply(&app, &c.user, b, true).await
}

#[utoipa::path(patch, path = "/api/v1/config", tag = "config", request_body = ApplyBody,
    responses((status = 200, description = "The sections the document has replaced, the others kept: new revision, changed sections, `changes`, pending confirmation", body = Value),
        (status = 409, description = "`expect_revision` is not the current revision", body = ErrorBody),
        (status = 422, description = "Invalid document; `details` lists each problem with its path", body = ErrorBody)))]
pub(super) async fn config_patch(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<ApplyBody>,
) -> ApiResult {
    apply(&app, &c.user, b, false).await
}

async fn apply(app: &crate::App, user: &str, b: ApplyBody, replace: bool) -> ApiResult {
    if let Some(doc) = &b.config {
        precheck_web(doc)?;
    }
    let params = Apply {
        config: b.config,
        text: b.text,
        comment: b.comment,
        author: Some(user.into()),
        replace,
        dry_run: b.dry_run,
        expect_revision: b.expect_revision,
    };
    Ok(Json(rpc(app, m::APPLY, params).await?))
}

#[utoipa::path(post, path = "/api/v1/config/set", tag = "config", request_body = SetBody,
    responses((status = 200, description = "New revision", body = Value),
        (status = 400, description = "Bad key path", body = ErrorBody),
        (status = 409, description = "`expect_revision` is not the current revision", body = ErrorBody),
        (status = 422, description = "Invalid value", body = ErrorBody)))]
pub(super) async fn config_set(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<SetBody>,
) -> ApiResult {
    if b.path.starts_with("web") {
        let cur = rpc(&app, m::GET, Get::default()).await?;
        let mut doc = cur.get("config").cloned().unwrap_or(Value::Null);
        if alpharen_store::diff::set_path(&mut doc, &b.path, b.value.clone()).is_ok() {
            precheck_web(&doc)?;
        }
    }
    let params = Set {
        path: b.path,
        value: b.value,
        comment: b.comment,
        author: Some(c.user),
        expect_revision: b.expect_revision,
    };
    Ok(Json(rpc(&app, m::SET, params).await?))
}

#[utoipa::path(get, path = "/api/v1/config/schema", tag = "config",
    responses((status = 200, description = "JSON Schema of the configuration document", body = Value)))]
pub(super) async fn config_schema(_c: Reader) -> Json<Value> {
    let schema = schemars::schema_for!(alpharen_store::Config);
    Json(serde_json::to_value(schema).unwrap_or(Value::Null))
}

#[utoipa::path(get, path = "/api/v1/config/history", tag = "config", params(HistoryQuery),
    responses((status = 200, description = "`{revisions, pending}`, newest first", body = Value)))]
pub(super) async fn config_history(
    State(app): AppState,
    _c: Reader,
    Q(q): Q<HistoryQuery>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            m::HISTORY,
            Limit {
                limit: q.limit.unwrap_or(m::HISTORY_LIMIT),
            },
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/config/diff", tag = "config", params(DiffQuery),
    responses((status = 200, description = "Changes from revision a to b, by key path", body = Value),
        (status = 404, description = "No such revision", body = ErrorBody)))]
pub(super) async fn config_diff(State(app): AppState, _c: Reader, Q(q): Q<DiffQuery>) -> ApiResult {
    Ok(Json(rpc(&app, m::DIFF, Diff { a: q.a, b: q.b }).await?))
}

#[utoipa::path(post, path = "/api/v1/config/rollback", tag = "config", request_body = RollbackBody,
    responses((status = 200, description = "A new revision with the old content", body = Value),
        (status = 404, description = "No such revision", body = ErrorBody)))]
pub(super) async fn config_rollback(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<RollbackBody>,
) -> ApiResult {
    let params = Rollback {
        revision: b.revision,
        author: Some(c.user),
        expect_revision: b.expect_revision,
    };
    Ok(Json(rpc(&app, m::ROLLBACK, params).await?))
}

#[utoipa::path(post, path = "/api/v1/config/confirm", tag = "config", request_body = ConfirmBody,
    responses((status = 200, description = "The pending revision is kept", body = Value),
        (status = 409, description = "That revision is not the pending one", body = ErrorBody)))]
pub(super) async fn config_confirm(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<ConfirmBody>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            m::CONFIRM,
            Confirm {
                revision: b.revision,
                author: Some(c.user),
            },
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/config/export", tag = "config", params(ExportQuery),
    responses((status = 200, description = "The document as TOML text", body = Value)))]
pub(super) async fn config_export(
    State(app): AppState,
    Authed(c): Reader,
    Q(q): Q<ExportQuery>,
) -> ApiResult {
    if q.with_secrets && c.role != Role::Admin {
        return Err(ApiError::forbidden(
            "exporting secrets needs the admin role",
        ));
    }
    Ok(Json(
        rpc(
            &app,
            m::EXPORT,
            Export {
                with_secrets: q.with_secrets,
            },
        )
        .await?,
    ))
}
