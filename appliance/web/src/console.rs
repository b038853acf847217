//! The admin console: a handful of static files compiled into the binary
//! (plain ES modules and one stylesheet; nothing to build, no CDN). It is a
//! pure client of `/api/v1/`.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../assets/index.html");
const STYLE: &str = include_str!("../assets/style.css");
const ICON: &str = include_str!("../assets/icon.svg");

/// The console's modules: app.js and one per page that would make it too long.
const MODULES: &[(&str, &str)] = &[
    ("/assets/app.js", include_str!("../assets/app.js")),
    ("/assets/dns.js", include_str!("../assets/dns.js")),
    ("/assets/graphs.js", include_str!("../assets/graphs.js")),
    ("/assets/mail.js", include_str!("../assets/mail.js")),
    ("/assets/pgha.js", include_str!("../assets/pgha.js")),
    ("/assets/cluster.js", include_str!("../assets/cluster.js")),
    ("/assets/reaction.js", include_str!("../assets/reaction.js")),
    ("/assets/net.js", include_str!("../assets/net.js")),
    ("/assets/rows.js", include_str!("../assets/rows.js")),
    ("/assets/update.js", include_str!("../assets/update.js")),
    ("/assets/vpn.js", include_str!("../assets/vpn.js")),
    (
        "/assets/integrator.js",
        include_str!("../assets/integrator.js"),
    ),
    (
        "/assets/integrator-data.js",
        include_str!("../assets/integrator-data.js"),
    ),
    (
        "/assets/integrator-packages.js",
        include_str!("../assets/integrator-packages.js"),
    ),
    (
        "/assets/integrator-config.js",
        include_str!("../assets/integrator-config.js"),
    ),
];

fn asset(body: &'static str, kind: &'static str, cache: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let router = Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/icon.svg",
            get(|| async { asset(ICON, "image/svg+xml", "max-age=86400") }),
        );
    MODULES.iter().fold(router, |r, &(path, body)| {
        r.route(
            path,
            get(move || async move { asset(body, "text/javascript; charset=utf-8", "no-cache") }),
        )
    })
}
