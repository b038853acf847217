//! Layers around every answer: security headers, and reading the whole
//! request body (within a size limit) before routing.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{MAX_BACKUP, MAX_BODY};
use crate::error::ApiError;

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

/// Reads a request body completely before routing. Answering (say 401)
/// while a client is still sending makes HTTP/2 reset the stream, which
/// some clients report as an error instead of showing our answer.
pub(super) async fn buffer_body(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = if req.uri().path() == "/api/v1/backup/restore" {
        MAX_BACKUP
    } else {
        MAX_BODY
    };
    let (parts, body) = req.into_parts();
    match read_limited(body, limit).await {
        Some(bytes) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        None => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
        .into_response(),
    }
}

/// The body if it fits in `limit`; otherwise `None`, after discarding a
/// bounded amount more (so the client hears the 413 rather than a reset).
async fn read_limited(body: axum::body::Body, limit: usize) -> Option<Vec<u8>> {
    use futures_util::StreamExt;
    const DISCARD: usize = 32 << 20;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(c))) => c,
            Ok(None) => break,
            Ok(Some(Err(_))) | Err(_) => return None,
        };
        seen += chunk.len();
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        } else if seen > limit + DISCARD {
            return None;
        }
    }
    (seen <= limit).then_some(buf)
}
