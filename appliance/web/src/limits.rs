//! Request limits, checked before anything is read: a cap on requests in
//! flight (every route, reverse-proxied ones included) and on the body
//! memory they hold (503 `busy` when full), small
//! fixed bodies for the public routes (setup, session), and for everything
//! else authentication *before* the body is read, so a stranger's upload
//! costs no memory. Bodies are read completely before routing, because
//! answering while a client is still sending makes HTTP/2 reset the
//! stream, which some clients report as an error instead of our answer.
//! The one exception is the update upload (`/api/v1/system/update`):
//! a bundle is hundreds of MiB, so only an admin may send it, and its
//! handler streams it on in chunks (it drains the rest after a refusal).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tower::ServiceExt as _;

use crate::App;
use crate::auth::Need;
use crate::error::ApiError;

/// Body of a public route (setup, login): small and fixed.
pub const PUBLIC_BODY: usize = 16 << 10;
/// Largest body of a logged-in caller's request; a backup restore may be larger.
pub const MAX_BODY: usize = 1 << 20;
pub const MAX_BACKUP: usize = 64 << 20;
/// Body memory an update upload holds while it streams: one frame being
/// filled for the supervisor.
pub const STREAM_HOLD: usize = alpharen_rpc::upload::MAX_FRAME;
/// Requests served at once; more get 503.
pub const MAX_REQUESTS: usize = 256;
/// Body bytes held by all requests together; beyond it requests get 503.
pub const BODY_BUDGET: usize = 96 << 20;
/// At most this much is read and thrown away after a refusal, so the
/// client hears the answer rather than a reset; never kept in memory.
const DISCARD: usize = 4 << 20;
/// A body must arrive within this.
const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// The node-wide counters behind the caps.
pub struct Limits {
    requests: Arc<Semaphore>,
    body_bytes: Arc<Semaphore>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            requests: Arc::new(Semaphore::new(MAX_REQUESTS)),
            body_bytes: Arc::new(Semaphore::new(BODY_BUDGET)),
        }
    }
}

impl Limits {
    /// A place among the requests in flight, or none when all
    /// `MAX_REQUESTS` are taken (`crate::api::middleware::front`).
    pub fn admit(&self) -> Option<SemaphorePermit<'_>> {
        self.requests.try_acquire().ok()
    }
}

/// How much body a request may bring, and whether the caller must be
/// authenticated before any of it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    Public(usize),
    AfterAuth(usize),
    /// Any size, not read here: an admin's update bundle, streamed by its
    /// handler.
    Stream,
}

/// An integrator deploy (a `.py`, or a project zip) or a wheel: the
/// body is the file, up to [`alpharen_rpc::MAX_ARCHIVE`].
pub fn is_upload(api_path: &str) -> bool {
    let one_below = |prefix: &str| {
        api_path
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    };
    one_below("/integrator/services/") || one_below("/integrator/packages/")
}

/// The rule for a path: the API's public routes and everything outside
/// the API (console assets, `/nic/update`) take small bodies; every other
/// API route authenticates first.
pub fn body_rule(path: &str) -> BodyRule {
    match path.strip_prefix("/api/v1") {
        Some("/health" | "/setup" | "/session" | "/cluster/join" | "/cluster/link") | None => {
            BodyRule::Public(PUBLIC_BODY)
        }
        Some("/backup/restore") => BodyRule::AfterAuth(MAX_BACKUP),
        Some(p) if is_upload(p) => BodyRule::AfterAuth(alpharen_rpc::MAX_ARCHIVE),
        Some("/system/update") => BodyRule::Stream,
        Some(_) => BodyRule::AfterAuth(MAX_BODY),
    }
}

pub fn busy(what: &str) -> Response {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        format!("the node is serving too many {what}; try again shortly"),
    );
    e.retry_after = Some(1);
    e.into_response()
}

fn too_large(limit: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is larger than {limit} bytes"),
    )
    .into_response()
}

/// Why a body was not read.
enum Unread {
    TooLarge,
    OverBudget,
    Broken,
}

/// Reads the body up to `limit`, taking each chunk's bytes from the
/// budget; the permit holds them until the request is answered.
async fn read_body(
    body: axum::body::Body,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), Unread> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    let deadline = tokio::time::Instant::now() + BODY_DEADLINE;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(c))) => c,
            Ok(None) => return Ok((buf, held)),
            Ok(Some(Err(_))) | Err(_) => return Err(Unread::Broken),
        };
        if buf.len() + chunk.len() > limit {
            drop(held);
            discard(stream, DISCARD, deadline).await;
            return Err(Unread::TooLarge);
        }
        let n = u32::try_from(chunk.len()).map_err(|_| Unread::TooLarge)?;
        let permit = budget
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| Unread::OverBudget)?;
        match held.as_mut() {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        buf.extend_from_slice(&chunk);
    }
}

/// Reads and drops up to `max` bytes, so a refused client hears the answer.
async fn discard(
    mut stream: axum::body::BodyDataStream,
    max: usize,
    deadline: tokio::time::Instant,
) {
    use futures_util::StreamExt;
    let mut seen = 0;
    while seen <= max {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(c))) => seen += c.len(),
            _ => return,
        }
    }
}

/// Before answering a refusal: drains a body of at most `DISCARD` bytes
/// so the client hears the answer cleanly (over HTTP/2 an unread body
/// resets the stream, which clients report as an error); a larger or
/// unsized one is not touched at all (a client waiting on
/// `Expect: 100-continue` then never sends it).
async fn drain_if_small(body: axum::body::Body) {
    if body
        .size_hint()
        .upper()
        .is_some_and(|n| n <= DISCARD as u64)
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        discard(body.into_data_stream(), DISCARD, deadline).await;
    }
}

/// In front of the node's own routes: authentication for non-public
/// bodies, then the body, read completely within the budget. A request
/// without a body (a GET) goes straight to its route (which answers 404
/// for an unknown path whoever asks), with no budget and no deadline
/// timer; the body's path is boxed, so that it does not make every
/// request's future kilobytes larger.
pub async fn guard(app: &App, req: Request, routes: Router) -> Response {
    if req.body().size_hint().exact() == Some(0) {
        return own(routes, req).await;
    }
    Box::pin(guard_body(app, req, routes)).await
}

/// The node's own routes, which answer every request (404 included).
async fn own(routes: Router, req: Request) -> Response {
    match routes.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// A request that brings a body.
async fn guard_body(app: &App, req: Request, routes: Router) -> Response {
    match body_rule(req.uri().path()) {
        BodyRule::Public(limit) => read_then_run(app, req, limit, routes).await,
        BodyRule::AfterAuth(limit) => match authenticated(app, req, Need::Read).await {
            Ok(req) => read_then_run(app, req, limit, routes).await,
            Err(refused) => refused,
        },
        BodyRule::Stream => stream_then_run(app, req, routes).await,
    }
}

/// The request if its caller may do `need`; else the refusal, after the
/// body is taken and discarded when small.
async fn authenticated(app: &App, req: Request, need: Need) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    match crate::api::authenticate(app, &parts, need).await {
        Ok(_) => Ok(Request::from_parts(parts, body)),
        Err(e) => {
            drain_if_small(body).await;
            Err(e.into_response())
        }
    }
}

/// An update upload: an admin only, checked before a byte is read; the
/// body goes to the handler unread, holding [`STREAM_HOLD`] of the budget.
async fn stream_then_run(app: &App, req: Request, routes: Router) -> Response {
    let req = match authenticated(app, req, Need::Admin).await {
        Ok(req) => req,
        Err(refused) => return refused,
    };
    let Ok(_held) = app
        .limits
        .body_bytes
        .clone()
        .try_acquire_many_owned(STREAM_HOLD as u32)
    else {
        drain_if_small(req.into_body()).await;
        return busy("uploads");
    };
    own(routes, req).await
}

async fn read_then_run(app: &App, req: Request, limit: usize, routes: Router) -> Response {
    let (parts, body) = req.into_parts();
    // A declared length over the limit is refused before anything is kept.
    if body.size_hint().lower() > limit as u64 {
        drain_if_small(body).await;
        return too_large(limit);
    }
    match read_body(body, limit, &app.limits.body_bytes).await {
        Ok((bytes, _held)) => {
            own(
                routes,
                Request::from_parts(parts, axum::body::Body::from(bytes)),
            )
            .await
        }
        Err(Unread::TooLarge) => too_large(limit),
        Err(Unread::OverBudget) => busy("uploads"),
        Err(Unread::Broken) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "body_incomplete",
            "the request body did not arrive completely within 30 s",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_routes_take_small_bodies_and_the_rest_authenticate_first() {
        assert_eq!(body_rule("/api/v1/setup"), BodyRule::Public(PUBLIC_BODY));
        assert_eq!(body_rule("/api/v1/session"), BodyRule::Public(PUBLIC_BODY));
        assert_eq!(
            body_rule("/api/v1/cluster/join"),
            BodyRule::Public(PUBLIC_BODY)
        );
        assert_eq!(
            body_rule("/api/v1/cluster/link"),
            BodyRule::Public(PUBLIC_BODY)
        );
        assert_eq!(body_rule("/nic/update"), BodyRule::Public(PUBLIC_BODY));
        assert_eq!(body_rule("/"), BodyRule::Public(PUBLIC_BODY));
        assert_eq!(body_rule("/api/v1/config"), BodyRule::AfterAuth(MAX_BODY));
        for upload in [
            "/api/v1/integrator/services/app.zip",
            "/api/v1/integrator/packages/requests-2.32.3-py3-none-any.whl",
        ] {
            assert_eq!(
                body_rule(upload),
                BodyRule::AfterAuth(alpharen_rpc::MAX_ARCHIVE)
            );
        }
        for small in [
            "/api/v1/integrator/services/app.zip/rollback",
            "/api/v1/integrator/package-sets/3/rollback",
            "/api/v1/integrator/jobs/tick/disable",
            "/api/v1/integrator/outgoing/crm/ping",
        ] {
            assert_eq!(body_rule(small), BodyRule::AfterAuth(MAX_BODY));
        }
        assert_eq!(
            body_rule("/api/v1/backup/restore"),
            BodyRule::AfterAuth(MAX_BACKUP)
        );
        assert_eq!(body_rule("/api/v1/system/update"), BodyRule::Stream);
        assert_eq!(
            body_rule("/api/v1/system/update/x"),
            BodyRule::AfterAuth(MAX_BODY)
        );
        assert_eq!(
            body_rule("/api/v1/setup/x"),
            BodyRule::AfterAuth(MAX_BODY),
            "only exact public paths"
        );
    }

    #[tokio::test]
    async fn bodies_beyond_the_budget_are_refused_and_released_after() {
        let budget = Arc::new(Semaphore::new(10));
        let (buf, held) = read_body(axum::body::Body::from(vec![1u8; 8]), 100, &budget)
            .await
            .ok()
            .unwrap();
        assert_eq!(buf.len(), 8);
        let second = read_body(axum::body::Body::from(vec![1u8; 8]), 100, &budget).await;
        assert!(matches!(second, Err(Unread::OverBudget)));
        drop(held);
        assert_eq!(budget.available_permits(), 10);
        let big = read_body(axum::body::Body::from(vec![1u8; 101]), 100, &budget).await;
        assert!(matches!(big, Err(Unread::TooLarge)));
    }
}
