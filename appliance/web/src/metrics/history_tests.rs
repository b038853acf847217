//! The ring, the rates and the sampler's clock.

use std::sync::atomic::{AtomicU32, Ordering};

use alpharen_rpc::services::ServiceMetrics;
use serde_json::json;

use super::*;
use crate::metrics::series;

fn counter(key: &str, value: f64) -> Reading {
    Reading {
        key: key.into(),
        unit: "%",
        kind: Kind::Counter,
        scale: 100.0,
        value,
    }
}

fn gauge(key: &str, value: f64) -> Reading {
    Reading {
        key: key.into(),
        unit: "bytes",
        kind: Kind::Gauge,
        scale: 1.0,
        value,
    }
}

fn values<'a>(a: &'a Answer, key: &str) -> &'a [Option<f64>] {
    &a.series.iter().find(|s| s.key == key).unwrap().values
}

#[test]
fn rates_need_a_previous_value_and_a_counter_that_did_not_go_down() {
    assert_eq!(rate(None, 5.0, 10.0, 1.0), None);
    assert_eq!(rate(Some(5.0), 25.0, 10.0, 1.0), Some(2.0));
    assert_eq!(rate(Some(1.0), 1.5, 10.0, 100.0), Some(5.0));
    assert_eq!(rate(Some(9.0), 2.0, 10.0, 1.0), None, "a restart");
    assert_eq!(rate(Some(1.0), 2.0, 0.0, 1.0), None);
}

#[test]
fn counters_become_rates_and_gauges_stay() {
    let mut h = History::new(POINTS);
    h.record(
        1000,
        0.0,
        vec![counter("cpu/web", 1.0), gauge("rss/web", 4096.0)],
    );
    h.record(
        1010,
        10.0,
        vec![counter("cpu/web", 1.5), gauge("rss/web", 8192.0)],
    );
    let a = h.answer(PERIOD);
    assert_eq!(a.times, vec![1000, 1010]);
    assert_eq!(values(&a, "cpu/web"), &[None, Some(5.0)]);
    assert_eq!(values(&a, "rss/web"), &[Some(4096.0), Some(8192.0)]);
    assert_eq!(a.series[0].unit, "%");
}

#[test]
fn a_missing_reading_is_a_gap_and_a_new_series_starts_with_gaps() {
    let mut h = History::new(POINTS);
    h.record(0, 0.0, vec![gauge("rss/web", 1.0)]);
    h.record(10, 10.0, vec![gauge("rss/mail", 2.0)]);
    h.record(
        20,
        20.0,
        vec![gauge("rss/web", 3.0), gauge("rss/mail", 4.0)],
    );
    let a = h.answer(PERIOD);
    assert_eq!(values(&a, "rss/web"), &[Some(1.0), None, Some(3.0)]);
    assert_eq!(values(&a, "rss/mail"), &[None, Some(2.0), Some(4.0)]);
}

#[test]
fn a_counter_after_a_gap_starts_over() {
    let mut h = History::new(POINTS);
    h.record(0, 0.0, vec![counter("cpu/x", 1.0)]);
    h.record(10, 10.0, vec![]);
    h.record(20, 20.0, vec![counter("cpu/x", 3.0)]);
    h.record(30, 30.0, vec![counter("cpu/x", 3.1)]);
    let got = values(&h.answer(PERIOD), "cpu/x").to_vec();
    assert_eq!(got[..3], [None, None, None]);
    assert!((got[3].unwrap() - 1.0).abs() < 1e-9, "{got:?}");
}

#[test]
fn the_ring_keeps_its_capacity_and_drops_series_gone_for_a_window() {
    let mut h = History::new(3);
    h.record(0, 0.0, vec![gauge("rss/old", 1.0), gauge("rss/web", 1.0)]);
    for i in 1..5 {
        h.record(i * 10, (i * 10) as f64, vec![gauge("rss/web", i as f64)]);
    }
    let a = h.answer(PERIOD);
    assert_eq!(a.times, vec![20, 30, 40]);
    assert_eq!(values(&a, "rss/web"), &[Some(2.0), Some(3.0), Some(4.0)]);
    assert!(a.series.iter().all(|s| s.key != "rss/old"), "{a:?}");
    assert!(a.series.iter().all(|s| s.values.len() == 3));
}

#[test]
fn the_charted_figures_come_from_the_scrape_series() {
    let mut all = series::services(&[ServiceMetrics {
        name: "dpx".into(),
        kind: "builtin".into(),
        state: "running".into(),
        restarts: 0,
        rss_bytes: Some(4096),
        cpu_seconds: Some(2.5),
    }]);
    all.extend(series::of_status(
        "dpx",
        &json!({"queries": {"by_rcode": {"NOERROR": 7, "NXDOMAIN": 3}, "by_type": {"A": 10}}}),
    ));
    all.extend(series::of_status(
        "vpn",
        &json!({"running": true, "peers": [
            {"name": "a", "enabled": true, "rx_bytes": 100, "tx_bytes": 5},
            {"name": "b", "enabled": true, "rx_bytes": 50, "tx_bytes": 5}]}),
    ));
    all.extend(series::of_status("mail", &json!({"queued": 4})));
    all.extend(series::of_status(
        "integrator",
        &json!({"in_flight": 2, "queues": [
            {"topic": "orders", "subscriber": "a", "ready": 3, "in_flight": 1, "dead": 2},
            {"topic": "(invoke_async)", "subscriber": "b", "ready": 5, "in_flight": 0, "dead": 0}]}),
    ));
    let got: Vec<(String, f64)> = readings(&all, 42.0)
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect();
    let want = [
        ("web_requests", 42.0),
        ("rss/dpx", 4096.0),
        ("cpu/dpx", 2.5),
        ("dns_answers", 10.0),
        ("vpn_rx", 150.0),
        ("vpn_tx", 10.0),
        ("mail_queue", 4.0),
        ("integrator_in_flight", 2.0),
        ("queue_depth", 9.0),
        ("queue_dead", 2.0),
    ];
    assert_eq!(
        got,
        want.map(|(k, v)| (k.to_string(), v)).to_vec(),
        "in the order of the series"
    );
}

#[test]
fn an_integrator_without_queues_charts_zero() {
    let got: Vec<(String, f64)> = readings(
        &series::of_status("integrator", &json!({"queues": []})),
        0.0,
    )
    .into_iter()
    .map(|r| (r.key, r.value))
    .collect();
    assert!(got.contains(&("queue_depth".into(), 0.0)), "{got:?}");
    assert!(got.contains(&("queue_dead".into(), 0.0)), "{got:?}");
}

#[test]
fn a_service_without_a_status_has_no_chart_of_it() {
    let got = readings(&series::of_status("dpx", &json!({})), 0.0);
    assert_eq!(got.len(), 1, "only web_requests: {got:?}");
}

#[test]
fn the_answer_rounds_to_two_decimals() {
    let mut h = History::new(POINTS);
    h.record(0, 0.0, vec![gauge("g", 1.23456)]);
    assert_eq!(values(&h.answer(PERIOD), "g"), &[Some(1.23)]);
}

/// The sampler reads at once, then every period; the rate uses the time
/// between reads on its own clock.
#[tokio::test(start_paused = true)]
async fn the_sampler_reads_every_period() {
    let history = Arc::new(Mutex::new(History::new(POINTS)));
    let reads = Arc::new(AtomicU32::new(0));
    let r = reads.clone();
    let task = tokio::spawn(run(history.clone(), PERIOD, move || {
        let n = r.fetch_add(1, Ordering::SeqCst);
        // One CPU second every sample: 10 % of one core.
        async move { vec![counter("cpu/web", f64::from(n))] }
    }));
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(reads.load(Ordering::SeqCst), 3, "at 0, 10 and 20 s");
    let a = history.lock().unwrap().answer(PERIOD);
    assert_eq!(a.times.len(), 3);
    assert_eq!(values(&a, "cpu/web"), &[None, Some(10.0), Some(10.0)]);
    assert_eq!(a.interval_secs, 10);
    task.abort();
}
