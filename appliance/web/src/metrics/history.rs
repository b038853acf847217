//! The dashboard's last hour (`GET /api/v1/metrics/history`): a sampler
//! task reads the same figures a `/metrics` scrape gathers every
//! [`PERIOD`] and keeps [`POINTS`] of them per series in memory, so the
//! console draws its charts without a time-series database. Counters
//! become per-second rates between two samples (CPU seconds become % of
//! one core); a counter that went down (its service restarted) gives no
//! point rather than a negative rate. Memory is bounded: a fixed set of
//! series plus two per supervised service, each at most [`POINTS`]
//! values; a series absent for a whole window is dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::series::{Kind, Series};
use crate::App;

/// How often the sampler reads the figures.
pub const PERIOD: Duration = Duration::from_secs(10);
/// Points kept per series: one hour at [`PERIOD`].
pub const POINTS: usize = 360;

/// One figure read at one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The series' key in the answer, e.g. `cpu/web` or `dns_answers`.
    pub key: String,
    /// The unit of the point (after a counter became a rate).
    pub unit: &'static str,
    pub kind: Kind,
    /// A counter's rate is multiplied by this (100: seconds/s to %).
    pub scale: f64,
    pub value: f64,
}

/// What the dashboard charts, picked from the series of one gather
/// (`render::all_series`) and the web service's own request count.
pub fn readings(series: &[Series], http_requests: f64) -> Vec<Reading> {
    let mut out = Vec::new();
    let mut add = |key: String, unit, kind, scale, value| {
        out.push(Reading {
            key,
            unit,
            kind,
            scale,
            value,
        })
    };
    add(
        "web_requests".into(),
        "req/s",
        Kind::Counter,
        1.0,
        http_requests,
    );
    for s in series {
        let total = || s.rows.iter().map(|(_, v)| v).sum::<f64>();
        let per_service = |prefix: &'static str| {
            s.rows.iter().filter_map(move |(labels, v)| {
                let svc = labels.iter().find(|(k, _)| *k == "service")?;
                Some((format!("{prefix}/{}", svc.1), *v))
            })
        };
        match s.name {
            "alpharen_service_cpu_seconds" => {
                for (key, v) in per_service("cpu") {
                    add(key, "%", Kind::Counter, 100.0, v);
                }
            }
            "alpharen_service_resident_memory_bytes" => {
                for (key, v) in per_service("rss") {
                    add(key, "bytes", Kind::Gauge, 1.0, v);
                }
            }
            "alpharen_dns_answers_by_rcode" if !s.rows.is_empty() => add(
                "dns_answers".into(),
                "answers/s",
                Kind::Counter,
                1.0,
                total(),
            ),
            "alpharen_vpn_peer_received_bytes" if !s.rows.is_empty() => {
                add("vpn_rx".into(), "bytes/s", Kind::Counter, 1.0, total())
            }
            "alpharen_vpn_peer_sent_bytes" if !s.rows.is_empty() => {
                add("vpn_tx".into(), "bytes/s", Kind::Counter, 1.0, total())
            }
            "alpharen_mail_queued_messages" if !s.rows.is_empty() => {
                add("mail_queue".into(), "messages", Kind::Gauge, 1.0, total())
            }
            // Present whenever the integrator answered: no queue is 0.
            "alpharen_integrator_queue_messages" => {
                let sum = |dead: bool| {
                    s.rows
                        .iter()
                        .filter(|(labels, _)| {
                            labels
                                .iter()
                                .any(|(k, v)| *k == "state" && (v == "dead") == dead)
                        })
                        .map(|(_, v)| v)
                        .sum::<f64>()
                };
                add(
                    "queue_depth".into(),
                    "messages",
                    Kind::Gauge,
                    1.0,
                    sum(false),
                );
                add("queue_dead".into(), "messages", Kind::Gauge, 1.0, sum(true));
            }
            "alpharen_integrator_in_flight_calls" if !s.rows.is_empty() => add(
                "integrator_in_flight".into(),
                "calls",
                Kind::Gauge,
                1.0,
                total(),
            ),
            _ => {}
        }
    }
    out
}

/// The rate of a counter between two samples `secs` apart, times
/// `scale`; none without a previous value, or when the counter went down
/// (its service restarted and counts from zero again).
pub fn rate(prev: Option<f64>, cur: f64, secs: f64, scale: f64) -> Option<f64> {
    let prev = prev?;
    if secs <= 0.0 || cur < prev {
        return None;
    }
    Some((cur - prev) / secs * scale)
}

#[derive(Debug)]
struct Track {
    unit: &'static str,
    values: VecDeque<Option<f64>>,
    /// A counter's raw value at the previous sample.
    prev: Option<f64>,
}

/// The ring: one timestamp per sample and, aligned with them, one value
/// (or none) per series.
#[derive(Debug)]
pub struct History {
    cap: usize,
    times: VecDeque<i64>,
    tracks: BTreeMap<String, Track>,
    /// When the previous sample was read, in seconds on the sampler's clock.
    last: Option<f64>,
}

/// The answer of `GET /api/v1/metrics/history`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Answer {
    pub interval_secs: u64,
    /// Unix seconds of each sample, oldest first.
    pub times: Vec<i64>,
    pub series: Vec<SeriesAnswer>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SeriesAnswer {
    pub key: String,
    pub unit: &'static str,
    /// One per entry of `times`; `null` where there is no point.
    pub values: Vec<Option<f64>>,
}

impl History {
    pub fn new(cap: usize) -> History {
        History {
            cap,
            times: VecDeque::with_capacity(cap),
            tracks: BTreeMap::new(),
            last: None,
        }
    }

    /// Adds one sample read at `unix` (wall clock, for the answer) and
    /// `mono` seconds (monotonic, for the rates).
    pub fn record(&mut self, unix: i64, mono: f64, readings: Vec<Reading>) {
        let secs = self.last.map_or(0.0, |last| mono - last);
        self.last = Some(mono);
        let before = self.times.len();
        self.times.push_back(unix);
        let mut seen = Vec::with_capacity(readings.len());
        for r in readings {
            let track = self.tracks.entry(r.key.clone()).or_insert_with(|| Track {
                unit: r.unit,
                values: std::iter::repeat_n(None, before).collect(),
                prev: None,
            });
            let point = match r.kind {
                Kind::Gauge => Some(r.value),
                Kind::Counter => rate(track.prev, r.value, secs, r.scale),
            };
            track.prev = (r.kind == Kind::Counter).then_some(r.value);
            track.unit = r.unit;
            track.values.push_back(point.filter(|v| v.is_finite()));
            seen.push(r.key);
        }
        for (key, track) in &mut self.tracks {
            if track.values.len() == before {
                track.values.push_back(None);
                if !seen.contains(key) {
                    track.prev = None;
                }
            }
        }
        if self.times.len() > self.cap {
            self.times.pop_front();
            for track in self.tracks.values_mut() {
                track.values.pop_front();
            }
        }
        self.tracks
            .retain(|_, t| t.values.iter().any(Option::is_some) || t.prev.is_some());
    }

    pub fn answer(&self, interval: Duration) -> Answer {
        Answer {
            interval_secs: interval.as_secs(),
            times: self.times.iter().copied().collect(),
            series: self
                .tracks
                .iter()
                .map(|(key, t)| SeriesAnswer {
                    key: key.clone(),
                    unit: t.unit,
                    values: t.values.iter().map(|v| v.map(round)).collect(),
                })
                .collect(),
        }
    }
}

/// Two decimals are all a 300-pixel chart can show; they keep the answer small.
fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Samples every `period` with `read` into `history`, forever. The first
/// sample is taken at once; a slow read delays the next one rather than
/// bunching them.
pub async fn run<F, Fut>(history: Arc<Mutex<History>>, period: Duration, mut read: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Vec<Reading>>,
{
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let readings = read().await;
        let mono = start.elapsed().as_secs_f64();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(unix, mono, readings);
    }
}

/// The web service's sampler: what a `/metrics` scrape gathers, read
/// by the same code.
pub async fn sample(app: Arc<App>) {
    let history = app.history.clone();
    run(history, PERIOD, || async {
        let snapshot = super::gather::gather(&app.socket).await;
        readings(
            &super::render::all_series(&snapshot),
            app.http.answered.get() as f64,
        )
    })
    .await
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
