//! When a rule with `start = "scheduled"` starts its incident's flow: at
//! the next `at = "HH:MM[:SS]"` of the day, or at the next time a `cron`
//! expression names, both in the node's time zone (`[node] timezone`).
//! The config check and the engine parse them the same way (croner).

use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds};

use super::jobtime::Zone;

/// `HH:MM` or `HH:MM:SS` as (hours, minutes, seconds).
pub fn parse_at(s: &str) -> Option<(u32, u32, u32)> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let mut v = [0u32; 3];
    for (i, p) in parts.iter().enumerate() {
        v[i] = p.parse().ok()?;
    }
    (v[0] <= 23 && v[1] <= 59 && v[2] <= 59).then_some((v[0], v[1], v[2]))
}

/// A cron expression: 5 fields (minute first) or 6 (seconds first).
pub fn parse_cron(s: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(s.trim())
        .map_err(|e| e.to_string())
}

/// A rule's start time as one cron pattern: `at` is a daily cron.
pub fn rule_when(at: Option<&str>, cron: Option<&str>) -> Result<Cron, String> {
    match (at, cron) {
        (Some(a), None) => {
            let (h, m, s) = parse_at(a)
                .ok_or_else(|| format!("{a:?} is not a time of day HH:MM or HH:MM:SS"))?;
            Cron::from_str(&format!("{s} {m} {h} * * *")).map_err(|e| e.to_string())
        }
        (None, Some(c)) => parse_cron(c),
        (Some(_), Some(_)) => Err("give at or cron, not both".into()),
        (None, None) => Err("a scheduled start needs at (HH:MM) or cron".into()),
    }
}

/// The first instant (unix ms) at or after `now_ms` that `when` names,
/// read in `zone`; None when it names none (`0 0 30 2 *`).
pub fn next_start(when: &Cron, zone: &Zone, now_ms: i64) -> Option<i64> {
    let now = jiff::Timestamp::from_second(now_ms.div_euclid(1000)).ok()?;
    let next = when
        .find_next_occurrence(&now.to_zoned(zone.to_jiff()?), true)
        .ok()?
        .timestamp()
        .as_second();
    // The same second as now counts as now.
    Some((next * 1000).max(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_tz;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn at_is_the_next_daily_time() {
        let w = rule_when(Some("02:30"), None).unwrap();
        let utc = parse_tz("UTC").unwrap();
        // Later today, or tomorrow once passed.
        assert_eq!(
            next_start(&w, &utc, ms("2026-12-03T01:00:00Z")),
            Some(ms("2026-12-03T02:30:00Z"))
        );
        assert_eq!(
            next_start(&w, &utc, ms("2026-12-03T02:30:01Z")),
            Some(ms("2026-12-04T02:30:00Z"))
        );
        // Exactly at the time (within its second): now.
        let now = ms("2026-12-03T02:30:00Z") + 400;
        assert_eq!(next_start(&w, &utc, now), Some(now));
    }

    #[test]
    fn the_node_time_zone_is_used() {
        let w = rule_when(Some("02:30:15"), None).unwrap();
        let berlin = parse_tz("Europe/Berlin").unwrap();
        // Winter: UTC+1.
        assert_eq!(
            next_start(&w, &berlin, ms("2026-12-03T00:00:00Z")),
            Some(ms("2026-12-03T01:30:15Z"))
        );
        let plus2 = parse_tz("+02:00").unwrap();
        assert_eq!(
            next_start(&w, &plus2, ms("2026-12-03T00:00:00Z")),
            Some(ms("2026-12-03T00:30:15Z"))
        );
    }

    #[test]
    fn cron_with_five_or_six_fields() {
        let utc = parse_tz("UTC").unwrap();
        let w = rule_when(None, Some("15 3 * * MON")).unwrap();
        // 2026-12-03 is a Thursday.
        assert_eq!(
            next_start(&w, &utc, ms("2026-12-03T12:00:00Z")),
            Some(ms("2026-12-07T03:15:00Z"))
        );
        let w = rule_when(None, Some("*/20 * * * * *")).unwrap();
        assert_eq!(
            next_start(&w, &utc, ms("2026-12-03T12:00:01Z")),
            Some(ms("2026-12-03T12:00:20Z"))
        );
    }

    #[test]
    fn bad_times_say_why() {
        for (at, cron) in [
            (Some("25:00"), None),
            (Some("2:30"), None),
            (Some("noon"), None),
            (None, Some("61 * * * *")),
            (None, Some("* * *")),
            (Some("02:30"), Some("* * * * *")),
            (None, None),
        ] {
            assert!(rule_when(at, cron).is_err(), "{at:?} {cron:?}");
        }
    }
}
