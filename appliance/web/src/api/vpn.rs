//! `/api/v1/vpn`: the tunnel and its peers, as `ctl vpn` has them. Road
//! warriors go through the vpn service (`vpn.peer_add` makes their keys
//! and answers with the client's wg-quick config and its QR code as SVG,
//! once: the private key is never stored on the node); site-to-site peers,
//! whose keys the other side holds, are a config edit by the supervisor
//! (`config.vpn_peer_add`), checked like any configuration.

use alpharen_rpc::config::{self, PeerAdd};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Authed, Body, Reader, rpc};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    /// 1-64 letters, digits, `-`, `_` or `.`.
    name: String,
    /// What the device routes through the tunnel (CIDRs); default: the
    /// pool and the node's tunnel networks.
    #[serde(default)]
    allowed_ips: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteBody {
    /// 1-64 letters, digits, `-`, `_` or `.`.
    name: String,
    /// The other side's public key (base64, as `wg pubkey` prints it).
    public_key: String,
    /// `host:port` of the other side; none when only it connects to us.
    endpoint: Option<String>,
    /// The networks behind the other side (CIDRs), at least one.
    allowed_ips: Vec<String>,
    /// Seconds between keepalives (behind NAT: 25).
    persistent_keepalive: Option<u16>,
}

#[utoipa::path(get, path = "/api/v1/vpn", tag = "vpn",
    responses((status = 200, description = "Tunnel state and each peer's name, enabled, allowed IPs, endpoint, last handshake (`latest_handshake_secs_ago`), rx/tx bytes (`vpn.status`)", body = Value),
        (status = 503, description = "The vpn service is not running", body = ErrorBody)))]
pub(super) async fn vpn_status(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "vpn.status", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/vpn/peers", tag = "vpn", request_body = DeviceBody,
    responses((status = 200, description = "The device's peer: `address`, `public_key`, and, only in this answer, its wg-quick `config` with the private key and that config as a QR code (`qr_svg`)", body = Value),
        (status = 400, description = "Bad name or allowed IPs", body = ErrorBody),
        (status = 409, description = "A peer of that name exists (`exists`), `vpn.pool` or `vpn.endpoint` is not set (`no_pool`, `no_endpoint`), the pool is full (`pool_exhausted`), or the config changed meanwhile (`conflict`)", body = ErrorBody),
        (status = 503, description = "The vpn service is not running", body = ErrorBody)))]
pub(super) async fn vpn_peer_add(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<DeviceBody>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            "vpn.peer_add",
            json!({"name": b.name, "allowed_ips": b.allowed_ips, "author": c.user}),
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/vpn/sites", tag = "vpn", request_body = SiteBody,
    responses((status = 200, description = "Site-to-site peer added (a new, confirmed revision)", body = Value),
        (status = 422, description = "The peer is not valid; `details` lists each problem with its key path (`vpn.peers[N].public_key`, ...)", body = ErrorBody),
        (status = 409, description = "The config changed meanwhile", body = ErrorBody)))]
pub(super) async fn vpn_site_add(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<SiteBody>,
) -> ApiResult {
    let peer = json!({
        "name": b.name,
        "public_key": b.public_key.trim(),
        "endpoint": b.endpoint.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()),
        "allowed_ips": b.allowed_ips.iter().map(|s| s.trim()).collect::<Vec<_>>(),
        "persistent_keepalive": b.persistent_keepalive,
    });
    Ok(Json(
        rpc(
            &app,
            config::VPN_PEER_ADD,
            PeerAdd {
                peer,
                comment: format!("vpn site {} added", b.name),
                author: Some(c.user),
                expect_revision: None,
            },
        )
        .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/vpn/peers/{name}", tag = "vpn",
    params(("name" = String, Path, description = "Peer name")),
    responses((status = 200, description = "Peer removed; its tunnel stops at once", body = Value),
        (status = 404, description = "No such peer", body = ErrorBody),
        (status = 503, description = "The vpn service is not running", body = ErrorBody)))]
pub(super) async fn vpn_peer_del(
    State(app): AppState,
    Authed(c): Admin,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            "vpn.peer_del",
            json!({"name": name, "author": c.user}),
        )
        .await?,
    ))
}

async fn set_enabled(app: &crate::App, user: String, name: String, enabled: bool) -> ApiResult {
    Ok(Json(
        rpc(
            app,
            "vpn.peer_enable",
            json!({"name": name, "enabled": enabled, "author": user}),
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/vpn/peers/{name}/enable", tag = "vpn",
    params(("name" = String, Path, description = "Peer name")),
    responses((status = 200, description = "Peer enabled: it may connect again", body = Value),
        (status = 404, description = "No such peer", body = ErrorBody),
        (status = 503, description = "The vpn service is not running", body = ErrorBody)))]
pub(super) async fn vpn_peer_enable(
    State(app): AppState,
    Authed(c): Admin,
    Path(name): Path<String>,
) -> ApiResult {
    set_enabled(&app, c.user, name, true).await
}

#[utoipa::path(post, path = "/api/v1/vpn/peers/{name}/disable", tag = "vpn",
    params(("name" = String, Path, description = "Peer name")),
    responses((status = 200, description = "Peer disabled: kept in the config, its tunnel refused at once", body = Value),
        (status = 404, description = "No such peer", body = ErrorBody),
        (status = 503, description = "The vpn service is not running", body = ErrorBody)))]
pub(super) async fn vpn_peer_disable(
    State(app): AppState,
    Authed(c): Admin,
    Path(name): Path<String>,
) -> ApiResult {
    set_enabled(&app, c.user, name, false).await
}
