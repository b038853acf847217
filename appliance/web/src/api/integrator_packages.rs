//! `/api/v1/integrator/packages`: the Python packages (wheels) the
//! integrator's workers import, as `ctl integrator packages` has them. An
//! upload takes the wheel as the request body (`curl --data-binary
//! @requests-2.32.3-py3-none-any.whl`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use base64::Engine as _;
use serde_json::json;

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Authed, Reader, rpc};

#[utoipa::path(get, path = "/api/v1/integrator/packages", tag = "integrator",
    responses((status = 200, description = "The package set: `set_version` and `packages` with name, version, file, tags, size, added_at and added_by (`integrator.packages`)", body = serde_json::Value),
        (status = 503, description = "The integrator is not running, or this node is in a cluster whose package log is not reachable yet (a member that just joined or started; try again in a few seconds)", body = ErrorBody)))]
pub(super) async fn packages_list(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "integrator.packages", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/integrator/packages/{name}", tag = "integrator",
    params(("name" = String, Path, description = "The wheel's file name, `NAME-VERSION-PY-ABI-PLATFORM.whl` (its tags are read from it)")),
    request_body(content = String, content_type = "application/octet-stream", description = "The wheel's bytes (at most 5.5 MiB)"),
    responses((status = 200, description = "Installed (replacing an older upload of the same package); the workers restart on the new set without dropping a request: name, version, tags, set_version", body = serde_json::Value),
        (status = 400, description = "The wheel is too large", body = ErrorBody),
        (status = 422, description = "Refused (`package_refused`): not a wheel, a tag not for this node's Python and architecture (named), an unsafe entry (named), or a module another package or a deployed project has", body = ErrorBody),
        (status = 503, description = "The integrator is not running, or this node is in a cluster whose package log is not reachable yet (a member that just joined or started; try again in a few seconds)", body = ErrorBody)))]
pub(super) async fn package_add(
    State(app): AppState,
    Authed(c): Admin,
    Path(file): Path<String>,
    body: Bytes,
) -> ApiResult {
    let wheel = base64::engine::general_purpose::STANDARD.encode(&body);
    let params = json!({"file": file, "wheel": wheel, "author": c.user});
    Ok(Json(rpc(&app, "integrator.package_add", params).await?))
}

#[utoipa::path(delete, path = "/api/v1/integrator/packages/{name}", tag = "integrator",
    params(("name" = String, Path, description = "The package's name as listed")),
    responses((status = 200, description = "Removed; the workers restart on the new set", body = serde_json::Value),
        (status = 404, description = "No such package", body = ErrorBody),
        (status = 503, description = "The integrator is not running, or this node is in a cluster whose package log is not reachable yet (a member that just joined or started; try again in a few seconds)", body = ErrorBody)))]
pub(super) async fn package_remove(
    State(app): AppState,
    Authed(c): Admin,
    Path(name): Path<String>,
) -> ApiResult {
    let params = json!({"name": name, "author": c.user});
    Ok(Json(rpc(&app, "integrator.package_remove", params).await?))
}

#[utoipa::path(get, path = "/api/v1/integrator/package-sets", tag = "integrator",
    responses((status = 200, description = "`set_version` (the current one) and `sets`, newest first: version, packages (`name==version`), change, changed_at, actor, current, and `restorable` (every wheel kept; else `missing` names them)", body = serde_json::Value),
        (status = 503, description = "The integrator is not running, or this node is in a cluster whose package log is not reachable yet (a member that just joined or started; try again in a few seconds)", body = ErrorBody)))]
pub(super) async fn package_sets(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "integrator.package_sets", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/integrator/package-sets/{version}/rollback", tag = "integrator",
    params(("version" = i64, Path, description = "A package set version from `/integrator/package-sets`")),
    responses((status = 200, description = "That set's packages are the set again, as a new set version; the workers restart on it without dropping a request: rolled_back_to, set_version, packages", body = serde_json::Value),
        (status = 404, description = "No such set version, or one of its wheels was replaced before wheels were kept (named)", body = ErrorBody),
        (status = 422, description = "A kept wheel no longer unpacks on this node (`package_refused`)", body = ErrorBody),
        (status = 503, description = "The integrator is not running, or this node is in a cluster whose package log is not reachable yet (a member that just joined or started; try again in a few seconds)", body = ErrorBody)))]
pub(super) async fn package_rollback(
    State(app): AppState,
    Authed(c): Admin,
    Path(version): Path<i64>,
) -> ApiResult {
    let params = json!({"version": version, "author": c.user});
    Ok(Json(
        rpc(&app, "integrator.package_rollback", params).await?,
    ))
}
