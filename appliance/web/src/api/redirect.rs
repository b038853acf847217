//! The plain-HTTP listener's router: ACME HTTP-01 challenge answers
//! (unauthenticated, as the CA must fetch them) and a permanent redirect
//! to HTTPS for everything else.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::header_str;
use crate::acme::Acme;

/// The plain-HTTP listener: `/.well-known/acme-challenge/TOKEN` answers
/// an order in flight; everything else moves to HTTPS on the same host
/// (`https_port`), or is 404 when the redirect is off.
pub fn redirect_router(https_port: Option<u16>, acme: Arc<Acme>) -> Router {
    let challenge = get(move |Path(token): Path<String>| async move {
        match acme.challenge(&token) {
            Some(proof) => ([(header::CONTENT_TYPE, "text/plain")], proof).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    });
    Router::new()
        .route("/.well-known/acme-challenge/{token}", challenge)
        .fallback(move |headers: HeaderMap, uri: Uri| async move {
            match https_port {
                Some(port) => redirect(&headers, &uri, port),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        })
}

fn redirect(headers: &HeaderMap, uri: &Uri, https_port: u16) -> Response {
    let host = header_str(headers, "host").unwrap_or("localhost");
    let host = host_only(host);
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Redirect::permanent(&format!("https://{host}{port}{path}")).into_response()
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

    async fn get(router: &Router, path: &str) -> (StatusCode, String) {
        use tower::ServiceExt;
        let req = axum::http::Request::get(path)
            .header("host", "node1.example.net")
            .body(axum::body::Body::empty())
            .unwrap();
        let rsp = router.clone().oneshot(req).await.unwrap();
        let status = rsp.status();
        let body = axum::body::to_bytes(rsp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn challenges_are_answered_and_everything_else_redirects() {
        let dir = tempfile::tempdir().unwrap();
        let acme = Arc::new(Acme::new(
            dir.path(),
            &alpharen_store::config::Acme::default(),
            &Default::default(),
        ));
        acme.answers
            .tokens
            .lock()
            .unwrap()
            .insert("tok".into(), "tok.thumb".into());
        let with = redirect_router(Some(8443), acme.clone());
        assert_eq!(
            get(&with, "/.well-known/acme-challenge/tok").await,
            (StatusCode::OK, "tok.thumb".into())
        );
        assert_eq!(
            get(&with, "/.well-known/acme-challenge/other").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(get(&with, "/x").await.0, StatusCode::PERMANENT_REDIRECT);
        // Listening only for ACME (http_redirect = false): nothing else.
        let only = redirect_router(None, acme);
        assert_eq!(get(&only, "/x").await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            get(&only, "/.well-known/acme-challenge/tok").await.0,
            StatusCode::OK
        );
    }
}
