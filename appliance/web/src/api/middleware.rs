//! The one layer around every request, reverse-proxied ones included
//! (each layer of its own would cost allocations and reference counts on
//! every request): timed and counted for `/metrics`, capped in number
//! (`crate::limits`), forwarded when a `[[dpx.routes]]` entry matches
//! (`crate::proxy`), else the node's own routes behind
//! `crate::limits::guard` with the security headers.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::App;
use crate::metrics::http::route_class;

/// An answer whose head took this long is logged: a console that
/// seems to hang shows up in the web service's log.
const SLOW_SECS: f64 = 5.0;

pub(super) async fn front(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let class = route_class(req.uri().path());
    let (class, resp) = match app.limits.admit() {
        None => (class, crate::limits::busy("requests")),
        // Held until the answer's head is ready.
        Some(_in_flight) => match crate::proxy::forward_if_routed(&app, req).await {
            Ok(resp) => ("proxy", resp),
            Err(req) => {
                let api = req.uri().path().starts_with("/api/");
                let mut resp = crate::limits::guard(&app, req, next).await;
                security_headers(api, &mut resp);
                (class, resp)
            }
        },
    };
    // A streamed body, such as a log follow, is not waited for.
    let secs = start.elapsed().as_secs_f64();
    app.http.observe(class, resp.status().as_u16(), secs);
    if secs >= SLOW_SECS {
        // The route's class, not its path: a path may name what is not
        // the log's business (a KV key, a user).
        tracing::warn!(class, status = resp.status().as_u16(), secs, "slow answer");
    }
    resp
}

/// Headers every answer of the node's own carries: no framing, no
/// sniffing, HTTPS only, and API answers are never cached.
fn security_headers(api: bool, resp: &mut Response) {
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
}
