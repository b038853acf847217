//! The OpenAPI 3.1 document of `/api/v1/`, generated from the handlers'
//! `#[utoipa::path]` attributes, plus the error answers every operation of
//! a kind can give.

use axum::Json;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use super::{
    Reader, backup, cluster, config, dns, integrator, integrator_admin, integrator_data,
    integrator_packages, logs, mail, node, pgha, reaction, services, session, setup, tokens,
    update, users, vpn,
};
use crate::auth;

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    code: String,
    message: String,
    details: Value,
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "node",
    responses((status = 200, description = "This document", body = Value)))]
pub(super) async fn openapi_json(_c: Reader) -> Json<Value> {
    Json(openapi())
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "Console session; state-changing requests also need the X-CSRF-Token header",
            ))),
        );
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        doc.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("session", Vec::<String>::new()),
            utoipa::openapi::security::SecurityRequirement::new("token", Vec::<String>::new()),
        ]);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ALPHA-REN node API", description = "The node's admin API: the same operations as `alpharen ctl`."),
    paths(node::health, setup::setup_status, setup::setup_complete, session::login, session::whoami, session::logout, node::status, services::services, services::service_status, services::service_restart, config::config_get, config::config_apply, config::config_patch, config::config_set, config::config_schema, config::config_history, config::config_diff, config::config_rollback, config::config_confirm, config::config_export, logs::logs, users::users_list, users::users_add, users::users_passwd, users::users_del, tokens::tokens_list, tokens::tokens_create, tokens::tokens_revoke, vpn::vpn_status, vpn::vpn_peer_add, vpn::vpn_site_add, vpn::vpn_peer_del, vpn::vpn_peer_enable, vpn::vpn_peer_disable, integrator::list, integrator::deploy, integrator::source, integrator::versions, integrator::rollback, integrator::undeploy, integrator::invoke, integrator::stats, integrator::channels_openapi, integrator_packages::packages_list, integrator_packages::package_add, integrator_packages::package_remove, integrator_packages::package_sets, integrator_packages::package_rollback, integrator_data::jobs, integrator_data::job_run, integrator_admin::job_enable, integrator_admin::job_disable, integrator_admin::outgoing_ping, integrator_data::topics, integrator_data::messages, integrator_data::redrive, integrator_data::purge, integrator_data::kv_list, integrator_data::kv_get, integrator_data::kv_set, integrator_data::kv_del, dns::records, dns::add, dns::change, dns::remove, mail::queue, mail::retry, mail::delete, mail::flush, mail::test, mail::relay_test, pgha::backup, pgha::unpin, reaction::reaction_status, reaction::reaction_stats, reaction::reaction_incidents, reaction::reaction_approve, reaction::reaction_deny, reaction::reaction_start, reaction::reaction_schedules, reaction::reaction_cancel, reaction::reaction_runs, reaction::reaction_run, reaction::reaction_retry, reaction::reaction_skip, backup::backup_download, backup::backup_restore, cluster::cluster_status, cluster::cluster_join, node::slots, update::update_status, update::update, node::reboot, node::reboot_scheduled, node::reboot_schedule, node::reboot_cancel, node::poweroff, node::metrics_history, openapi_json, cluster::cluster_init, cluster::cluster_token),
    modifiers(&SecurityAddon)
)]
struct ApiDoc;

pub fn openapi() -> Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    let mut doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    add_common_responses(&mut doc);
    doc
}

/// Adds the error answers every operation of a kind can give, so that the
/// document lists each status code a client may see: 401 and 403 where a
/// login is needed; 400, 413, 415 and 422 for a JSON body (bad syntax, too
/// large, not `application/json`, not the schema); 400 for bad query or
/// path parameters. Answers an operation documents itself are kept.
fn add_common_responses(doc: &mut Value) {
    let error = |description: &str| {
        json!({"description": description, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
    };
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let public = op.get("security") == Some(&json!([{}]));
            let body = op.get("requestBody").is_some();
            let params = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty());
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut add = |code: &str, description: &str| {
                responses.entry(code).or_insert_with(|| error(description));
            };
            if !public {
                add("401", "Not logged in, or the API token is not valid");
                add(
                    "403",
                    "The caller's role does not allow this, or a session write lacks the CSRF header",
                );
            }
            if body {
                add("400", "Malformed JSON");
                add("413", "The body is too large");
                add("415", "The body is not `application/json`");
                add("422", "The body does not fit the schema");
            }
            if params {
                add("400", "Bad query or path parameters");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_route_and_is_3_1() {
        let doc = openapi();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/api/v1/health",
            "/api/v1/config",
            "/api/v1/tokens/{id}",
            "/api/v1/logs",
            "/api/v1/metrics/history",
            "/api/v1/vpn",
            "/api/v1/vpn/peers",
            "/api/v1/vpn/sites",
            "/api/v1/vpn/peers/{name}",
            "/api/v1/vpn/peers/{name}/enable",
            "/api/v1/vpn/peers/{name}/disable",
        ] {
            assert!(paths.contains_key(p), "{p} missing");
        }
        // Public routes say so; the rest inherit the global security.
        assert_eq!(
            doc["paths"]["/api/v1/health"]["get"]["security"],
            json!([{}])
        );
    }

    /// Every status code a handler or extractor can answer is in the
    /// document (schemathesis's status_code_conformance check).
    #[test]
    fn openapi_lists_the_common_error_answers() {
        let doc = openapi();
        let codes = |path: &str, method: &str| -> Vec<String> {
            doc["paths"][path][method]["responses"]
                .as_object()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default()
        };
        let has = |path: &str, method: &str, want: &[&str]| {
            let got = codes(path, method);
            for w in want {
                assert!(
                    got.iter().any(|g| g == w),
                    "{method} {path}: {w} not in {got:?}"
                );
            }
        };
        // Public, with a body: no 401, but the body errors.
        has(
            "/api/v1/session",
            "post",
            &["200", "400", "401", "413", "415", "422", "429"],
        );
        has("/api/v1/setup", "post", &["400", "413", "415", "422"]);
        assert!(!codes("/api/v1/health", "get").contains(&"401".to_string()));
        // Logged in, with a body and a path parameter.
        has(
            "/api/v1/users/{name}/password",
            "put",
            &["400", "401", "403", "404", "415", "422"],
        );
        // Query parameters.
        has("/api/v1/config/diff", "get", &["400", "401", "403", "404"]);
        has("/api/v1/status", "get", &["401", "403"]);
        // What an operation says itself is kept.
        assert_eq!(
            doc["paths"]["/api/v1/config/set"]["post"]["responses"]["400"]["description"],
            json!("Bad key path")
        );
    }

    /// A path parameter is one the route's template names, and every
    /// template name is a required path parameter (the OpenAPI rule
    /// `openapi-spec-validator` checks); query strings are `in: query`,
    /// required only where the handler cannot do without them.
    #[test]
    fn openapi_parameters_match_path_templates() {
        let doc = openapi();
        let mut query = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let template: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in item.as_object().unwrap() {
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                let in_path: Vec<&str> = params
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| {
                        assert_eq!(p["required"], true, "{method} {path}: {p}");
                        p["name"].as_str().unwrap()
                    })
                    .collect();
                assert_eq!(in_path, template, "{method} {path}: path parameters");
                for p in params.iter().filter(|p| p["in"] == "query") {
                    let required = p["required"].as_bool().unwrap_or(false);
                    query.push(format!("{path} {} {required}", p["name"].as_str().unwrap()));
                }
            }
        }
        query.sort();
        assert_eq!(
            query,
            [
                "/api/v1/config revision false",
                "/api/v1/config section false",
                "/api/v1/config/diff a true",
                "/api/v1/config/diff b true",
                "/api/v1/config/export with_secrets false",
                "/api/v1/config/history limit false",
                "/api/v1/dns/records name true",
                "/api/v1/dns/records name true",
                "/api/v1/dns/records type true",
                "/api/v1/dns/records type true",
                "/api/v1/dns/records value true",
                "/api/v1/dns/records value true",
                "/api/v1/integrator/kv/{ns} prefix false",
                "/api/v1/integrator/services/{file} version false",
                "/api/v1/integrator/topics/{topic}/messages dlq false",
                "/api/v1/integrator/topics/{topic}/messages subscriber false",
                "/api/v1/logs follow false",
                "/api/v1/logs lines false",
                "/api/v1/logs service false",
                "/api/v1/mail/queue dead false",
                "/api/v1/reaction/flows/{flow}/start at_ms false",
                "/api/v1/reaction/incidents limit false",
                "/api/v1/reaction/incidents pending false",
                "/api/v1/reaction/runs limit false",
            ]
        );
    }
}
