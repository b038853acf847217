//! The ARDPX reverse proxy: requests whose host (and path prefix) match a
//! `[[dpx.routes]]` entry go to its HTTP backend, streaming both ways, with
//! `X-Forwarded-*` set and WebSocket upgrades spliced through. Everything
//! else (the node's own name and IP) falls through to the console and API.
//!
//! Routing is a pure function ([`choose`]); this module does the I/O.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use alpharen_store::config::{ProxyRoute, cidrs_overlap};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::{App, ClientIp};

/// Waiting for a backend to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Waiting for the backend's response headers (bodies stream unbounded).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Pooled HTTP/1.1 connections to the backends.
pub type Backends = Client<HttpConnector, Body>;

pub fn backends() -> Backends {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(http)
}

/// The route for a host and path: same host (no port, any case), path on
/// or below the prefix at a segment boundary; the longest prefix wins.
pub fn choose<'a>(routes: &'a [ProxyRoute], host: &str, path: &str) -> Option<&'a ProxyRoute> {
    let host = host.trim_end_matches('.');
    routes
        .iter()
        .filter(|r| r.host.trim_end_matches('.').eq_ignore_ascii_case(host))
        .filter(|r| {
            let prefix = r
                .path_prefix
                .as_deref()
                .unwrap_or("/")
                .trim_end_matches('/');
            prefix.is_empty()
                || path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|r| r.path_prefix.as_deref().map_or(0, str::len))
}

/// The requested host without port: the URI authority (HTTP/2) or `Host`.
fn request_host(req: &Request) -> Option<String> {
    let raw = match req.uri().authority() {
        Some(a) => a.host().to_string(),
        None => req.headers().get(header::HOST)?.to_str().ok()?.to_string(),
    };
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => raw.as_str(),
    };
    Some(host.to_ascii_lowercase())
}

/// Whether the address is inside one of the VPN's networks.
pub fn in_vpn(nets: &[(IpAddr, u8)], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    nets.iter().any(|n| cidrs_overlap(*n, (ip, bits)))
}

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

fn is_upgrade(h: &HeaderMap) -> bool {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && h.contains_key(header::UPGRADE)
}

fn page(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{detail}</p><hr><p>ALPHA-REN node proxy</p></body></html>"
    );
    (status, Html(body)).into_response()
}

/// Middleware in front of the console: proxies matching requests.
pub async fn layer(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let dpx = app.dpx();
    let Some(host) = request_host(&req) else {
        return next.run(req).await;
    };
    let Some(route) = choose(&dpx.routes, &host, req.uri().path()).cloned() else {
        return next.run(req).await;
    };
    let client = req.extensions().get::<ClientIp>().map(|c| c.0);
    if route.vpn_only && !client.is_some_and(|ip| in_vpn(&app.vpn_nets(), ip)) {
        return page(
            StatusCode::FORBIDDEN,
            "403 Forbidden",
            &format!("{host} is only reachable through the VPN."),
        );
    }
    forward(&app.backends, &route, &host, client, req).await
}

async fn forward(
    backends: &Backends,
    route: &ProxyRoute,
    host: &str,
    client: Option<IpAddr>,
    mut req: Request,
) -> Response {
    let Some((bhost, bport)) = route.backend_authority() else {
        return page(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway",
            "The route's backend is not valid.",
        );
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let authority = if bhost.contains(':') {
        format!("[{bhost}]:{bport}")
    } else {
        format!("{bhost}:{bport}")
    };
    let Ok(uri) = format!("http://{authority}{path}").parse::<Uri>() else {
        return page(
            StatusCode::BAD_REQUEST,
            "400 Bad Request",
            "The request path is not valid.",
        );
    };
    let upgrade = is_upgrade(req.headers());
    let upgrade_proto = req.headers().get(header::UPGRADE).cloned();
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    let prior_xff = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    strip_hop_by_hop(&mut parts.headers);
    let h = &mut parts.headers;
    if let Some(ip) = client {
        let xff = match prior_xff {
            Some(p) => format!("{p}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            h.insert("x-forwarded-for", v);
        }
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert("x-forwarded-host", v.clone());
        h.insert(header::HOST, v);
    }
    if let (true, Some(p)) = (upgrade, upgrade_proto) {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, p);
    }
    parts.uri = uri;
    parts.version = axum::http::Version::HTTP_11;
    let out = Request::from_parts(parts, body);

    let resp = match tokio::time::timeout(RESPONSE_TIMEOUT, backends.request(out)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(host, backend = %route.backend, error = %e, "backend not reachable");
            return page(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway",
                &format!("The backend for {host} is not answering. Try again in a moment."),
            );
        }
        Err(_) => {
            tracing::warn!(host, backend = %route.backend, "backend did not answer in time");
            return page(
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Timeout",
                &format!("The backend for {host} did not answer in time."),
            );
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_side) = client_side
    {
        return splice(resp, client_side);
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body))
}

/// Answers 101 to the client and copies bytes both ways between the two
/// upgraded connections until either side closes.
fn splice(
    mut resp: hyper::Response<hyper::body::Incoming>,
    client_side: hyper::upgrade::OnUpgrade,
) -> Response {
    let backend_side = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        match tokio::try_join!(client_side, backend_side) {
            Ok((c, b)) => {
                let (mut c, mut b) = (TokioIo::new(c), TokioIo::new(b));
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
                    tracing::debug!(error = %e, "upgraded connection ended");
                }
            }
            Err(e) => tracing::warn!(error = %e, "upgrade failed"),
        }
    });
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, Body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: &str, prefix: Option<&str>, backend: &str) -> ProxyRoute {
        ProxyRoute {
            host: host.into(),
            backend: backend.into(),
            path_prefix: prefix.map(str::to_string),
            vpn_only: false,
        }
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let routes = vec![
            route("app.z.example", None, "http://a:1"),
            route("app.z.example", Some("/api"), "http://b:1"),
        ];
        let pick = |h, p| choose(&routes, h, p).map(|r| r.backend.as_str());
        assert_eq!(pick("APP.z.example", "/"), Some("http://a:1"));
        assert_eq!(pick("app.z.example", "/api"), Some("http://b:1"));
        assert_eq!(pick("app.z.example", "/api/x"), Some("http://b:1"));
        assert_eq!(pick("app.z.example", "/apix"), Some("http://a:1"));
        assert_eq!(pick("node.z.example", "/"), None);
    }

    #[test]
    fn vpn_membership_and_hop_by_hop_headers() {
        let nets = vec![("10.8.0.0".parse().unwrap(), 24)];
        assert!(in_vpn(&nets, "10.8.0.7".parse().unwrap()));
        assert!(in_vpn(&nets, "::ffff:10.8.0.7".parse().unwrap()));
        assert!(!in_vpn(&nets, "10.9.0.7".parse().unwrap()));
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
