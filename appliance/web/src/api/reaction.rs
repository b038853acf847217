//! `/api/v1/reaction`: the reaction engine's agents, incidents, runs and
//! statistics (any logged-in user), and the operator's actions: approve or
//! deny a pending incident, start a flow (now or at a time), cancel a
//! waiting start, retry or skip a task (operator or admin); the scheduled
//! starts. The same `reaction.*` control methods as `ctl reaction`; the
//! rules and flows themselves are `[reaction]` in the configuration.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::openapi::ErrorBody;
use super::{ApiResult, AppState, Authed, Operator, Q, Reader, rpc};
use crate::App;
use crate::auth::Caller;
use crate::error::ApiError;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IncidentsQuery {
    /// At most this many, newest first (1-1000, default 50).
    limit: Option<i64>,
    /// Only the incidents waiting for approve or deny.
    #[serde(default)]
    pending: bool,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// At most this many, newest first (1-1000, default 50).
    limit: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    /// Start once at this time (unix milliseconds) instead of now; a
    /// time already past starts it now.
    at_ms: Option<i64>,
}

const LIMIT: i64 = 50;

#[utoipa::path(get, path = "/api/v1/reaction/status", tag = "reaction",
    responses((status = 200, description = "`agents`: name, online, has_secret, last_seen_ms, version, calls; `rules` and `flows` (how many), `port`", body = Value),
        (status = 503, description = "The reaction service is not running", body = ErrorBody)))]
pub(super) async fn reaction_status(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "reaction.status", json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/reaction/incidents", tag = "reaction", params(IncidentsQuery),
    responses((status = 200, description = "Incidents: id, rule, agent, pattern, path, line, at_ms, state (`pending`, `started`, `denied`), run_id", body = Value),
        (status = 503, description = "The reaction service is not running", body = ErrorBody)))]
pub(super) async fn reaction_incidents(
    State(app): AppState,
    _c: Reader,
    Q(q): Q<IncidentsQuery>,
) -> ApiResult {
    let params = json!({"limit": q.limit.unwrap_or(LIMIT), "pending": q.pending});
    Ok(Json(rpc(&app, "reaction.incidents", params).await?))
}

#[utoipa::path(get, path = "/api/v1/reaction/runs", tag = "reaction", params(RunsQuery),
    responses((status = 200, description = "Runs, newest first: id, flow, incident_id, state (`running`, `done`, `failed`), started_ms, ended_ms, error, steps", body = Value),
        (status = 503, description = "The reaction service is not running", body = ErrorBody)))]
pub(super) async fn reaction_runs(
    State(app): AppState,
    _c: Reader,
    Q(q): Q<RunsQuery>,
) -> ApiResult {
    let params = json!({"limit": q.limit.unwrap_or(LIMIT)});
    Ok(Json(rpc(&app, "reaction.runs", params).await?))
}

#[utoipa::path(get, path = "/api/v1/reaction/runs/{id}", tag = "reaction",
    params(("id" = i64, Path, description = "A run's id")),
    responses((status = 200, description = "The run and each step: name, kind, state (`ready`, `leased`, `done`, `failed`, `skipped`), host, exit_code, output, started_ms, ended_ms, leases", body = Value),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(super) async fn reaction_run(
    State(app): AppState,
    _c: Reader,
    Path(r): Path<String>,
) -> ApiResult {
    let r = id("run", &r)?;
    Ok(Json(rpc(&app, "reaction.run", json!({"id": r})).await?))
}

#[utoipa::path(get, path = "/api/v1/reaction/stats", tag = "reaction",
    responses((status = 200, description = "`rules`: incidents, pending, denied, resolved and mean_resolve_ms (incident to the end of its done run) per rule; `flows`: runs, done, failed, running, success_rate (done of ended) and mean_run_ms per flow", body = Value),
        (status = 503, description = "The reaction service is not running", body = ErrorBody)))]
pub(super) async fn reaction_stats(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "reaction.stats", json!({})).await?))
}

/// An id from the path, or a 400 naming it.
fn id(what: &str, s: &str) -> Result<i64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(format!("{s:?} is not a {what} id")))
}

/// Calls an operator's `method` and records who did it in the audit log.
async fn act(app: &App, c: &Caller, method: &str, params: Value, detail: String) -> ApiResult {
    let out = rpc(app, method, params).await?;
    app.audit(&c.user, method, &detail).await;
    Ok(Json(out))
}

/// `reaction.approve` or `reaction.deny` of the incident in the path.
async fn decide(app: &App, c: &Caller, method: &str, i: &str) -> ApiResult {
    let i = id("incident", i)?;
    act(app, c, method, json!({"id": i}), format!("incident {i}")).await
}

/// `reaction.retry` or `reaction.skip` of the run's task in the path.
async fn move_on(app: &App, c: &Caller, method: &str, (r, task): (String, String)) -> ApiResult {
    let r = id("run", &r)?;
    let detail = format!("run {r} task {task}");
    act(app, c, method, json!({"run": r, "task": task}), detail).await
}

#[utoipa::path(post, path = "/api/v1/reaction/incidents/{id}/approve", tag = "reaction",
    params(("id" = i64, Path, description = "A pending incident's id")),
    responses((status = 200, description = "Its flow started: `incident`, `run`", body = Value),
        (status = 404, description = "No such incident (`not_found`)", body = ErrorBody),
        (status = 409, description = "It is not pending, or its rule or flow is no longer configured (`conflict`)", body = ErrorBody)))]
pub(super) async fn reaction_approve(
    State(app): AppState,
    Authed(c): Operator,
    Path(i): Path<String>,
) -> ApiResult {
    decide(&app, &c, "reaction.approve", &i).await
}

#[utoipa::path(post, path = "/api/v1/reaction/incidents/{id}/deny", tag = "reaction",
    params(("id" = i64, Path, description = "A pending incident's id")),
    responses((status = 200, description = "Denied: its flow never runs", body = Value),
        (status = 404, description = "No such incident (`not_found`)", body = ErrorBody),
        (status = 409, description = "It is not pending (`conflict`)", body = ErrorBody)))]
pub(super) async fn reaction_deny(
    State(app): AppState,
    Authed(c): Operator,
    Path(i): Path<String>,
) -> ApiResult {
    decide(&app, &c, "reaction.deny", &i).await
}

#[utoipa::path(get, path = "/api/v1/reaction/schedules", tag = "reaction",
    responses((status = 200, description = "`flows`: each flow with a `schedule` (flow, schedule, next_ms); `starts`: the newest one-off starts, by hand or a scheduled rule's incident (id, flow, at_ms, state `waiting`, `started`, `cancelled` or `dropped`, run_id, incident_id, created_ms)", body = Value),
        (status = 503, description = "The reaction service is not running", body = ErrorBody)))]
pub(super) async fn reaction_schedules(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "reaction.schedules", json!({})).await?))
}

#[utoipa::path(delete, path = "/api/v1/reaction/starts/{id}", tag = "reaction",
    params(("id" = i64, Path, description = "A waiting start's id (from `schedules`)")),
    responses((status = 200, description = "Cancelled: the start as it is now (state `cancelled`); its flow does not start, and a scheduled incident is `cancelled` too", body = Value),
        (status = 404, description = "No such start (`not_found`)", body = ErrorBody),
        (status = 409, description = "The start is no longer waiting: started, cancelled or dropped (`conflict`)", body = ErrorBody)))]
pub(super) async fn reaction_cancel(
    State(app): AppState,
    Authed(c): Operator,
    Path(s): Path<String>,
) -> ApiResult {
    let s = id("start", &s)?;
    act(
        &app,
        &c,
        "reaction.cancel",
        json!({"id": s}),
        format!("start {s}"),
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/reaction/flows/{flow}/start", tag = "reaction",
    params(("flow" = String, Path, description = "A flow's name in `[reaction]`"), StartQuery),
    responses((status = 200, description = "A run of the flow started: `run`; or, with a future `at_ms`, a start kept until then: `start`, `at_ms`", body = Value),
        (status = 404, description = "No flow of that name in `[reaction]` (`not_found`)", body = ErrorBody)))]
pub(super) async fn reaction_start(
    State(app): AppState,
    Authed(c): Operator,
    Path(flow): Path<String>,
    Q(q): Q<StartQuery>,
) -> ApiResult {
    let detail = match q.at_ms {
        Some(at) => format!("flow {flow} at {at}"),
        None => format!("flow {flow}"),
    };
    let params = json!({"flow": flow, "at_ms": q.at_ms});
    act(&app, &c, "reaction.start", params, detail).await
}

#[utoipa::path(post, path = "/api/v1/reaction/runs/{id}/tasks/{task}/retry", tag = "reaction",
    params(("id" = i64, Path, description = "A run's id"), ("task" = String, Path, description = "The name of the run's current task")),
    responses((status = 200, description = "The failed task runs again and the run goes on", body = Value),
        (status = 404, description = "No such run, or its flow has no task of that name (`not_found`)", body = ErrorBody),
        (status = 409, description = "The task is not the run's current step, or it has not failed (`conflict`)", body = ErrorBody)))]
pub(super) async fn reaction_retry(
    State(app): AppState,
    Authed(c): Operator,
    Path(p): Path<(String, String)>,
) -> ApiResult {
    move_on(&app, &c, "reaction.retry", p).await
}

#[utoipa::path(post, path = "/api/v1/reaction/runs/{id}/tasks/{task}/skip", tag = "reaction",
    params(("id" = i64, Path, description = "A run's id"), ("task" = String, Path, description = "The name of the run's current task")),
    responses((status = 200, description = "The task is skipped and the run goes on with the next", body = Value),
        (status = 404, description = "No such run, or its flow has no task of that name (`not_found`)", body = ErrorBody),
        (status = 409, description = "The task is not the run's current step, or it has neither failed nor waits for its executor (`conflict`)", body = ErrorBody)))]
pub(super) async fn reaction_skip(
    State(app): AppState,
    Authed(c): Operator,
    Path(p): Path<(String, String)>,
) -> ApiResult {
    move_on(&app, &c, "reaction.skip", p).await
}
