//! `/api/v1/integrator/services`: the integrator's deployed service files,
//! as `ctl integrator` has them. A deploy takes the file's text as the
//! request body (`curl --data-binary @svc.py` with a token), so an editor's
//! on-save hook or a CI job can deploy without a copy on the node; every
//! door (this, `ctl`, ssh stdin, the pickup directory) lands in the same
//! versioned registry.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Authed, Body, Q, Reader, rpc};
use crate::error::ApiError;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// A version number from `/versions`; the active one when absent.
    version: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The version to make active again.
    version: i64,
}

#[utoipa::path(get, path = "/api/v1/integrator/services", tag = "integrator",
    responses((status = 200, description = "Deployed files: file, module, active version, services with their names and docstrings (`integrator.list`)", body = Value),
        (status = 503, description = "The integrator is not running", body = ErrorBody)))]
pub(super) async fn list(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "integrator.list", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/integrator/services/{file}", tag = "integrator",
    params(("file" = String, Path, description = "The file name: `NAME.py`, or `NAME.zip` for a project (modules and packages deployed as one unit)")),
    request_body(content = String, content_type = "text/x-python", description = "The file's Python source (UTF-8), or the project zip's bytes (at most 5.5 MiB); any Content-Type is accepted"),
    responses((status = 200, description = "Deployed as a new version: module, file, version, services (and a project's files)", body = Value),
        (status = 400, description = "Not a `.py` or `.zip` file name, the body is not UTF-8, or the zip is too large", body = ErrorBody),
        (status = 409, description = "A service name belongs to another file, or a project's top-level module to another project (`deploy_refused`)", body = ErrorBody),
        (status = 422, description = "The file or project does not import, defines no valid service, or the zip is unsafe (`deploy_failed`); `details` has `file`, `line`, every problem and the Python `traceback`; the version that served before keeps serving", body = ErrorBody),
        (status = 503, description = "The integrator is not running", body = ErrorBody)))]
pub(super) async fn deploy(
    State(app): AppState,
    Authed(c): Admin,
    Path(file): Path<String>,
    body: Bytes,
) -> ApiResult {
    if file.ends_with(".zip") {
        let zip = base64::engine::general_purpose::STANDARD.encode(&body);
        let params = json!({"file": file, "zip": zip, "author": c.user});
        return Ok(Json(rpc(&app, "integrator.deploy", params).await?));
    }
    let source = String::from_utf8(body.to_vec()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!(
                "{file}: the body is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let params = json!({"file": file, "source": source, "author": c.user});
    Ok(Json(rpc(&app, "integrator.deploy", params).await?))
}

#[utoipa::path(get, path = "/api/v1/integrator/services/{file}", tag = "integrator",
    params(("file" = String, Path, description = "The file name, `NAME.py`, or a service name in it"), VersionQuery),
    responses((status = 200, description = "The file's source: file, version, source", body = Value),
        (status = 404, description = "No such file or version", body = ErrorBody)))]
pub(super) async fn source(
    State(app): AppState,
    _c: Reader,
    Path(file): Path<String>,
    Q(q): Q<VersionQuery>,
) -> ApiResult {
    let params = json!({"name": file, "version": q.version});
    Ok(Json(rpc(&app, "integrator.source", params).await?))
}

#[utoipa::path(get, path = "/api/v1/integrator/services/{file}/versions", tag = "integrator",
    params(("file" = String, Path, description = "The file name, `NAME.py`, or a service name in it")),
    responses((status = 200, description = "Every version with when and by whom it was deployed, and which is active", body = Value),
        (status = 404, description = "No such file", body = ErrorBody)))]
pub(super) async fn versions(
    State(app): AppState,
    _c: Reader,
    Path(file): Path<String>,
) -> ApiResult {
    Ok(Json(
        rpc(&app, "integrator.versions", json!({"name": file})).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/integrator/services/{file}/rollback", tag = "integrator",
    params(("file" = String, Path, description = "The file name, `NAME.py`, or a service name in it")),
    request_body = RollbackBody,
    responses((status = 200, description = "That version is active again", body = Value),
        (status = 404, description = "No such file or version", body = ErrorBody)))]
pub(super) async fn rollback(
    State(app): AppState,
    Authed(c): Admin,
    Path(file): Path<String>,
    Body(b): Body<RollbackBody>,
) -> ApiResult {
    let params = json!({"name": file, "version": b.version, "author": c.user});
    Ok(Json(rpc(&app, "integrator.rollback", params).await?))
}

#[utoipa::path(delete, path = "/api/v1/integrator/services/{file}", tag = "integrator",
    params(("file" = String, Path, description = "The file name, `NAME.py`, or a service name in it")),
    responses((status = 200, description = "The file's services no longer serve; its versions are kept", body = Value),
        (status = 404, description = "No such file", body = ErrorBody)))]
pub(super) async fn undeploy(
    State(app): AppState,
    Authed(c): Admin,
    Path(file): Path<String>,
) -> ApiResult {
    let params = json!({"name": file, "author": c.user});
    Ok(Json(rpc(&app, "integrator.undeploy", params).await?))
}

#[utoipa::path(post, path = "/api/v1/integrator/invoke/{service}", tag = "integrator",
    params(("service" = String, Path, description = "A deployed service's name")),
    request_body(content = Value, description = "The payload, any JSON (`null` for none)"),
    responses((status = 200, description = "The service ran: `status` and `headers` it answered, `body` (JSON, or text), `ms`, `cid`, and `logs`: the lines the service logged or printed during the call (at most 200, 64 KiB); a service error is an answer too (its `status` is 4xx/5xx)", body = Value),
        (status = 503, description = "No worker became free in time, or the integrator is not running", body = ErrorBody)))]
pub(super) async fn invoke(
    State(app): AppState,
    Authed(c): Admin,
    Path(service): Path<String>,
    Body(payload): Body<Value>,
) -> ApiResult {
    let params = json!({"name": service, "payload": payload, "author": c.user});
    Ok(Json(rpc(&app, "integrator.invoke", params).await?))
}

#[utoipa::path(get, path = "/api/v1/integrator/stats", tag = "integrator",
    responses((status = 200, description = "Per service: calls, errors, mean and p99 time (`integrator.stats`)", body = Value)))]
pub(super) async fn stats(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "integrator.stats", json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/integrator/openapi.json", tag = "integrator",
    responses((status = 200, description = "OpenAPI 3.1 document of the integrator's REST channels: templated paths, methods, security schemes and the SimpleIO input and output of their services (`integrator.openapi`)", body = Value),
        (status = 503, description = "The integrator is not running", body = ErrorBody)))]
pub(super) async fn channels_openapi(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "integrator.openapi", json!({})).await?))
}
