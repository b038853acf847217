//! The REST API under `/api/v1/`: each route maps one control method, with
//! the caller's role checked by its extractor (`Reader` or `Admin`) and the
//! logged-in user passed on as the change's `author`. The OpenAPI document
//! is generated from these handlers.

use std::sync::Arc;

use alpharen_rpc::auth::{AuthOutcome, AuthParams};
use alpharen_store::Role;
use axum::extract::{FromRequest, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::{self, Caller, Need, Via};
use crate::error::ApiError;
use crate::limits::{MAX_BACKUP, MAX_BODY};
use crate::{App, ClientIp, control};

type AppState = State<Arc<App>>;
type ApiResult = Result<Json<Value>, ApiError>;

/// JSON bodies with our error shape on rejection.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// Query strings with our error shape on rejection.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Q<T>(pub T);

/// A logged-in caller allowed `NEED`; extracting it is the access check.
pub struct Authed<const ADMIN: bool>(pub Caller);
pub type Reader = Authed<false>;
pub type Admin = Authed<true>;

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// All `Cookie` headers joined (HTTP/2 may send several).
fn cookies(h: &HeaderMap) -> String {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn authenticate(app: &App, parts: &Parts, need: Need) -> Result<Caller, ApiError> {
    let mut db = app
        .db
        .lock()
        .map_err(|_| ApiError::internal("database lock poisoned"))?;
    let caller = if let Some(v) = header_str(&parts.headers, "authorization") {
        let token = v
            .strip_prefix("Bearer ")
            .ok_or_else(ApiError::unauthorized)?;
        auth::lookup_token(&mut db, token.trim())?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "that API token is not valid (revoked, or its user was deleted)",
            )
        })?
    } else {
        let jar = cookies(&parts.headers);
        let sid = auth::cookie(&jar, auth::SESSION_COOKIE).ok_or_else(ApiError::unauthorized)?;
        let (caller, csrf) =
            auth::lookup_session(&mut db, sid, app.idle_secs())?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "your session has ended; log in again",
                )
            })?;
        let ok = auth::csrf_ok(
            parts.method.as_str(),
            Via::Session,
            auth::cookie(&jar, auth::CSRF_COOKIE),
            header_str(&parts.headers, auth::CSRF_HEADER),
            &csrf,
        );
        if !ok {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token header (send the value of the alpharen_csrf cookie)",
            ));
        }
        caller
    };
    if !auth::role_allows(caller.role, need) {
        return Err(ApiError::forbidden(format!(
            "user {:?} has the {} role; this needs admin",
            caller.user,
            caller.role.as_str()
        )));
    }
    Ok(caller)
}

impl<const ADMIN: bool> FromRequestParts<Arc<App>> for Authed<ADMIN> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let need = if ADMIN { Need::Admin } else { Need::Read };
        authenticate(app, parts, need).map(Authed)
    }
}

async fn rpc(app: &App, method: &str, params: Value) -> Result<Value, ApiError> {
    Ok(control::call(&app.socket, method, params).await?)
}

// ---------------------------------------------------------------- bodies

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    /// The one-time code from the node's console or `<state>/setup-code`.
    code: String,
    admin_password: String,
    hostname: String,
    network: Option<Value>,
    timezone: Option<String>,
    mail: Option<Value>,
    #[serde(default)]
    ssh_authorized_keys: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// The whole document as JSON...
    config: Option<Value>,
    /// ...or as TOML/JSON text.
    text: Option<String>,
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBody {
    /// Key path such as `node.confirm_timeout` or `dpx.records[0].value`.
    path: String,
    value: Value,
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    revision: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    name: String,
    password: String,
    /// `admin` or `viewer` (default).
    role: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    name: String,
    /// `viewer` (default) or `admin`.
    role: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConfigQuery {
    section: Option<String>,
    revision: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    a: i64,
    b: i64,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    with_secrets: bool,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    service: Option<String>,
    lines: Option<usize>,
    /// Keep the response open and stream new lines (Server-Sent Events).
    #[serde(default)]
    follow: bool,
}

/// The error shape of every failure.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    code: String,
    message: String,
    details: Value,
}

// ---------------------------------------------------------------- handlers

#[utoipa::path(get, path = "/api/v1/health", tag = "node", security(()),
    responses((status = 200, description = "The web service is up", body = Value)))]
async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/api/v1/setup", tag = "setup", security(()),
    responses((status = 200, description = "`{\"required\": bool}`", body = Value)))]
async fn setup_status(State(app): AppState) -> ApiResult {
    Ok(Json(rpc(&app, "setup.status", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/setup", tag = "setup", security(()), request_body = SetupBody,
    responses((status = 200, description = "Setup done; log in as admin", body = Value),
        (status = 403, description = "Wrong setup code", body = ErrorBody),
        (status = 409, description = "Setup already done", body = ErrorBody),
        (status = 422, description = "Invalid values", body = ErrorBody),
        (status = 429, description = "Too many wrong codes", body = ErrorBody)))]
async fn setup_complete(
    State(app): AppState,
    ip: Option<axum::Extension<ClientIp>>,
    Body(b): Body<SetupBody>,
) -> ApiResult {
    let mut params = serde_json::to_value(&b).map_err(|e| ApiError::internal(e.to_string()))?;
    // Wrong codes lock out only this client's network.
    params["client"] = json!(ip.map(|i| i.0.0));
    Ok(Json(rpc(&app, "setup.complete", params).await?))
}

fn session_cookies(id: &str, csrf: &str, max_age: i64) -> [(header::HeaderName, String); 2] {
    [
        (
            header::SET_COOKIE,
            format!(
                "{}={id}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
                auth::SESSION_COOKIE
            ),
        ),
        (
            header::SET_COOKIE,
            format!(
                "{}={csrf}; Path=/; Max-Age={max_age}; Secure; SameSite=Strict",
                auth::CSRF_COOKIE
            ),
        ),
    ]
}

fn limited(secs: u64) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many failed logins; try again in {secs} s"),
    );
    e.retry_after = Some(secs);
    e
}

#[utoipa::path(post, path = "/api/v1/session", tag = "session", security(()), request_body = LoginBody,
    responses((status = 200, description = "Logged in: sets the session and CSRF cookies", body = Value),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins (at any door: web, SMTP, ssh)", body = ErrorBody)))]
async fn login(
    State(app): AppState,
    ip: Option<axum::Extension<ClientIp>>,
    Body(b): Body<LoginBody>,
) -> Result<Response, ApiError> {
    let client = ip.map(|i| i.0.0);
    let params = AuthParams {
        username: b.username,
        password: b.password,
        client,
        service: "web".into(),
    };
    // The supervisor checks the password behind the limiter every door shares.
    let user = match alpharen_rpc::auth::authenticate(&app.state_dir, &params).await {
        AuthOutcome::Ok(user) => user,
        AuthOutcome::RateLimited { retry_after } => return Err(limited(retry_after)),
        AuthOutcome::Refused => {
            tracing::warn!(user = %params.username, client = ?client, "failed login");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_credentials",
                "wrong user name or password",
            ));
        }
        AuthOutcome::Unavailable(why) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("cannot check the password now: {why}"),
            ));
        }
    };
    let sess = {
        let mut db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
        auth::create_session(&mut db, &user.user)?
    };
    tracing::info!(user = %user.user, client = ?client, "login");
    let body = json!({"user": user.user, "role": user.role, "csrf": sess.csrf});
    let mut resp = Json(body).into_response();
    for (k, v) in session_cookies(&sess.id, &sess.csrf, app.idle_secs().max(3600) * 24) {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, description = "Who is logged in", body = Value),
        (status = 401, description = "Not logged in", body = ErrorBody)))]
async fn whoami(Authed(c): Reader, headers: HeaderMap) -> Json<Value> {
    let jar = cookies(&headers);
    let csrf = auth::cookie(&jar, auth::CSRF_COOKIE);
    Json(
        json!({"user": c.user, "role": c.role, "via": match c.via { Via::Session => "session", Via::Token => "token" }, "csrf": csrf}),
    )
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 200, description = "Logged out", body = Value)))]
async fn logout(
    State(app): AppState,
    _c: Reader,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let jar = cookies(&headers);
    if let Some(sid) = auth::cookie(&jar, auth::SESSION_COOKIE) {
        let mut db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
        auth::delete_session(&mut db, sid)?;
    }
    let mut resp = Json(json!({"logged_out": true})).into_response();
    for (k, v) in session_cookies("", "", 0) {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/api/v1/status", tag = "node",
    responses((status = 200, description = "Node name, version, uptime, services, pending change", body = Value)))]
async fn status(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "status", json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/services", tag = "node",
    responses((status = 200, description = "Supervised services with state, restarts, since", body = Value)))]
async fn services(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "services.list", json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/services/{name}/status", tag = "node",
    params(("name" = String, Path, description = "Service name: net, vpn, dpx, mail, pgha, integrator")),
    responses((status = 200, description = "The service's own status (`<name>.status`): leases, peers, queue, HA groups, workers", body = Value),
        (status = 404, description = "No such service, or one without a status", body = ErrorBody)))]
async fn service_status(State(app): AppState, _c: Reader, Path(name): Path<String>) -> ApiResult {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_service",
            format!("there is no service {name:?}"),
        ));
    }
    Ok(Json(rpc(&app, &format!("{name}.status"), json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/services/{name}/restart", tag = "node",
    params(("name" = String, Path, description = "Service name")),
    responses((status = 200, description = "Restart requested", body = Value),
        (status = 404, description = "No such service", body = ErrorBody)))]
async fn service_restart(State(app): AppState, _c: Admin, Path(name): Path<String>) -> ApiResult {
    Ok(Json(
        rpc(&app, "services.restart", json!({"name": name})).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/config", tag = "config", params(ConfigQuery),
    responses((status = 200, description = "`{revision, config, pending}`", body = Value)))]
async fn config_get(State(app): AppState, _c: Reader, Q(q): Q<ConfigQuery>) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            "config.get",
            json!({"section": q.section, "revision": q.revision}),
        )
        .await?,
    ))
}

/// Checks a user certificate pair before it is stored, so a bad upload is
/// a 422 naming the key rather than a silent fallback later.
fn precheck_web(doc: &Value) -> Result<(), ApiError> {
    let web = doc.get("web");
    let get = |k: &str| web.and_then(|w| w.get(k)).and_then(Value::as_str);
    if let (Some(c), Some(k)) = (get("cert"), get("key"))
        && c.starts_with('/')
        && k.starts_with('/')
        && let Err(e) = crate::tls::load_pair(std::path::Path::new(c), std::path::Path::new(k))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            format!("the configuration is invalid:\n  web.key: {e}"),
        )
        .with_details(json!([{"path": "web.key", "message": e}])));
    }
    Ok(())
}

#[utoipa::path(put, path = "/api/v1/config", tag = "config", request_body = ApplyBody,
    responses((status = 200, description = "New revision, changed sections, pending confirmation", body = Value),
        (status = 422, description = "Invalid document; `details` lists each problem with its path", body = ErrorBody)))]
async fn config_apply(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<ApplyBody>,
) -> ApiResult {
    if let Some(doc) = &b.config {
        precheck_web(doc)?;
    }
    let params =
        json!({"config": b.config, "text": b.text, "comment": b.comment, "author": c.user});
    let params = strip_nulls(params);
    Ok(Json(rpc(&app, "config.apply", params).await?))
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        v => v,
    }
}

#[utoipa::path(patch, path = "/api/v1/config", tag = "config", request_body = SetBody,
    responses((status = 200, description = "New revision", body = Value),
        (status = 400, description = "Bad key path", body = ErrorBody),
        (status = 422, description = "Invalid value", body = ErrorBody)))]
async fn config_set(State(app): AppState, Authed(c): Admin, Body(b): Body<SetBody>) -> ApiResult {
    if b.path.starts_with("web") {
        let cur = rpc(&app, "config.get", json!({})).await?;
        let mut doc = cur.get("config").cloned().unwrap_or(Value::Null);
        if alpharen_store::diff::set_path(&mut doc, &b.path, b.value.clone()).is_ok() {
            precheck_web(&doc)?;
        }
    }
    Ok(Json(
        rpc(
            &app,
            "config.set",
            json!({"path": b.path, "value": b.value, "comment": b.comment, "author": c.user}),
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/config/schema", tag = "config",
    responses((status = 200, description = "JSON Schema of the configuration document", body = Value)))]
async fn config_schema(_c: Reader) -> Json<Value> {
    let schema = schemars::schema_for!(alpharen_store::Config);
    Json(serde_json::to_value(schema).unwrap_or(Value::Null))
}

#[utoipa::path(get, path = "/api/v1/config/history", tag = "config", params(HistoryQuery),
    responses((status = 200, description = "`{revisions, pending}`, newest first", body = Value)))]
async fn config_history(State(app): AppState, _c: Reader, Q(q): Q<HistoryQuery>) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            "config.history",
            json!({"limit": q.limit.unwrap_or(20)}),
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/config/diff", tag = "config", params(DiffQuery),
    responses((status = 200, description = "Changes from revision a to b, by key path", body = Value),
        (status = 404, description = "No such revision", body = ErrorBody)))]
async fn config_diff(State(app): AppState, _c: Reader, Q(q): Q<DiffQuery>) -> ApiResult {
    Ok(Json(
        rpc(&app, "config.diff", json!({"a": q.a, "b": q.b})).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/config/rollback", tag = "config", request_body = RollbackBody,
    responses((status = 200, description = "A new revision with the old content", body = Value),
        (status = 404, description = "No such revision", body = ErrorBody)))]
async fn config_rollback(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<RollbackBody>,
) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            "config.rollback",
            json!({"revision": b.revision, "author": c.user}),
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/config/confirm", tag = "config",
    responses((status = 200, description = "The pending change is kept", body = Value),
        (status = 409, description = "Nothing is pending", body = ErrorBody)))]
async fn config_confirm(State(app): AppState, Authed(c): Admin) -> ApiResult {
    Ok(Json(
        rpc(&app, "config.confirm", json!({"author": c.user})).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/config/export", tag = "config", params(ExportQuery),
    responses((status = 200, description = "The document as TOML text", body = Value)))]
async fn config_export(State(app): AppState, Authed(c): Reader, Q(q): Q<ExportQuery>) -> ApiResult {
    if q.with_secrets && c.role != Role::Admin {
        return Err(ApiError::forbidden(
            "exporting secrets needs the admin role",
        ));
    }
    Ok(Json(
        rpc(
            &app,
            "config.export",
            json!({"with_secrets": q.with_secrets}),
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/logs", tag = "node", params(LogsQuery),
    responses((status = 200, description = "Log lines; with follow=true a text/event-stream of lines", body = Value)))]
async fn logs(State(app): AppState, _c: Reader, Q(q): Q<LogsQuery>) -> Result<Response, ApiError> {
    let params =
        strip_nulls(json!({"service": q.service, "lines": q.lines.unwrap_or(100).min(10_000)}));
    if !q.follow {
        return Ok(Json(rpc(&app, "logs.read", params).await?).into_response());
    }
    let mut params = params;
    params["follow"] = json!(true);
    let (first, stream) = control::call_stream(&app.socket, "logs.read", params).await?;
    let backlog: Vec<Value> = match first {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    let events = futures_util::stream::unfold(
        (backlog.into_iter(), stream),
        |(mut backlog, mut stream)| async move {
            let item = match backlog.next() {
                Some(v) => v,
                None => stream.next().await?,
            };
            let ev = Event::default().event("line").data(item.to_string());
            Some((Ok::<_, std::convert::Infallible>(ev), (backlog, stream)))
        },
    );
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "Users and roles", body = Value)))]
async fn users_list(State(app): AppState, _c: Reader) -> ApiResult {
    Ok(Json(rpc(&app, "users.list", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserBody,
    responses((status = 200, description = "User created", body = Value),
        (status = 409, description = "User exists", body = ErrorBody),
        (status = 422, description = "Bad name, role or password", body = ErrorBody)))]
async fn users_add(State(app): AppState, Authed(c): Admin, Body(b): Body<UserBody>) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            "users.add",
            json!({"name": b.name, "password": b.password, "role": b.role.unwrap_or_else(|| "viewer".into()), "author": c.user}),
        )
        .await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/users/{name}/password", tag = "users", request_body = PasswordBody,
    params(("name" = String, Path, description = "User name")),
    responses((status = 200, description = "Password changed (admins: anyone's; others: their own)", body = Value),
        (status = 404, description = "No such user", body = ErrorBody)))]
async fn users_passwd(
    State(app): AppState,
    Authed(c): Reader,
    Path(name): Path<String>,
    Body(b): Body<PasswordBody>,
) -> ApiResult {
    if c.role != Role::Admin && c.user != name {
        return Err(ApiError::forbidden(
            "only admins change other users' passwords",
        ));
    }
    Ok(Json(
        rpc(
            &app,
            "users.passwd",
            json!({"name": name, "password": b.password, "author": c.user}),
        )
        .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users",
    params(("name" = String, Path, description = "User name")),
    responses((status = 200, description = "User deleted", body = Value),
        (status = 404, description = "No such user", body = ErrorBody)))]
async fn users_del(State(app): AppState, Authed(c): Admin, Path(name): Path<String>) -> ApiResult {
    Ok(Json(
        rpc(&app, "users.del", json!({"name": name, "author": c.user})).await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, description = "API tokens (never their secrets)", body = [auth::TokenInfo])))]
async fn tokens_list(State(app): AppState, _c: Admin) -> ApiResult {
    let mut db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
    Ok(Json(json!(auth::list_tokens(&mut db)?)))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenBody,
    responses((status = 200, description = "The token; its `secret` is shown only now", body = Value),
        (status = 422, description = "Bad name or role", body = ErrorBody)))]
async fn tokens_create(
    State(app): AppState,
    Authed(c): Admin,
    Body(b): Body<TokenBody>,
) -> ApiResult {
    let name = b.name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            "name: 1-64 printable characters",
        ));
    }
    let role = Role::parse(b.role.as_deref().unwrap_or("viewer")).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            format!("role: {e}"),
        )
    })?;
    let mut db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
    let (info, secret) = auth::create_token(&mut db, name, &c.user, role)?;
    let _ = db.audit(
        &c.user,
        "web.token.create",
        &format!("{} ({})", info.name, info.role),
    );
    Ok(Json(json!({"token": info, "secret": secret})))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, description = "Revoked", body = Value),
        (status = 404, description = "No such token", body = ErrorBody)))]
async fn tokens_revoke(
    State(app): AppState,
    Authed(c): Admin,
    Path(id): Path<String>,
) -> ApiResult {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a token id")))?;
    let mut db = app.db.lock().map_err(|_| ApiError::internal("lock"))?;
    if !auth::revoke_token(&mut db, id)? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_token",
            format!("there is no token {id}"),
        ));
    }
    let _ = db.audit(&c.user, "web.token.revoke", &id.to_string());
    Ok(Json(json!({"revoked": id})))
}

#[utoipa::path(get, path = "/api/v1/backup", tag = "backup",
    responses((status = 200, description = "A backup file (JSON) to download", body = Value)))]
async fn backup_download(State(app): AppState, _c: Admin) -> Result<Response, ApiError> {
    let backup = rpc(&app, "backup.create", json!({})).await?;
    let stamp = alpharen_store::now_unix();
    let mut resp = Json(backup).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"alpharen-backup-{stamp}.json\""
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[utoipa::path(post, path = "/api/v1/backup/restore", tag = "backup", request_body = Value,
    responses((status = 200, description = "Restored as a new revision", body = Value),
        (status = 422, description = "Not a usable backup", body = ErrorBody)))]
async fn backup_restore(State(app): AppState, Authed(c): Admin, Body(b): Body<Value>) -> ApiResult {
    Ok(Json(
        rpc(
            &app,
            "backup.restore",
            json!({"backup": b, "author": c.user}),
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/system/reboot", tag = "node",
    responses((status = 200, description = "Rebooting", body = Value)))]
async fn reboot(State(app): AppState, _c: Admin) -> ApiResult {
    Ok(Json(rpc(&app, "system.reboot", json!({})).await?))
}

#[utoipa::path(post, path = "/api/v1/system/poweroff", tag = "node",
    responses((status = 200, description = "Powering off", body = Value)))]
async fn poweroff(State(app): AppState, _c: Admin) -> ApiResult {
    Ok(Json(rpc(&app, "system.poweroff", json!({})).await?))
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "node",
    responses((status = 200, description = "This document", body = Value)))]
async fn openapi_json(_c: Reader) -> Json<Value> {
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
    paths(health, setup_status, setup_complete, login, whoami, logout, status, services,
        service_status, service_restart, config_get, config_apply, config_set, config_schema, config_history,
        config_diff, config_rollback, config_confirm, config_export, logs, users_list, users_add,
        users_passwd, users_del, tokens_list, tokens_create, tokens_revoke, backup_download,
        backup_restore, reboot, poweroff, openapi_json),
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

/// Headers every answer carries: no framing, no sniffing, HTTPS only, and
/// API answers are never cached.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "strict-transport-security", "max-age=31536000");
    set(
        h,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    if api {
        set(h, "cache-control", "no-store");
    }
    resp
}

pub fn router(app: Arc<App>) -> Router {
    use axum::extract::DefaultBodyLimit;
    let api = Router::new()
        .route("/health", get(health))
        .route("/setup", get(setup_status).post(setup_complete))
        .route("/session", get(whoami).post(login).delete(logout))
        .route("/status", get(status))
        .route("/services", get(services))
        .route("/services/{name}/status", get(service_status))
        .route("/services/{name}/restart", post(service_restart))
        .route(
            "/config",
            get(config_get).put(config_apply).patch(config_set),
        )
        .route("/config/schema", get(config_schema))
        .route("/config/history", get(config_history))
        .route("/config/diff", get(config_diff))
        .route("/config/rollback", post(config_rollback))
        .route("/config/confirm", post(config_confirm))
        .route("/config/export", get(config_export))
        .route("/logs", get(logs))
        .route("/users", get(users_list).post(users_add))
        .route("/users/{name}", axum::routing::delete(users_del))
        .route("/users/{name}/password", put(users_passwd))
        .route("/tokens", get(tokens_list).post(tokens_create))
        .route("/tokens/{id}", axum::routing::delete(tokens_revoke))
        .route("/backup", get(backup_download))
        .route(
            "/backup/restore",
            post(backup_restore).layer(DefaultBodyLimit::max(MAX_BACKUP)),
        )
        .route("/system/reboot", post(reboot))
        .route("/system/poweroff", post(poweroff))
        .route("/openapi.json", get(openapi_json))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY));
    Router::new()
        .nest("/api/v1", api)
        .route("/nic/update", get(crate::dyndns::nic_update))
        .merge(crate::console::routes())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::limits::guard,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::proxy::layer,
        ))
        .with_state(app)
}

/// The plain-HTTP listener: everything moves to HTTPS on the same host.
pub fn redirect_router(https_port: u16) -> Router {
    Router::new().fallback(move |headers: HeaderMap, uri: Uri| async move {
        let host = header_str(&headers, "host").unwrap_or("localhost");
        let host = host_only(host);
        let port = if https_port == 443 {
            String::new()
        } else {
            format!(":{https_port}")
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Redirect::permanent(&format!("https://{host}{port}{path}"))
    })
}

/// The host part of a Host header, or `localhost` if it looks odd (so a
/// crafted header cannot inject anything into the Location).
fn host_only(host: &str) -> &str {
    let h = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(a, _)| &host[..a.len() + 1])
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c))
    {
        h
    } else {
        "localhost"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_host_is_sanitised() {
        assert_eq!(host_only("node1:8080"), "node1");
        assert_eq!(host_only("[::1]:8080"), "[::1]");
        assert_eq!(host_only("evil.com/x?"), "localhost");
        assert_eq!(host_only(""), "localhost");
    }

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
            doc["paths"]["/api/v1/config"]["patch"]["responses"]["400"]["description"],
            json!("Bad key path")
        );
    }
}
