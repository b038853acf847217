//! The front of every HTTPS request, reverse-proxied ones included: timed
//! and counted for `/metrics`, capped in number (`crate::limits`),
//! forwarded when a `[[dpx.routes]]` entry matches (`crate::proxy`), else
//! handed to the node's own router behind `crate::limits::guard`, and
//! given the security headers. It runs outside axum, as the connection's
//! hyper service: the router has no layer, so no request pays for
//! middleware boxing, and a proxied one not even for route matching.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;

use crate::App;
use crate::metrics::http::{RouteClass, route_class};

/// An answer whose head took this long is logged: a console that
/// seems to hang shows up in the web service's log.
const SLOW_SECS: f64 = 5.0;

/// Never fails: the error type is what hyper's service wants.
pub(crate) async fn front(
    app: Arc<App>,
    router: Router,
    req: Request,
) -> Result<Response, Infallible> {
    let start = Instant::now();
    let class = route_class(req.uri().path());
    let (class, resp) = match app.limits.admit() {
        None => (class, crate::limits::busy("requests")),
        // Held until the answer's head is ready.
        Some(_in_flight) => match crate::proxy::forward_if_routed(&app, req).await {
            Ok(resp) => (RouteClass::PROXY, resp),
            Err(req) => {
                let api = req.uri().path().starts_with("/api/");
                let mut resp = crate::limits::guard(&app, req, router).await;
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
        let class = class.name();
        tracing::warn!(class, status = resp.status().as_u16(), secs, "slow answer");
    }
    Ok(resp)
}

/// Headers every answer of the node's own carries: no framing, no
/// sniffing, HTTPS only, and API answers are never cached. Names and
/// values are constants: a name given as a string is parsed on every
/// insert, and a value made with `from_static` outside a constant is
/// checked byte by byte on every answer.
fn security_headers(api: bool, resp: &mut Response) {
    use axum::http::header;
    const fn value(v: &'static str) -> HeaderValue {
        HeaderValue::from_static(v)
    }
    const SET: [(header::HeaderName, HeaderValue); 5] = [
        (header::X_CONTENT_TYPE_OPTIONS, value("nosniff")),
        (header::X_FRAME_OPTIONS, value("DENY")),
        (header::REFERRER_POLICY, value("no-referrer")),
        (header::STRICT_TRANSPORT_SECURITY, value("max-age=31536000")),
        (
            header::CONTENT_SECURITY_POLICY,
            value(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        ),
    ];
    const NO_STORE: HeaderValue = value("no-store");
    let h = resp.headers_mut();
    h.reserve(SET.len() + usize::from(api));
    for (k, v) in SET {
        h.insert(k, v);
    }
    if api {
        h.insert(header::CACHE_CONTROL, NO_STORE);
    }
}
