//! The web service's own figures: requests by route class and status, and
//! how long they took to answer. Counted in process by the layer around
//! the whole router (`crate::api::middleware::front`), so refused (401, 413, busy 503) and proxied requests
//! count too. Routes are grouped into a fixed set of classes, never the
//! raw path, so a client cannot make the series grow without bound.

use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// Labels of `alpharen_http_requests_total`: route class and status.
/// Static strings and a number, so counting a request allocates nothing.
pub type RequestLabels = ([(&'static str, &'static str); 1], [(&'static str, u16); 1]);
/// Labels of `alpharen_http_request_duration_seconds`.
pub type RouteLabels = [(&'static str, &'static str); 1];

/// Upper bounds of the latency buckets, in seconds: API calls answer in
/// milliseconds, a config apply that reconciles services in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Every route class: the fixed ones, then the first path segments
/// under `/api/v1/` that are routes (`api/<seg>`); anything else there
/// is `api/other`.
const CLASSES: [&str; 20] = [
    "proxy",
    "metrics",
    "dyndns",
    "console",
    "api/other",
    "api/health",
    "api/setup",
    "api/session",
    "api/status",
    "api/services",
    "api/config",
    "api/logs",
    "api/users",
    "api/tokens",
    "api/vpn",
    "api/integrator",
    "api/backup",
    "api/system",
    "api/metrics",
    "api/openapi.json",
];
const FIRST_API_ROUTE: usize = 5;

/// A request's route class, the `route` label of its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteClass(usize);

impl RouteClass {
    /// A request forwarded by a `[[dpx.routes]]` entry.
    pub const PROXY: RouteClass = RouteClass(0);
    const METRICS: RouteClass = RouteClass(1);
    const DYNDNS: RouteClass = RouteClass(2);
    const CONSOLE: RouteClass = RouteClass(3);
    const API_OTHER: RouteClass = RouteClass(4);

    pub fn name(self) -> &'static str {
        CLASSES[self.0]
    }
}

/// Shared by every request; the families are handles on the same counts,
/// so each scrape registers clones of them.
#[derive(Clone)]
pub struct Http {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
    /// All requests, for the dashboard's requests/s chart (`history`).
    pub answered: Counter,
    /// Per class, handles on its series in the families, taken on first
    /// use: counting a request then hashes no labels and takes no
    /// family's lock.
    hot: Arc<[Hot; CLASSES.len()]>,
}

#[derive(Default)]
struct Hot {
    duration: OnceLock<Histogram>,
    /// Its `200` answers, by far the most common; other statuses are
    /// looked up in the family.
    ok: OnceLock<Counter>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            answered: Counter::default(),
            hot: Arc::new(std::array::from_fn(|_| Hot::default())),
        }
    }
}

impl Http {
    pub fn observe(&self, class: RouteClass, status: u16, seconds: f64) {
        let route = class.name();
        let hot = &self.hot[class.0];
        hot.duration
            .get_or_init(|| self.duration.get_or_create(&[("route", route)]).clone())
            .observe(seconds);
        let labels = ([("route", route)], [("status", status)]);
        match status {
            200 => hot
                .ok
                .get_or_init(|| self.requests.get_or_create(&labels).clone())
                .inc(),
            _ => self.requests.get_or_create(&labels).inc(),
        };
        self.answered.inc();
    }
}

/// The class of a request's path: `metrics`, `dyndns`, `api/<route>`,
/// `api/other` or `console` (the static files and anything else); a
/// proxied request is counted as `proxy` instead.
pub fn route_class(path: &str) -> RouteClass {
    if path == "/metrics" {
        return RouteClass::METRICS;
    }
    if path == "/nic/update" {
        return RouteClass::DYNDNS;
    }
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        let seg = rest.split('/').next().unwrap_or_default();
        return CLASSES[FIRST_API_ROUTE..]
            .iter()
            .position(|r| r.strip_prefix("api/") == Some(seg))
            .map_or(RouteClass::API_OTHER, |i| RouteClass(FIRST_API_ROUTE + i));
    }
    if path.starts_with("/api/") {
        return RouteClass::API_OTHER;
    }
    RouteClass::CONSOLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_into_few_classes() {
        let route_class = |p: &str| route_class(p).name();
        assert_eq!(route_class("/metrics"), "metrics");
        assert_eq!(route_class("/nic/update"), "dyndns");
        assert_eq!(route_class("/api/v1/metrics/history"), "api/metrics");
        assert_eq!(route_class("/api/v1/config/history"), "api/config");
        assert_eq!(route_class("/api/v1/integrator/services"), "api/integrator");
        assert_eq!(route_class("/api/v1/openapi.json"), "api/openapi.json");
        assert_eq!(route_class("/api/v1/../../etc"), "api/other");
        assert_eq!(route_class("/api/v1/"), "api/other");
        assert_eq!(route_class("/api/v2/x"), "api/other");
        assert_eq!(route_class("/"), "console");
        assert_eq!(route_class("/app.js"), "console");
        // The classes are numbered by hand: each number names its class.
        assert_eq!(route_class("/api/v1/health"), "api/health");
        assert_eq!(RouteClass::PROXY.name(), "proxy");
    }
}
