//! `/api/v1/dns/records`: the zone's records as dpx serves them (static
//! and dynamic) and the static ones of the configuration, which are added
//! changed and removed one at a time as checked revisions
//! (`config.dns_record_add|remove`).

use alpharen_rpc::config::{self, Get, RecordAdd, RecordKey, RecordRemove};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::openapi::ErrorBody;
use super::{Admin, ApiResult, AppState, Authed, Body, Q, Reader, rpc};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// Relative to the zone (`www`, `@` for the apex) or absolute (ending
    /// in `.`).
    name: String,
    /// A, AAAA, CNAME, TXT, MX, SRV or NS.
    #[serde(rename = "type")]
    kind: String,
    /// As in a zone file (`10 mail.example.org.` for MX).
    value: String,
    /// Seconds; the zone's default when absent.
    ttl: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordQuery {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[utoipa::path(get, path = "/api/v1/dns/records", tag = "dns",
    responses((status = 200, description = "`configured`: the static records of `dpx.records`; `served`: every record dpx answers with (name, type, ttl, data, source `config` or `dynamic`), or null with `served_error` when dpx is not serving", body = Value)))]
pub(super) async fn records(State(app): AppState, _c: Reader) -> ApiResult {
    let get = Get {
        section: Some("dpx".into()),
        revision: None,
    };
    let cfg = rpc(&app, config::GET, get).await?;
    let configured = cfg["config"]["records"].clone();
    let mut out = json!({"zone": cfg["config"]["zone"], "configured": configured});
    match rpc(&app, "dpx.records", json!({})).await {
        Ok(v) => out["served"] = v["records"].clone(),
        Err(e) => {
            out["served"] = Value::Null;
            out["served_error"] = json!(e.message);
        }
    }
    Ok(Json(out))
}

#[utoipa::path(post, path = "/api/v1/dns/records", tag = "dns", request_body = RecordBody,
    responses((status = 200, description = "Added as a new revision (dpx serves it at once)", body = Value),
        (status = 422, description = "The record is not valid or exists already; `details` names `dpx.records[N].value` etc.", body = ErrorBody)))]
pub(super) async fn add(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<RecordBody>,
) -> ApiResult {
    Ok(Json(put(&app, c.user, b, None).await?))
}

#[utoipa::path(put, path = "/api/v1/dns/records", tag = "dns", params(RecordQuery), request_body = RecordBody,
    responses((status = 200, description = "The record named by the query replaced by the body's, in its place, as a new revision", body = Value),
        (status = 422, description = "The new record is not valid or exists already, or there is no such record; `details` names `dpx.records[N].value` etc.", body = ErrorBody)))]
pub(super) async fn change(
    State(app): AppState,
    Authed(c): Admin,
    Q(q): Q<RecordQuery>,
    Body(b): Body<RecordBody>,
) -> ApiResult {
    let key = RecordKey {
        name: q.name,
        kind: q.kind,
        value: q.value,
    };
    Ok(Json(put(&app, c.user, b, Some(key)).await?))
}

async fn put(
    app: &crate::App,
    user: String,
    b: RecordBody,
    replace: Option<RecordKey>,
) -> Result<Value, crate::error::ApiError> {
    let add = RecordAdd {
        record: json!({"name": b.name, "type": b.kind, "value": b.value, "ttl": b.ttl}),
        replace,
        comment: String::new(),
        author: Some(user),
    };
    rpc(app, config::DNS_RECORD_ADD, add).await
}

#[utoipa::path(delete, path = "/api/v1/dns/records", tag = "dns", params(RecordQuery),
    responses((status = 200, description = "Removed as a new revision", body = Value),
        (status = 422, description = "There is no such record in the configuration", body = ErrorBody)))]
pub(super) async fn remove(
    State(app): AppState,
    Authed(c): Admin,
    Q(q): Q<RecordQuery>,
) -> ApiResult {
    let remove = RecordRemove {
        name: q.name,
        kind: q.kind,
        value: q.value,
        comment: String::new(),
        author: Some(c.user),
    };
    Ok(Json(rpc(&app, config::DNS_RECORD_REMOVE, remove).await?))
}
