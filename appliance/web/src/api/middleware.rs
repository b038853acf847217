//! The layer around every answer: security headers. (Request limits and
//! body reading are `crate::limits`.)

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

/// Headers every answer carries: no framing, no sniffing, HTTPS only, and
/// API answers are never cached.
pub(super) async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
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
