//! The REST API under `/api/v1/`: each route maps one control method, with
//! the caller's role checked by its extractor (`Reader`, `Operator` or
//! `Admin`) and the
//! logged-in user passed on as the change's `author`. The OpenAPI document
//! is generated from these handlers.
//!
//! One file per resource (`config.rs`, `users.rs`, ...), like
//! `ctl/src/cmd/`; `extract.rs` holds the extractors, `openapi.rs` the
//! document, `middleware.rs` the front of every request, and this file the router.

mod backup;
mod cluster;
mod config;
mod dns;
mod extract;
mod integrator;
mod integrator_admin;
mod integrator_data;
mod integrator_packages;
mod logs;
mod mail;
mod middleware;
mod node;
mod openapi;
mod pgha;
mod reaction;
mod redirect;
mod services;
mod session;
mod setup;
mod tokens;
mod update;
mod users;
mod vpn;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::App;
use crate::error::ApiError;
use crate::limits::{MAX_BACKUP, MAX_BODY};

pub use extract::{Admin, Authed, Body, Operator, Q, Reader, authenticate};
use extract::{cookies, header_str};
pub(crate) use middleware::front;
pub use openapi::openapi;
pub use redirect::redirect_router;

type AppState = State<Arc<App>>;
type ApiResult = Result<Json<Value>, ApiError>;

/// Calls `method` with its params (an `alpharen_rpc` params struct, or
/// `{}` for a method without).
async fn rpc(app: &App, method: &str, params: impl Serialize) -> Result<Value, ApiError> {
    let params = alpharen_rpc::to_params(&params);
    Ok(alpharen_rpc::call(&app.socket, method, params, crate::CALL_TIMEOUT).await?)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "there is no API route {}; see /api/v1/openapi.json",
            uri.path()
        ),
    )
}

pub fn router(app: Arc<App>) -> Router {
    use axum::extract::DefaultBodyLimit;
    let api = Router::new()
        .route("/health", get(node::health))
        .route(
            "/setup",
            get(setup::setup_status).post(setup::setup_complete),
        )
        .route(
            "/session",
            get(session::whoami)
                .post(session::login)
                .delete(session::logout),
        )
        .route("/status", get(node::status))
        .route("/metrics/history", get(node::metrics_history))
        .route("/services", get(services::services))
        .route("/services/{name}/status", get(services::service_status))
        .route("/services/{name}/restart", post(services::service_restart))
        .route(
            "/config",
            get(config::config_get)
                .put(config::config_apply)
                .patch(config::config_patch),
        )
        .route("/config/set", post(config::config_set))
        .route("/config/schema", get(config::config_schema))
        .route("/config/history", get(config::config_history))
        .route("/config/diff", get(config::config_diff))
        .route("/config/rollback", post(config::config_rollback))
        .route("/config/confirm", post(config::config_confirm))
        .route("/config/export", get(config::config_export))
        .route("/logs", get(logs::logs))
        .route("/users", get(users::users_list).post(users::users_add))
        .route("/users/{name}", axum::routing::delete(users::users_del))
        .route("/users/{name}/password", put(users::users_passwd))
        .route(
            "/tokens",
            get(tokens::tokens_list).post(tokens::tokens_create),
        )
        .route("/tokens/{id}", axum::routing::delete(tokens::tokens_revoke))
        .route("/vpn", get(vpn::vpn_status))
        .route("/vpn/peers", post(vpn::vpn_peer_add))
        .route("/vpn/sites", post(vpn::vpn_site_add))
        .route(
            "/vpn/peers/{name}",
            axum::routing::delete(vpn::vpn_peer_del),
        )
        .route("/vpn/peers/{name}/enable", post(vpn::vpn_peer_enable))
        .route("/vpn/peers/{name}/disable", post(vpn::vpn_peer_disable))
        .route("/integrator/services", get(integrator::list))
        .route(
            "/integrator/services/{file}",
            get(integrator::source)
                .post(integrator::deploy)
                .delete(integrator::undeploy)
                .layer(DefaultBodyLimit::max(alpharen_rpc::MAX_ARCHIVE)),
        )
        .route(
            "/integrator/services/{file}/versions",
            get(integrator::versions),
        )
        .route(
            "/integrator/services/{file}/rollback",
            post(integrator::rollback),
        )
        .route("/integrator/invoke/{service}", post(integrator::invoke))
        .route("/integrator/stats", get(integrator::stats))
        .route(
            "/integrator/openapi.json",
            get(integrator::channels_openapi),
        )
        .route(
            "/integrator/packages",
            get(integrator_packages::packages_list),
        )
        .route(
            "/integrator/packages/{name}",
            post(integrator_packages::package_add)
                .delete(integrator_packages::package_remove)
                .layer(DefaultBodyLimit::max(alpharen_rpc::MAX_ARCHIVE)),
        )
        .route(
            "/integrator/package-sets",
            get(integrator_packages::package_sets),
        )
        .route(
            "/integrator/package-sets/{version}/rollback",
            post(integrator_packages::package_rollback),
        )
        .route("/integrator/jobs", get(integrator_data::jobs))
        .route(
            "/integrator/jobs/{name}/run",
            post(integrator_data::job_run),
        )
        .route(
            "/integrator/jobs/{name}/enable",
            post(integrator_admin::job_enable),
        )
        .route(
            "/integrator/jobs/{name}/disable",
            post(integrator_admin::job_disable),
        )
        .route(
            "/integrator/outgoing/{name}/ping",
            post(integrator_admin::outgoing_ping),
        )
        .route("/integrator/topics", get(integrator_data::topics))
        .route(
            "/integrator/topics/{topic}/messages",
            get(integrator_data::messages),
        )
        .route(
            "/integrator/topics/{topic}/redrive",
            post(integrator_data::redrive),
        )
        .route(
            "/integrator/topics/{topic}/purge",
            post(integrator_data::purge),
        )
        .route("/integrator/kv/{ns}", get(integrator_data::kv_list))
        .route(
            "/integrator/kv/{ns}/{key}",
            get(integrator_data::kv_get)
                .put(integrator_data::kv_set)
                .delete(integrator_data::kv_del),
        )
        .route(
            "/dns/records",
            get(dns::records)
                .post(dns::add)
                .put(dns::change)
                .delete(dns::remove),
        )
        .route("/mail/queue", get(mail::queue))
        .route("/mail/queue/{id}", axum::routing::delete(mail::delete))
        .route("/mail/queue/{id}/retry", post(mail::retry))
        .route("/mail/flush", post(mail::flush))
        .route("/mail/test", post(mail::test))
        .route("/mail/relay/test", post(mail::relay_test))
        .route("/pgha/backup", post(pgha::backup))
        .route("/pgha/unpin", post(pgha::unpin))
        .route("/reaction/status", get(reaction::reaction_status))
        .route("/reaction/stats", get(reaction::reaction_stats))
        .route("/reaction/incidents", get(reaction::reaction_incidents))
        .route(
            "/reaction/incidents/{id}/approve",
            post(reaction::reaction_approve),
        )
        .route(
            "/reaction/incidents/{id}/deny",
            post(reaction::reaction_deny),
        )
        .route(
            "/reaction/flows/{flow}/start",
            post(reaction::reaction_start),
        )
        .route("/reaction/schedules", get(reaction::reaction_schedules))
        .route(
            "/reaction/starts/{id}",
            axum::routing::delete(reaction::reaction_cancel),
        )
        .route("/reaction/runs", get(reaction::reaction_runs))
        .route("/reaction/runs/{id}", get(reaction::reaction_run))
        .route(
            "/reaction/runs/{id}/tasks/{task}/retry",
            post(reaction::reaction_retry),
        )
        .route(
            "/reaction/runs/{id}/tasks/{task}/skip",
            post(reaction::reaction_skip),
        )
        .route("/backup", get(backup::backup_download))
        .route(
            "/backup/restore",
            post(backup::backup_restore).layer(DefaultBodyLimit::max(MAX_BACKUP)),
        )
        .route("/cluster", get(cluster::cluster_status))
        .route("/cluster/join", post(cluster::cluster_join))
        .route("/cluster/init", post(cluster::cluster_init))
        .route("/cluster/token", post(cluster::cluster_token))
        .route(
            "/cluster/join-with-token",
            post(cluster::cluster_join_with_token),
        )
        .route("/cluster/link", post(cluster::cluster_link))
        .route("/system/slots", get(node::slots))
        .route("/system/reboot", post(node::reboot))
        .route(
            "/system/reboot/schedule",
            get(node::reboot_scheduled)
                .put(node::reboot_schedule)
                .delete(node::reboot_cancel),
        )
        .route(
            "/system/update",
            get(update::update_status).post(update::update),
        )
        .route("/system/poweroff", post(node::poweroff))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY));
    Router::new()
        .nest("/api/v1", api)
        .route("/nic/update", get(crate::dyndns::nic_update))
        .route("/metrics", get(crate::metrics::scrape))
        .merge(crate::console::routes())
        .with_state(app)
}
