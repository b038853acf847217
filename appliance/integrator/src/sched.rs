//! Scheduling arithmetic (ARSCHED), kept pure so it is tested without a
//! clock: cron parsing, next-run computation with holiday calendars and
//! time zones (fixed offsets or IANA names with daylight saving), and the
//! misfire decision after downtime. Times are unix seconds (UTC); calendars
//! and cron fields are evaluated in the job's local time. A local time
//! skipped in spring runs just after the jump; one repeated in autumn runs
//! once, at its first occurrence.

use std::collections::HashSet;

use alpharen_store::config::{Job, Zone, parse_date, parse_datetime, parse_tz};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta};

/// The day number (days since 1970-01-01) of a calendar date; `None` for
/// one that does not exist.
pub fn day_number(y: i32, m: u32, d: u32) -> Option<i64> {
    let date = NaiveDate::from_ymd_opt(y, m, d)?;
    Some((date - DateTime::UNIX_EPOCH.date_naive()).num_days())
}

/// The calendar date of a day number (inverse of `day_number`).
fn date_of_day(day: i64) -> Option<NaiveDate> {
    DateTime::UNIX_EPOCH
        .date_naive()
        .checked_add_signed(TimeDelta::try_days(day)?)
}

/// Renders unix seconds as `YYYY-MM-DDTHH:MM:SSZ` for humans.
pub fn format_utc(t: i64) -> String {
    DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CronError {
    #[error("{0} fields; a cron expression has 5 (or 6 with seconds first)")]
    Fields(usize),
    #[error("field {field} ({name}): {why}")]
    Field {
        field: usize,
        name: &'static str,
        why: String,
    },
}

/// A parsed cron expression: one bit set per allowed value.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u64,
    dom: u64,
    months: u64,
    dow: u64,
    /// Vixie cron: when both day fields are restricted, either may match.
    dom_star: bool,
    dow_star: bool,
}

const FIELDS: [(&str, u32, u32); 6] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A number, or a month / weekday name (`JAN`, `mon`) in those fields.
fn value(text: &str, idx: usize) -> Option<u32> {
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    let (names, first) = match idx {
        4 => (&MONTHS[..], 1),
        5 => (&DAYS[..], 0),
        _ => return None,
    };
    let lower = text.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as u32 + first)
}

/// Vixie cron's shorthands.
fn expand_macro(expr: &str) -> &str {
    match expr.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => expr,
    }
}

fn parse_field(text: &str, idx: usize, field: usize) -> Result<u64, CronError> {
    let (name, lo, hi) = FIELDS[idx];
    let err = |why: String| CronError::Field { field, name, why };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| err(format!("step {s:?} is not a number")))?;
                if step == 0 {
                    return Err(err("step 0".into()));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = value(a, idx).ok_or_else(|| err(format!("{a:?} is not a number")))?;
            let b = value(b, idx).ok_or_else(|| err(format!("{b:?} is not a number")))?;
            (a, b)
        } else {
            let a = value(range, idx).ok_or_else(|| err(format!("{range:?} is not a number")))?;
            // `5/15` means from 5 to the end in steps of 15.
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(err(format!("{range:?} is outside {lo}-{hi}")));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parses `min hour dom month dow` or `sec min hour dom month dow`
    /// (months and weekdays also by name), or `@daily` and the like.
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let f: Vec<&str> = expand_macro(expr).split_whitespace().collect();
        let (sec, rest) = match f.len() {
            5 => ("0", &f[..]),
            6 => (f[0], &f[1..]),
            n => return Err(CronError::Fields(n)),
        };
        let off = f.len() - 5;
        let mut dow = parse_field(rest[4], 5, 5 + off)?;
        if dow & (1 << 7) != 0 {
            dow = (dow | 1) & !(1 << 7); // 7 is Sunday too
        }
        Ok(Cron {
            seconds: parse_field(sec, 0, 1)?,
            minutes: parse_field(rest[0], 1, 1 + off)?,
            hours: parse_field(rest[1], 2, 2 + off)?,
            dom: parse_field(rest[2], 3, 3 + off)?,
            months: parse_field(rest[3], 4, 4 + off)?,
            dow,
            dom_star: rest[2] == "*" || rest[2].starts_with("*/"),
            dow_star: rest[4] == "*" || rest[4].starts_with("*/"),
        })
    }

    fn day_matches(&self, day: i64) -> bool {
        let Some(date) = date_of_day(day) else {
            return false;
        };
        let (m, d) = (date.month(), date.day());
        if self.months & (1 << m) == 0 {
            return false;
        }
        let wd = date.weekday().num_days_from_sunday();
        let dom_ok = self.dom & (1 << d) != 0;
        let dow_ok = self.dow & (1 << wd) != 0;
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (false, true) => dom_ok,
            (true, false) => dow_ok,
            (false, false) => dom_ok || dow_ok,
        }
    }

    /// First second of the day at or after `from` (seconds into the day)
    /// that the time fields allow.
    fn time_on_day(&self, from: u32) -> Option<u32> {
        for h in from / 3600..24 {
            if self.hours & (1 << h) == 0 {
                continue;
            }
            for m in 0..60 {
                if self.minutes & (1 << m) == 0 {
                    continue;
                }
                for s in 0..60 {
                    let t = h * 3600 + m * 60 + s;
                    if t >= from && self.seconds & (1 << s) != 0 {
                        return Some(t);
                    }
                }
            }
        }
        None
    }
}

/// What a job's schedule is, resolved from its config.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    OneTime {
        at: i64,
    },
    Interval {
        every: i64,
        start: i64,
        end: Option<i64>,
    },
    Cron(Box<Cron>),
}

/// A job's schedule with its time zone and skipped dates.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub schedule: Schedule,
    pub zone: Zone,
    /// Local day numbers that are holidays.
    pub holidays: HashSet<i64>,
}

/// Local `YYYY-MM-DDTHH:MM[:SS]` in a zone → unix seconds.
fn local_to_unix(s: &str, zone: &Zone) -> Option<i64> {
    let ((y, m, d), secs) = parse_datetime(s)?;
    Some(zone.to_utc(day_number(y, m, d)? * 86_400 + i64::from(secs)))
}

/// Builds a job's plan; `first_seen` anchors intervals without a start.
pub fn plan(job: &Job, calendar_dates: Option<&[String]>, first_seen: i64) -> Result<Plan, String> {
    let zone = parse_tz(&job.timezone).ok_or_else(|| format!("bad timezone {:?}", job.timezone))?;
    let time = |v: &Option<String>, what: &str| -> Result<Option<i64>, String> {
        match v {
            None => Ok(None),
            Some(s) => local_to_unix(s, &zone)
                .map(Some)
                .ok_or_else(|| format!("{what}: {s:?} is not YYYY-MM-DDTHH:MM[:SS]")),
        }
    };
    let schedule = match job.kind.as_str() {
        "one_time" => Schedule::OneTime {
            at: time(&job.at, "at")?.ok_or("one_time needs at")?,
        },
        "interval" => {
            let every = job.seconds + job.minutes * 60 + job.hours * 3600 + job.days * 86_400;
            let every = i64::try_from(every).map_err(|_| "interval too long")?;
            if every == 0 {
                return Err("interval of 0 seconds".into());
            }
            Schedule::Interval {
                every,
                start: time(&job.start, "start")?.unwrap_or(first_seen),
                end: time(&job.end, "end")?,
            }
        }
        "cron" => Schedule::Cron(Box::new(
            Cron::parse(job.cron.as_deref().unwrap_or_default()).map_err(|e| e.to_string())?,
        )),
        other => return Err(format!("unknown kind {other:?}")),
    };
    let mut holidays = HashSet::new();
    for d in calendar_dates.unwrap_or_default() {
        let day = parse_date(d)
            .and_then(|(y, m, d)| day_number(y, m, d))
            .ok_or_else(|| format!("bad calendar date {d:?}"))?;
        holidays.insert(day);
    }
    Ok(Plan {
        schedule,
        zone,
        holidays,
    })
}

/// How far ahead a cron search looks before giving up (`0 0 30 2 *`).
const CRON_HORIZON_DAYS: i64 = 366 * 8;
/// Bound on holiday skips for an interval (a calendar is finite).
const MAX_SKIPS: usize = 100_000;
/// Bound on local times passed over because they were already used: an
/// hour repeated when daylight saving ends (its times run once).
const MAX_REPEATS: usize = 3_700;

impl Plan {
    fn local_day(&self, t: i64) -> i64 {
        (t + self.zone.offset_at(t)).div_euclid(86_400)
    }

    fn is_holiday(&self, t: i64) -> bool {
        !self.holidays.is_empty() && self.holidays.contains(&self.local_day(t))
    }

    /// The first run strictly after `after`, or None when there is none.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        match &self.schedule {
            Schedule::OneTime { at } => (*at > after && !self.is_holiday(*at)).then_some(*at),
            Schedule::Interval { every, start, end } => {
                let mut t = if after < *start {
                    *start
                } else {
                    start + ((after - start) / every + 1) * every
                };
                for _ in 0..MAX_SKIPS {
                    if end.is_some_and(|e| t > e) {
                        return None;
                    }
                    if !self.is_holiday(t) {
                        return Some(t);
                    }
                    // Jump to the first tick of the next local day.
                    let next_day = self.zone.to_utc((self.local_day(t) + 1) * 86_400);
                    t = start + ((next_day - start + every - 1) / every) * every;
                }
                None
            }
            Schedule::Cron(c) => {
                let mut from = after + 1 + self.zone.offset_at(after + 1);
                for _ in 0..MAX_REPEATS {
                    let local = self.next_cron_local(c, from)?;
                    let t = self.zone.to_utc(local);
                    if t > after {
                        return Some(t);
                    }
                    from = local + 1;
                }
                None
            }
        }
    }

    /// The first local wall-clock time at or after `local` that the cron
    /// fields allow, on a day that is not a holiday.
    fn next_cron_local(&self, c: &Cron, local: i64) -> Option<i64> {
        let first = local.div_euclid(86_400);
        for day in first..first + CRON_HORIZON_DAYS {
            let from = if day == first {
                local.rem_euclid(86_400) as u32
            } else {
                0
            };
            if !self.holidays.contains(&day)
                && c.day_matches(day)
                && let Some(secs) = c.time_on_day(from)
            {
                return Some(day * 86_400 + i64::from(secs));
            }
        }
        None
    }
}

/// What to do at startup with a job whose stored next run has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfire {
    /// Not late (or no next run): keep the stored schedule.
    OnTime,
    /// Late and policy `run_once`: one catch-up run now, then on schedule.
    RunOnce,
    /// Late and policy `skip`: no catch-up; resume on schedule.
    Skip,
}

/// Late means more than `grace` seconds past the stored next run.
pub fn misfire(next_run: Option<i64>, now: i64, grace: i64, policy: &str) -> Misfire {
    match next_run {
        Some(n) if n + grace < now => {
            if policy == "skip" {
                Misfire::Skip
            } else {
                Misfire::RunOnce
            }
        }
        _ => Misfire::OnTime,
    }
}

/// Sleeps until `due` (unix seconds) as seen from `now`, at most `cap`:
/// the scheduler re-reads its table after each wake, so a long sleep
/// never misses a job added meanwhile.
pub async fn sleep_until_due(due: Option<i64>, now: i64, cap: std::time::Duration) {
    let wait = due
        .map(|d| std::time::Duration::from_secs(d.saturating_sub(now).max(0) as u64))
        .unwrap_or(cap)
        .min(cap);
    tokio::time::sleep(wait).await;
}

#[cfg(test)]
#[path = "sched_tests.rs"]
mod tests;
