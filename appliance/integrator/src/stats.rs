//! Per-service call statistics for `integrator.stats`: counts, errors,
//! mean and p99 over the most recent calls, and the latest calls' times.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

/// How many recent durations feed the percentile.
const WINDOW: usize = 2048;

/// How many of the latest durations are listed (`recent_ms`, the console's
/// sparkline).
const SPARK: usize = 30;

#[derive(Default)]
struct One {
    calls: u64,
    errors: u64,
    total_us: u128,
    recent: VecDeque<u64>,
}

#[derive(Default)]
pub struct Stats {
    by_service: HashMap<String, One>,
}

impl Stats {
    pub fn record(&mut self, service: &str, micros: u64, error: bool) {
        let one = self.by_service.entry(service.to_string()).or_default();
        one.calls += 1;
        one.errors += u64::from(error);
        one.total_us += u128::from(micros);
        if one.recent.len() == WINDOW {
            one.recent.pop_front();
        }
        one.recent.push_back(micros);
    }

    pub fn to_json(&self) -> Value {
        let mut names: Vec<&String> = self.by_service.keys().collect();
        names.sort();
        let list: Vec<Value> = names
            .into_iter()
            .filter_map(|n| self.by_service.get(n).map(|o| (n, o)))
            .map(|(name, o)| {
                let mut v: Vec<u64> = o.recent.iter().copied().collect();
                let recent: Vec<f64> = v[v.len().saturating_sub(SPARK)..]
                    .iter()
                    .map(|&us| ms(us as f64))
                    .collect();
                json!({
                    "service": name,
                    "calls": o.calls,
                    "errors": o.errors,
                    "mean_ms": if o.calls == 0 { 0.0 } else { ms(o.total_us as f64 / o.calls as f64) },
                    "p99_ms": ms(percentile(&mut v, 99.0) as f64),
                    "recent_ms": recent,
                })
            })
            .collect();
        Value::Array(list)
    }
}

/// Microseconds → milliseconds, rounded to the microsecond.
fn ms(us: f64) -> f64 {
    us.round() / 1000.0
}

/// Nearest-rank percentile; 0 for no samples.
pub fn percentile(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 99.0), 99);
        assert_eq!(percentile(&mut [5], 99.0), 5);
        assert_eq!(percentile(&mut [], 99.0), 0);
    }

    #[test]
    fn record_counts_errors_and_mean() {
        let mut s = Stats::default();
        s.record("a", 1000, false);
        s.record("a", 3000, true);
        let j = s.to_json();
        assert_eq!(j[0]["calls"], 2);
        assert_eq!(j[0]["errors"], 1);
        assert_eq!(j[0]["mean_ms"], 2.0);
        assert_eq!(j[0]["recent_ms"], json!([1.0, 3.0]));
    }

    #[test]
    fn recent_lists_the_latest_calls_in_order() {
        let mut s = Stats::default();
        for i in 0..40u64 {
            s.record("a", 1000 * (40 - i), false);
        }
        let j = s.to_json();
        let r = j[0]["recent_ms"].as_array().unwrap();
        assert_eq!(r.len(), SPARK);
        assert_eq!(r[0], 30.0);
        assert_eq!(r[SPARK - 1], 1.0);
    }
}
