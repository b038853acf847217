//! `/api/v1/integrator/{jobs,topics,kv}`: the integrator's scheduler, its
//! pub/sub queues with their dead letters, and its key-value store, as
//! `ctl integrator jobs|topics|queue|redrive|purge|publish|kv` have them.

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
    /// One subscriber's queue; every subscriber's when absent.
    subscriber: Option<String>,
    /// The dead letters instead of the waiting messages.
    #[serde(default)]
    dlq: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveBody {
    /// One subscriber's dead letters; every subscriber's when absent.
    subscriber: Option<String>,
    /// One message (its `id` in the dead-letter list).
    id: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    subscriber: Option<String>,
    /// Drop the dead letters instead of the waiting messages.
    #[serde(default)]
    dlq: bool,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KvQuery {
    /// Only keys starting with this.
    prefix: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KvBody {
    /// Any JSON.
    value: Value,
    /// Seconds until the key expires; never when absent.
    ttl: Option<f64>,
}

#[utoipa::path(get, path = "/api/v1/integrator/jobs", tag = "integrator",
    responses((status = 200, description = "Scheduled jobs: service, kind, enabled, next and last run, last result and time, runs", body = Value)))]
pub(super) async fn jobs(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "integrator.jobs", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/integrator/jobs/{name}/run", tag = "integrator",
    params(("name" = String, Path, description = "A job's name")),
    responses((status = 200, description = "One run started", body = Value),
        (status = 409, description = "No such job, or it has `max_instances` runs in progress", body = ErrorBody)))]
pub(super) async fn job_run(
    State(app): AppState,
    _c: Admin,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(
        rpc(&app, "integrator.job_run", json!({"name": name})).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/integrator/topics", tag = "integrator",
    responses((status = 200, description = "Per topic and subscriber: messages ready, in flight and dead, and the depth limit", body = Value)))]
pub(super) async fn topics(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "integrator.topics", json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/integrator/topics/{topic}/messages", tag = "integrator",
    params(("topic" = String, Path, description = "A topic's name (`(invoke_async)` for the queues of `invoke_async`)"), QueueQuery),
    responses((status = 200, description = "The messages (id, msg_id, subscriber, data, attempts, state, last_error, published_at)", body = Value)))]
pub(super) async fn messages(
    State(app): AppState,
    _c: Reader,
    Path(topic): Path<String>,
    Q(q): Q<QueueQuery>,
) -> ApiResult {
    let params = json!({"topic": topic, "subscriber": q.subscriber, "dlq": q.dlq});
    Ok(Json(rpc(&app, "integrator.queue", params).await?))
}

#[utoipa::path(post, path = "/api/v1/integrator/topics/{topic}/redrive", tag = "integrator",
    params(("topic" = String, Path, description = "A topic's name")), request_body = RedriveBody,
    responses((status = 200, description = "How many dead letters are back on their queue (`redriven`), due now with no attempts counted", body = Value)))]
pub(super) async fn redrive(
    State(app): AppState,
    _c: Admin,
    Path(topic): Path<String>,
    Body(b): Body<RedriveBody>,
) -> ApiResult {
    let params = json!({"topic": topic, "subscriber": b.subscriber, "id": b.id});
    Ok(Json(rpc(&app, "integrator.redrive", params).await?))
}

#[utoipa::path(post, path = "/api/v1/integrator/topics/{topic}/purge", tag = "integrator",
    params(("topic" = String, Path, description = "A topic's name")), request_body = PurgeBody,
    responses((status = 200, description = "How many messages were dropped (`purged`)", body = Value)))]
pub(super) async fn purge(
    State(app): AppState,
    _c: Admin,
    Path(topic): Path<String>,
    Body(b): Body<PurgeBody>,
) -> ApiResult {
    let params = json!({"topic": topic, "subscriber": b.subscriber, "dlq": b.dlq});
    Ok(Json(rpc(&app, "integrator.purge", params).await?))
}

#[utoipa::path(get, path = "/api/v1/integrator/kv/{ns}", tag = "integrator",
    params(("ns" = String, Path, description = "A namespace (`default` is the services' own)"), KvQuery),
    responses((status = 200, description = "The namespace's keys (with `prefix`, only those; at most 10,000), and every namespace with its key count", body = Value)))]
pub(super) async fn kv_list(
    State(app): AppState,
    _c: Reader,
    Path(ns): Path<String>,
    Q(q): Q<KvQuery>,
) -> ApiResult {
    let params = json!({"ns": ns, "prefix": q.prefix.unwrap_or_default()});
    Ok(Json(rpc(&app, "integrator.kv_list", params).await?))
}

#[utoipa::path(get, path = "/api/v1/integrator/kv/{ns}/{key}", tag = "integrator",
    params(("ns" = String, Path, description = "A namespace"), ("key" = String, Path, description = "A key")),
    responses((status = 200, description = "`found` and, when found, `value`", body = Value)))]
pub(super) async fn kv_get(
    State(app): AppState,
    _c: Reader,
    Path((ns, key)): Path<(String, String)>,
) -> ApiResult {
    Ok(Json(
        rpc(&app, "integrator.kv_get", json!({"ns": ns, "key": key})).await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/integrator/kv/{ns}/{key}", tag = "integrator",
    params(("ns" = String, Path, description = "A namespace"), ("key" = String, Path, description = "A key")),
    request_body = KvBody,
    responses((status = 200, description = "Set", body = Value)))]
pub(super) async fn kv_set(
    State(app): AppState,
    _c: Admin,
    Path((ns, key)): Path<(String, String)>,
    Body(b): Body<KvBody>,
) -> ApiResult {
    let params = json!({"ns": ns, "key": key, "value": b.value, "ttl": b.ttl});
    Ok(Json(rpc(&app, "integrator.kv_set", params).await?))
}

#[utoipa::path(delete, path = "/api/v1/integrator/kv/{ns}/{key}", tag = "integrator",
    params(("ns" = String, Path, description = "A namespace"), ("key" = String, Path, description = "A key")),
    responses((status = 200, description = "`deleted`: whether the key was there", body = Value)))]
pub(super) async fn kv_del(
    State(app): AppState,
    _c: Admin,
    Path((ns, key)): Path<(String, String)>,
) -> ApiResult {
    Ok(Json(
        rpc(&app, "integrator.kv_del", json!({"ns": ns, "key": key})).await?,
    ))
}
