//! `/api/v1/integrator/jobs/{name}/enable|disable` and
//! `/api/v1/integrator/outgoing/{name}/ping`: a job switched on or off from
//! the console's Jobs tab (a config revision like any other change, so it
//! has history and rollback), and an outgoing connection tried from the
//! node.

use alpharen_rpc::config::{self as m, Get, Set};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Authed, rpc};
use crate::error::ApiError;

/// The index of the job called `name` in the document's
/// `integrator.jobs`, which a key path names it by.
fn job_index(doc: &Value, name: &str) -> Option<usize> {
    doc.pointer("/config/integrator/jobs")?
        .as_array()?
        .iter()
        .position(|j| j.get("name").and_then(Value::as_str) == Some(name))
}

async fn set_enabled(app: &crate::App, user: String, name: String, on: bool) -> ApiResult {
    let cur = rpc(app, m::GET, Get::default()).await?;
    let Some(i) = job_index(&cur, &name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no job is named {name:?} in [[integrator.jobs]]"),
        ));
    };
    let params = Set {
        path: format!("integrator.jobs[{i}].enabled"),
        value: json!(on),
        comment: format!("job {name} {}", if on { "enabled" } else { "disabled" }),
        author: Some(user),
        expect_revision: cur.get("revision").and_then(Value::as_i64),
    };
    Ok(Json(rpc(app, m::SET, params).await?))
}

#[utoipa::path(post, path = "/api/v1/integrator/jobs/{name}/enable", tag = "integrator",
    params(("name" = String, Path, description = "A job's name")),
    responses((status = 200, description = "The job runs on its schedule again: the new config revision", body = Value),
        (status = 404, description = "No job has that name", body = ErrorBody),
        (status = 409, description = "The configuration changed meanwhile; try again", body = ErrorBody)))]
pub(super) async fn job_enable(
    State(app): AppState,
    Authed(c): Admin,
    Path(name): Path<String>,
) -> ApiResult {
    set_enabled(&app, c.user, name, true).await
}

#[utoipa::path(post, path = "/api/v1/integrator/jobs/{name}/disable", tag = "integrator",
    params(("name" = String, Path, description = "A job's name")),
    responses((status = 200, description = "The job no longer runs on its schedule (run now still runs it): the new config revision", body = Value),
        (status = 404, description = "No job has that name", body = ErrorBody),
        (status = 409, description = "The configuration changed meanwhile; try again", body = ErrorBody)))]
pub(super) async fn job_disable(
    State(app): AppState,
    Authed(c): Admin,
    Path(name): Path<String>,
) -> ApiResult {
    set_enabled(&app, c.user, name, false).await
}

#[utoipa::path(post, path = "/api/v1/integrator/outgoing/{name}/ping", tag = "integrator",
    params(("name" = String, Path, description = "An outgoing connection's name")),
    responses((status = 200, description = "The node sent HEAD to the connection's host and path within its timeout: `ok` (an answer below 500), `status` or `error`, `url`, `ms`", body = Value),
        (status = 404, description = "No outgoing connection has that name", body = ErrorBody),
        (status = 501, description = "The connection is https, which ping does not try yet", body = ErrorBody),
        (status = 503, description = "The integrator is not running", body = ErrorBody)))]
pub(super) async fn outgoing_ping(
    State(app): AppState,
    _c: Admin,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(
        rpc(&app, "integrator.ping", json!({"name": name})).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_found_by_its_name() {
        let doc = json!({"revision": 3, "config": {"integrator": {"jobs": [{"name": "a"}, {"name": "b"}]}}});
        assert_eq!(job_index(&doc, "b"), Some(1));
        assert_eq!(job_index(&doc, "c"), None);
        assert_eq!(job_index(&json!({"config": {}}), "a"), None);
    }
}
