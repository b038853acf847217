//! The answer's text: the gathered series and the web service's own
//! families, put in a registry made for this scrape and encoded in the
//! Prometheus text format 0.0.4 (`prometheus-client`). A registry per
//! scrape, because the gathered values are the services' now, not
//! counts this process keeps; a series with no rows is left out rather
//! than announced empty.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::gather::Snapshot;
use super::http::Http;
use super::series::{self, Kind, Labels, Series};

/// Every series of one scrape, in the order they are written.
pub fn all_series(snapshot: &Snapshot) -> Vec<Series> {
    let mut all = series::services(&snapshot.services);
    all.push(series::status_ok(&snapshot.statuses));
    for (name, answer) in &snapshot.statuses {
        if let Some(v) = answer {
            all.extend(series::of_status(name, v));
        }
    }
    all
}

fn register(reg: &mut Registry, s: Series) {
    if s.rows.is_empty() {
        return;
    }
    match s.kind {
        Kind::Gauge => {
            let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
            for (labels, v) in &s.rows {
                family.get_or_create(labels).set(*v);
            }
            reg.register(s.name, s.help, family);
        }
        Kind::Counter => {
            let family = Family::<Labels, Counter<f64, AtomicU64>>::default();
            for (labels, v) in &s.rows {
                family.get_or_create(labels).inc_by(*v);
            }
            reg.register(s.name, s.help, family);
        }
    }
}

pub fn render(snapshot: &Snapshot, http: &Http) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::default();
    for s in all_series(snapshot) {
        register(&mut reg, s);
    }
    reg.register(
        "alpharen_http_requests",
        "Requests the web service answered, by route class and status",
        http.requests.clone(),
    );
    reg.register(
        "alpharen_http_request_duration_seconds",
        "Time until the answer's head was ready, by route class",
        http.duration.clone(),
    );
    let mut out = String::new();
    prometheus_text::encode(&mut out, &reg)?;
    Ok(out)
}
