//! The backup controller's timing, as the seed has it, in plain functions
//! of Unix time: a window of UTC hours on chosen weekdays, at most one run
//! per window day, none in the first 15 minutes after the service starts,
//! a retry no sooner than 20 minutes after a failure. Also the storage
//! path templates.

use crate::clock::{self, Utc};

/// Seed: "starts not earlier than 15 minutes later" after a restart.
pub const START_DELAY: i64 = 15 * 60;
/// Seed: "The next attempt will be made ... in 20 minutes at the earliest."
pub const RETRY_AFTER: i64 = 20 * 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// ISO weekdays (1 = Monday); empty means every day.
    pub weekdays: Vec<u8>,
    /// `[from, to)` hours in UTC, wrapping past midnight; `from == to` is
    /// the whole day.
    pub hours: [u8; 2],
}

/// What the controller remembers between runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    pub started_at: i64,
    /// The window day (Unix day number) of the last successful run.
    pub done_day: Option<i64>,
    pub last_failure: Option<i64>,
}

impl Schedule {
    /// The window day `now` falls in, if any: the day the window opened,
    /// so a `[20, 3]` window is one run from 20:00 to 02:59 next morning.
    pub fn window_day(&self, now: i64) -> Option<i64> {
        let [from, to] = self.hours.map(i64::from);
        let hour = now.rem_euclid(86_400) / 3600;
        let today = now.div_euclid(86_400);
        let inside = match from.cmp(&to) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => (from..to).contains(&hour),
            std::cmp::Ordering::Greater => hour >= from || hour < to,
        };
        if !inside {
            return None;
        }
        // Past midnight in a wrapping window: the window opened yesterday.
        let day = if from > to && hour < to {
            today - 1
        } else {
            today
        };
        let weekday = clock::weekday(&clock::from_unix(day * 86_400));
        (self.weekdays.is_empty() || self.weekdays.iter().any(|&d| u32::from(d) == weekday))
            .then_some(day)
    }

    /// Whether a run should start now; the day it counts for.
    pub fn due(&self, now: i64, m: &Memory) -> Option<i64> {
        if now < m.started_at + START_DELAY {
            return None;
        }
        if m.last_failure.is_some_and(|f| now < f + RETRY_AFTER) {
            return None;
        }
        self.window_day(now).filter(|d| m.done_day != Some(*d))
    }

    /// When the next run starts on its own (`now` if one is due), for the
    /// status; `None` when no day of the coming two weeks has a window.
    /// Windows open on the hour, so the hours after the start and retry
    /// delays are the only times to try.
    pub fn next_run(&self, now: i64, m: &Memory) -> Option<i64> {
        let earliest = [
            Some(now),
            Some(m.started_at + START_DELAY),
            m.last_failure.map(|f| f + RETRY_AFTER),
        ]
        .into_iter()
        .flatten()
        .max()?;
        let first_hour = earliest.div_euclid(3600) + 1;
        std::iter::once(earliest)
            .chain((0..14 * 24).map(|h| (first_hour + h) * 3600))
            .find(|&t| self.due(t, m).is_some())
    }
}

/// `%weekday` (1-7), `%day` (01-31), `%month` (01-12), `%year` (0000).
pub fn expand(template: &str, at: &Utc) -> String {
    template
        .replace("%weekday", &at.format("%u").to_string())
        .replace("%day", &at.format("%d").to_string())
        .replace("%month", &at.format("%m").to_string())
        .replace("%year", &at.format("%Y").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23 (a Monday) at `h`:00 UTC.
    fn monday(h: i64) -> i64 {
        1_795_392_000 + h * 3600
    }

    fn night() -> Schedule {
        Schedule {
            weekdays: vec![1, 3],
            hours: [20, 3],
        }
    }

    #[test]
    fn a_wrapping_window_belongs_to_the_day_it_opened() {
        let s = night();
        let day = 1_795_392_000 / 86_400;
        assert_eq!(s.window_day(monday(19)), None);
        assert_eq!(s.window_day(monday(20)), Some(day));
        // Tuesday 02:00 is still Monday's window; 03:00 is outside.
        assert_eq!(s.window_day(monday(26)), Some(day));
        assert_eq!(s.window_day(monday(27)), None);
        // Tuesday evening is not a chosen weekday.
        assert_eq!(s.window_day(monday(44)), None);
        let day_time = Schedule {
            weekdays: vec![],
            hours: [9, 17],
        };
        assert_eq!(day_time.window_day(monday(8)), None);
        assert_eq!(day_time.window_day(monday(9)), Some(day));
        assert_eq!(day_time.window_day(monday(17)), None);
    }

    #[test]
    fn once_per_window_day_and_not_right_after_start() {
        let s = night();
        let mut m = Memory {
            started_at: monday(20),
            ..Memory::default()
        };
        assert_eq!(s.due(monday(20), &m), None, "15 minutes after start first");
        let day = s.due(monday(20) + START_DELAY, &m).unwrap();
        m.done_day = Some(day);
        assert_eq!(s.due(monday(22), &m), None);
        // Wednesday's window is a new day.
        assert!(s.due(monday(48 + 20), &m).is_some());
    }

    #[test]
    fn a_failure_is_retried_after_twenty_minutes() {
        let s = night();
        let m = Memory {
            started_at: 0,
            done_day: None,
            last_failure: Some(monday(21)),
        };
        assert_eq!(s.due(monday(21) + RETRY_AFTER - 1, &m), None);
        assert!(s.due(monday(21) + RETRY_AFTER, &m).is_some());
    }

    #[test]
    fn the_next_run_is_the_next_open_window_after_the_delays() {
        let s = night();
        let mut m = Memory {
            started_at: 0,
            ..Memory::default()
        };
        assert_eq!(s.next_run(monday(12), &m), Some(monday(20)));
        assert_eq!(s.next_run(monday(21), &m), Some(monday(21)), "due now");
        m.last_failure = Some(monday(21));
        assert_eq!(s.next_run(monday(21), &m), Some(monday(21) + RETRY_AFTER));
        m.last_failure = None;
        m.done_day = s.window_day(monday(21));
        assert_eq!(
            s.next_run(monday(21), &m),
            Some(monday(48 + 20)),
            "Wednesday"
        );
        m.started_at = monday(48 + 20);
        assert_eq!(
            s.next_run(monday(48 + 20), &m),
            Some(monday(48 + 20) + START_DELAY)
        );
        let never = Schedule {
            weekdays: vec![8],
            hours: [0, 0],
        };
        assert_eq!(never.next_run(monday(0), &m), None);
    }

    #[test]
    fn templates_expand_with_leading_zeros() {
        let at = clock::from_unix(monday(0) - 22 * 86_400); // 2026-11-01, a Sunday
        assert_eq!(
            expand("backup/dow_%weekday/%year-%month-%day", &at),
            "backup/dow_7/2026-11-01"
        );
    }
}
