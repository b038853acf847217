//! The ARDPX reverse proxy: requests whose host (and path prefix) match a
//! `[[dpx.routes]]` entry go to its HTTP or HTTPS backend, streaming both
//! ways, with `X-Forwarded-*` set and WebSocket upgrades spliced through.
//! Everything else (the node's own name and IP) falls through to the
//! console and API.
//!
//! Routing is a pure function ([`choose`]); each route's clients, timeouts
//! and health checker live in its [`Upstream`]; this module does the I/O.
//! Each HTTPS worker ([`crate::workers`]) keeps its own kept-alive
//! HTTP/1.1 connections per route ([`h1`]), so a request never waits on
//! a connection task of another thread; a backend that speaks HTTP/2 gets
//! one multiplexed connection per worker instead ([`h2`]).

use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::Arc;

use alpharen_store::config::{ProxyRoute, cidrs_overlap};
use axum::body::Body;
use axum::extract::Request;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::task::JoinHandle;

use crate::health::{self, Health};
use crate::{App, ClientIp};

/// A route as served: its client and, with a health block, its checker.
/// Kept across reloads while the route is unchanged.
pub struct Upstream {
    pub route: ProxyRoute,
    /// The route's HTTP/1.1 connections, or why there can be none (a
    /// bad `ca_file`).
    h1: Result<Arc<h1::H1>, String>,
    /// HTTP/2 to the backend, unless the route is HTTP/1.1 only.
    h2: Option<h2::H2>,
    health: Arc<Health>,
    checker: Option<JoinHandle<()>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(task) = &self.checker {
            task.abort();
        }
    }
}

impl Upstream {
    /// Must run inside the runtime: it spawns the health checker (with a
    /// client of its own, its connections on this runtime).
    fn new(route: ProxyRoute, workers: usize) -> Upstream {
        let tls = client_tls(&route);
        let h1 = tls
            .clone()
            .and_then(|tls| h1::H1::new(&route, tls, workers))
            .map(Arc::new);
        if let Err(e) = &h1 {
            tracing::error!(host = %route.host, error = %e, "proxy route cannot be served");
        }
        let health = Arc::new(Health::default());
        let checker = match (&route.health, &h1) {
            (Some(check), Ok(h1)) => {
                let target = check
                    .path
                    .parse::<PathAndQuery>()
                    .ok()
                    .zip(HeaderValue::from_str(&route.host).ok());
                target.map(|(path, host)| {
                    let (h1, probed, expect) =
                        (h1.clone(), Arc::new(route.clone()), check.expect_status);
                    tokio::spawn(health::watch(
                        route.host.clone(),
                        check.clone(),
                        health.clone(),
                        move || {
                            probe(
                                h1.clone(),
                                probed.clone(),
                                path.clone(),
                                host.clone(),
                                expect,
                            )
                        },
                    ))
                })
            }
            _ => None,
        };
        let h2 = tls.ok().and_then(|(config, name)| {
            let name = match name {
                Some(n) => n,
                None => ServerName::try_from(route.backend_authority()?.0.to_string()).ok()?,
            };
            Some((config, name))
        });
        Upstream {
            h2: h2::H2::new(&route, h2.filter(|_| route.backend_tls()), workers),
            route,
            h1,
            health,
            checker,
        }
    }
}

impl Upstream {
    /// The route as `web.status` shows it: `up`, `down` (with why) or
    /// `unchecked` (no health block), or `unusable` (no client).
    pub fn status(&self) -> serde_json::Value {
        let (state, reason) = match (&self.h1, self.route.health.is_some(), self.health.down()) {
            (Err(e), _, _) => ("unusable", Some(e.clone())),
            (Ok(_), false, _) => ("unchecked", None),
            (Ok(_), true, None) => ("up", None),
            (Ok(_), true, Some(why)) => ("down", Some(why)),
        };
        serde_json::json!({
            "host": self.route.host,
            "path_prefix": self.route.path_prefix,
            "backend": self.route.backend,
            "vpn_only": self.route.vpn_only,
            "state": state,
            "reason": reason,
        })
    }
}

/// The upstreams for `routes`: unchanged routes keep theirs (connection
/// pools, health state, checker); the others get new ones, with a pool
/// for each of `workers`. Upstreams left out stop their checkers when the
/// last request using them ends.
pub fn reconcile(
    old: &[Arc<Upstream>],
    routes: &[ProxyRoute],
    workers: usize,
) -> Vec<Arc<Upstream>> {
    routes
        .iter()
        .map(|r| {
            old.iter()
                .find(|u| u.route == *r)
                .cloned()
                .unwrap_or_else(|| Arc::new(Upstream::new(r.clone(), workers)))
        })
        .collect()
}

/// The TLS client settings of a route: webpki roots plus the route's
/// `ca_file`, and its `tls_server_name` in place of the URL's host when
/// set.
fn client_tls(
    route: &ProxyRoute,
) -> Result<(rustls::ClientConfig, Option<ServerName<'static>>), String> {
    let roots = alpharen_nodetls::public_roots_and(route.ca_file.as_deref())
        .map_err(|e| format!("ca_file {e}"))?;
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = match &route.tls_server_name {
        Some(name) => Some(
            ServerName::try_from(name.clone())
                .map_err(|e| format!("tls_server_name {name}: {e}"))?,
        ),
        None => None,
    };
    Ok((tls, name))
}

/// One health probe: `GET path` with the route's host; healthy on the
/// expected status, else on any 2xx or 3xx.
async fn probe(
    h1: Arc<h1::H1>,
    route: Arc<ProxyRoute>,
    path: PathAndQuery,
    host: HeaderValue,
    expect: Option<u16>,
) -> Result<(), String> {
    let request = || {
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = Uri::from(path.clone());
        req.headers_mut().insert(header::HOST, host.clone());
        req.headers_mut().insert(
            header::USER_AGENT,
            HeaderValue::from_static("alpharen-health-check"),
        );
        req
    };
    let (resp, lease) = h1
        .send(h1::Pool::Checker, &route, request(), Some(request()))
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let (parts, body) = resp.into_parts();
    // Read to its end, so that the connection serves the next probe (a
    // body larger than this closes it instead).
    let _ = axum::body::to_bytes(Body::new(h1::Answer::new(body, Some(lease))), 64 * 1024).await;
    let status = parts.status;
    let healthy = match expect {
        Some(code) => status.as_u16() == code,
        None => status.is_success() || status.is_redirection(),
    };
    if healthy {
        Ok(())
    } else {
        Err(format!("GET {path} answered {status}"))
    }
}

/// The errors behind a client error, outermost first; an `io::Error`
/// carrying another error is followed into it (its `source` skips it).
fn causes<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |&err: &&'a (dyn StdError + 'static)| match err
        .downcast_ref::<std::io::Error>()
    {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => err.source(),
    })
}

/// The innermost cause, the one that says what happened.
fn cause(e: &(dyn StdError + 'static)) -> String {
    causes(e).last().unwrap_or(e).to_string()
}

/// The route for a host and path: same host (no port, any case), path on
/// or below the prefix at a segment boundary; the longest prefix wins.
pub fn choose<'a, T>(
    items: &'a [T],
    route: impl Fn(&T) -> &ProxyRoute,
    host: &str,
    path: &str,
) -> Option<&'a T> {
    let host = host.trim_end_matches('.');
    items
        .iter()
        .filter(|i| {
            let r = route(i);
            let prefix = r
                .path_prefix
                .as_deref()
                .unwrap_or("/")
                .trim_end_matches('/');
            r.host.trim_end_matches('.').eq_ignore_ascii_case(host)
                && (prefix.is_empty()
                    || path == prefix
                    || path
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/')))
        })
        .max_by_key(|i| route(i).path_prefix.as_deref().map_or(0, str::len))
}

/// The requested host without port: the URI authority (HTTP/2) or `Host`.
fn request_host(req: &Request) -> Option<String> {
    let raw = match req.uri().authority() {
        Some(a) => a.host(),
        None => req.headers().get(header::HOST)?.to_str().ok()?,
    };
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => raw,
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
/// Names, not strings: a string is parsed again at every use, and these
/// are looked up twice per proxied request.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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

/// A request for a `[[dpx.routes]]` host is answered here (refused or
/// forwarded); any other is handed back for the console and API.
pub async fn forward_if_routed(app: &App, req: Request) -> Result<Response, Request> {
    let upstreams = app.upstreams();
    let Some(host) = request_host(&req) else {
        return Err(req);
    };
    let Some(upstream) = choose(&upstreams, |u| &u.route, &host, req.uri().path()) else {
        return Err(req);
    };
    Ok(proxied(app, upstream, &host, req).await)
}

/// A request for a `[[dpx.routes]]` host: refused, or forwarded.
async fn proxied(app: &App, upstream: &Upstream, host: &str, req: Request) -> Response {
    let client = req.extensions().get::<ClientIp>().map(|c| c.0);
    if upstream.route.vpn_only && !client.is_some_and(|ip| in_vpn(&app.vpn_nets(), ip)) {
        return page(
            StatusCode::FORBIDDEN,
            "403 Forbidden",
            &format!("{host} is only reachable through the VPN."),
        );
    }
    if let Some(reason) = upstream.health.down() {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable",
            &format!(
                "The backend for {host} failed its health check ({reason}). \
                 It gets no requests until it passes again."
            ),
        );
    }
    let h1 = match &upstream.h1 {
        Ok(h1) => h1,
        Err(e) => {
            return page(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway",
                &format!("The route for {host} is misconfigured on this node: {e}."),
            );
        }
    };
    forward(h1, upstream, host, client, req).await
}

async fn forward(
    h1: &Arc<h1::H1>,
    upstream: &Upstream,
    host: &str,
    client: Option<IpAddr>,
    mut req: Request,
) -> Response {
    let route = &upstream.route;
    let upgrade = is_upgrade(req.headers());
    // HTTP/2 when the backend speaks it; an upgrade needs HTTP/1.1's.
    let h2 = match (&upstream.h2, upgrade) {
        (Some(h2), false) => match h2.sender(crate::workers::index(), route).await {
            Ok(sender) => sender.map(|s| (h2, s)),
            Err(failure) => {
                tracing::warn!(host, backend = %route.backend, error = %failure, "proxy request failed");
                return failure.page(host);
            }
        },
        _ => None,
    };
    let path = req.uri().path_and_query();
    // Over HTTP/1.1 in origin form, the path alone (the backend's host
    // is in `Host`).
    let uri = match &h2 {
        Some((h2, _)) => h2.uri(path),
        None => Some(Uri::from(
            path.cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        )),
    };
    let Some(uri) = uri else {
        return page(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway",
            &format!("The route for {host} has no valid backend URL."),
        );
    };
    let upgrade_proto = req.headers().get(header::UPGRADE).cloned();
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    let prior_xff = parts
        .headers
        .get(X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    strip_hop_by_hop(&mut parts.headers);
    let h = &mut parts.headers;
    if let Some(ip) = client {
        let xff = match prior_xff {
            Some(p) => format!("{p}, {ip}"),
            None => ip.to_string(),
        };
        // The string's buffer itself, not a copy.
        if let Ok(v) = HeaderValue::from_maybe_shared(hyper::body::Bytes::from(xff)) {
            h.insert(X_FORWARDED_FOR, v);
        }
    }
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    // The client's `Host` when it is the host as routed (the usual case:
    // lower case, no port) is shared, not copied.
    let host_value = match h.get(header::HOST) {
        Some(v) if v.as_bytes() == host.as_bytes() => Ok(v.clone()),
        _ => HeaderValue::from_str(host),
    };
    if let Ok(v) = host_value {
        h.insert(X_FORWARDED_HOST, v.clone());
        // Over HTTP/2 the host is the URL's authority (`:authority`).
        if h2.is_some() {
            h.remove(header::HOST);
        } else {
            h.insert(header::HOST, v);
        }
    }
    if let (true, Some(p)) = (upgrade, upgrade_proto) {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, p);
    }
    parts.uri = uri;
    parts.version = if h2.is_some() {
        axum::http::Version::HTTP_2
    } else {
        axum::http::Version::HTTP_11
    };
    // Over HTTP/1.1 a copy is kept only where it may be sent again
    // (idempotent methods); over HTTP/2 also for a refused stream.
    let (body, replay) = if h2.is_some() || parts.method.is_idempotent() {
        replayable(body).await
    } else {
        (body, None)
    };
    let (body, request_read) = Lingering::new(body);
    let replay = replay.map(|body| {
        let mut again = Request::new(body);
        *again.method_mut() = parts.method.clone();
        *again.uri_mut() = parts.uri.clone();
        *again.version_mut() = parts.version;
        *again.headers_mut() = parts.headers.clone();
        again
    });
    let out = Request::from_parts(parts, Body::new(body));

    let sent = match h2 {
        // Boxed: the HTTP/2 path with its retry would make every
        // request's future (allocated whole by axum) kilobytes larger.
        Some((h2, sender)) => Box::pin(send_over_h2(h2, sender, route, out, replay))
            .await
            .map(|r| (r, None)),
        None => h1
            .send(
                h1::Pool::Worker(crate::workers::index()),
                route,
                out,
                replay,
            )
            .await
            .map(|(r, lease)| (r, Some(lease))),
    };
    let (resp, lease) = match sent {
        Ok(r) => {
            after_upload(request_read).await;
            r
        }
        Err(failure) => {
            tracing::warn!(host, backend = %route.backend, error = %failure, "proxy request failed");
            return failure.page(host);
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_side) = client_side
    {
        if let Some(lease) = lease {
            lease.keep();
        }
        return splice(resp, client_side);
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(h1::Answer::new(body, lease)))
}

/// Sends over the worker's HTTP/2 connection; once more on a new one
/// when the request was not sent or the backend refused it unprocessed
/// ([`again`]).
async fn send_over_h2(
    h2: &h2::H2,
    sender: h2::Conn,
    route: &ProxyRoute,
    out: Request,
    replay: Option<Request>,
) -> Result<hyper::Response<hyper::body::Incoming>, Failure> {
    let (id, sender) = sender;
    let sent = match send_h2(sender, route, out).await {
        Err(e) => match again(e, replay) {
            Ok(out) => {
                h2.retire(crate::workers::index(), id);
                match h2.sender(crate::workers::index(), route).await {
                    Ok(Some((_, sender))) => send_h2(sender, route, out).await,
                    Ok(None) => Err(SendError::Failed(Failure::Unreachable(
                        "the backend stopped speaking HTTP/2".into(),
                    ))),
                    Err(f) => Err(SendError::Failed(f)),
                }
            }
            Err(f) => Err(SendError::Failed(f)),
        },
        ok => ok,
    };
    sent.map_err(|e| {
        let f = e.failure();
        if let Failure::Unreachable(_) = &f {
            h2.forget();
        }
        f
    })
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

#[path = "proxy_h1.rs"]
mod h1;
#[path = "proxy_h2.rs"]
mod h2;
#[path = "proxy_send.rs"]
mod send;
pub(crate) use send::{Failure, failure};
use send::{Lingering, SendError, after_upload, again, answer, replayable, send_h2, tcp};

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
