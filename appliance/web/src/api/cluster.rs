//! `/api/v1/cluster`: this node's cluster as `ctl cluster status` shows
//! it, and the public door a joining node knocks at. The join request is
//! authenticated by its HMAC under the cluster's join secret and the
//! answer is sealed under it (the cluster service checks and seals), so
//! the route needs no login: the joiner has only the token.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::openapi::ErrorBody;
use super::{ApiResult, AppState, Body, Reader, rpc};

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// The joiner's request as JSON text: node, sans, route, nonce, ts.
    request: String,
    /// Base64 HMAC-SHA256 of `request` under the join secret.
    mac: String,
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
