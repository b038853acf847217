//! The plain-HTTP listener's router: a permanent redirect to HTTPS.

use axum::Router;
use axum::http::{HeaderMap, Uri};
use axum::response::Redirect;

use super::header_str;

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
}
