//! `/api/v1/cluster`: this node's cluster as `ctl cluster status` shows
//! it, and the public door a joining node knocks at. The join request is
//! authenticated by its HMAC under the cluster's join secret and the
//! answer is sealed under it (the cluster service checks and seals), so
//! the route needs no login: the joiner has only the token. An admin
//! makes a cluster of this node (`cluster.init`) and reads the join token
//! (`cluster.token`, which holds the join secret) on request.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Body, Reader, rpc};

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// The joiner's request as JSON text: node, sans, route, nonce, ts.
    request: String,
    /// Base64 HMAC-SHA256 of `request` under the join secret.
    mac: String,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitBody {
    /// The cluster's name (letters, digits, '-', '_').
    name: String,
    /// The address other members reach this node at (default: its first
    /// global address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    advertise: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/cluster/init", tag = "cluster", request_body = InitBody,
    responses((status = 200, description = "`cluster` and `token`: the new cluster of this node and the join token other nodes take (it holds the join secret)", body = Value),
        (status = 400, description = "A name that is not allowed", body = ErrorBody),
        (status = 409, description = "This node is already in a cluster", body = ErrorBody),
        (status = 503, description = "The cluster service is not running", body = ErrorBody)))]
pub(super) async fn cluster_init(
    State(app): AppState,
    _c: Admin,
    Body(b): Body<InitBody>,
) -> ApiResult {
    Ok(Json(rpc(&app, "cluster.init", b).await?))
}

#[utoipa::path(post, path = "/api/v1/cluster/token", tag = "cluster",
    responses((status = 200, description = "`token`: the join token of this node's cluster (it holds the join secret: treat it as a password)", body = Value),
        (status = 409, description = "This node is not in a cluster", body = ErrorBody),
        (status = 503, description = "The cluster service is not running", body = ErrorBody)))]
pub(super) async fn cluster_token(State(app): AppState, _c: Admin) -> ApiResult {
    Ok(Json(rpc(&app, "cluster.token", json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster",
    responses((status = 200, description = "Cluster name, this node, nats-server state, JetStream mode and meta leader, replicas, and every member with its state (`cluster.status`)", body = Value),
        (status = 503, description = "The cluster service is not running", body = ErrorBody)))]
pub(super) async fn cluster_status(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "cluster.status", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/cluster/join", tag = "cluster", security(()), request_body = JoinBody,
    responses((status = 200, description = "`sealed`: the admission (cluster CA, the joiner's certificate, seeds), AES-256-GCM under a key derived from the join secret and the request's nonce", body = Value),
        (status = 400, description = "A request that does not parse or names a bad host", body = ErrorBody),
        (status = 403, description = "Not signed with this cluster's join secret, or too old", body = ErrorBody),
        (status = 409, description = "This node is not in a cluster", body = ErrorBody),
        (status = 503, description = "The cluster service is not running", body = ErrorBody)))]
pub(super) async fn cluster_join(State(app): AppState, Body(b): Body<JoinBody>) -> ApiResult {
    Ok(Json(rpc(&app, "cluster.admit", b).await?))
}
