//! The admin console: a handful of static files compiled into the binary
//! (plain ES modules and one stylesheet; nothing to build, no CDN). It is a
//! pure client of `/api/v1/`.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const INTEGRATOR_JS: &str = include_str!("../assets/integrator.js");
const INTEGRATOR_DATA_JS: &str = include_str!("../assets/integrator-data.js");
const STYLE: &str = include_str!("../assets/style.css");
const ICON: &str = include_str!("../assets/icon.svg");

fn asset(body: &'static str, kind: &'static str, cache: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/integrator.js",
            get(|| async { asset(INTEGRATOR_JS, "text/javascript; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/integrator-data.js",
            get(|| async {
                asset(
                    INTEGRATOR_DATA_JS,
                    "text/javascript; charset=utf-8",
                    "no-cache",
                )
            }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/icon.svg",
            get(|| async { asset(ICON, "image/svg+xml", "max-age=86400") }),
        )
}
