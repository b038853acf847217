//! The request extractors every handler uses: JSON bodies and query
//! strings that answer in our error shape, and `Authed`, whose extraction
//! is the access check (bearer token or session cookie plus CSRF header).

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

use crate::App;
use crate::auth::{self, Caller, Need, Via};
use crate::error::ApiError;

/// JSON bodies with our error shape on rejection.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// Query strings with our error shape on rejection.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Q<T>(pub T);

/// A logged-in caller whose role is at least `LEAST` (a [`Need`] as a
/// number, since enums cannot be const parameters); extracting it is the
/// access check.
pub struct Authed<const LEAST: u8>(pub Caller);
pub type Reader = Authed<0>;
/// Reads, and acts on the reaction engine (the `operator` role).
pub type Operator = Authed<1>;
pub type Admin = Authed<2>;

pub(super) fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// All `Cookie` headers joined (HTTP/2 may send several).
pub(super) fn cookies(h: &HeaderMap) -> String {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ")
}

pub async fn authenticate(app: &App, parts: &Parts, need: Need) -> Result<Caller, ApiError> {
    let roles = app.user_roles().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("cannot check who you are: {e}"),
        )
    })?;
    let role_of = |u: &str| roles.get(u).copied();
    let db = app
        .db
        .lock()
        .map_err(|_| ApiError::internal("database lock poisoned"))?;
    let caller = if let Some(v) = header_str(&parts.headers, "authorization") {
        let token = v
            .strip_prefix("Bearer ")
            .ok_or_else(ApiError::unauthorized)?;
        auth::lookup_token(&db, token.trim(), role_of)?.ok_or_else(|| {
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
            auth::lookup_session(&db, sid, app.idle_secs(), role_of)?.ok_or_else(|| {
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
            "user {:?} has the {} role; this needs {}",
            caller.user,
            caller.role.as_str(),
            match need {
                Need::Operate => "operator or admin",
                _ => "admin",
            }
        )));
    }
    Ok(caller)
}

impl<const LEAST: u8> FromRequestParts<Arc<App>> for Authed<LEAST> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let need = match LEAST {
            0 => Need::Read,
            1 => Need::Operate,
            _ => Need::Admin,
        };
        authenticate(app, parts, need).await.map(Authed)
    }
}
