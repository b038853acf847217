//! The dates, times and time zones of `[[integrator.jobs]]` and
//! `[[integrator.calendars]]`, parsed the same way by the config check and
//! the scheduler.

/// `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let mut it = s.split('-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if it.next().is_some() || s.len() != 10 || !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    (d <= days[m as usize - 1]).then_some((y, m, d))
}

/// `YYYY-MM-DDTHH:MM[:SS]` (a space may replace the T; a trailing Z is
/// accepted): date and seconds of the day.
pub fn parse_datetime(s: &str) -> Option<((i32, u32, u32), u32)> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = s.split_once(['T', ' '])?;
    let date = parse_date(date)?;
    let parts: Vec<&str> = time.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let mut v = [0u32; 3];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        v[i] = p.parse().ok()?;
    }
    if v[0] > 23 || v[1] > 59 || v[2] > 59 {
        return None;
    }
    Some((date, v[0] * 3600 + v[1] * 60 + v[2]))
}

/// A job's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Zone {
    /// Seconds east of UTC.
    Fixed(i64),
    /// An IANA zone, from the tz database built into the program.
    Named(jiff::tz::TimeZone),
}

impl Zone {
    /// Seconds east of UTC at the instant `utc`.
    pub fn offset_at(&self, utc: i64) -> i64 {
        match self {
            Zone::Fixed(o) => *o,
            Zone::Named(tz) => jiff::Timestamp::from_second(utc)
                .map(|t| i64::from(tz.to_offset(t).seconds()))
                .unwrap_or(0),
        }
    }

    /// The instant of a local wall-clock time (seconds since 1970-01-01
    /// local). Twice in the autumn: the first one. Skipped in the spring:
    /// read with the offset before the jump, so it lands just after it
    /// (what jiff and RFC 5545 call "compatible").
    pub fn to_utc(&self, local: i64) -> i64 {
        let Zone::Named(tz) = self else {
            return local - self.offset_at(local);
        };
        let Ok(wall) =
            jiff::Timestamp::from_second(local).map(|t| jiff::tz::Offset::UTC.to_datetime(t))
        else {
            return local;
        };
        tz.to_ambiguous_timestamp(wall)
            .compatible()
            .map_or(local, |t| t.as_second())
    }

    /// The zone as jiff's, for the cron schedules of reactions.
    pub fn to_jiff(&self) -> Option<jiff::tz::TimeZone> {
        match self {
            Zone::Fixed(o) => {
                let offset = jiff::tz::Offset::from_seconds(i32::try_from(*o).ok()?).ok()?;
                Some(jiff::tz::TimeZone::fixed(offset))
            }
            Zone::Named(tz) => Some(tz.clone()),
        }
    }
}

/// `UTC`/`Z`, `+HH:MM` / `-HH:MM`, or an IANA zone name.
pub fn parse_tz(s: &str) -> Option<Zone> {
    if s == "UTC" || s == "Z" || s == "Etc/UTC" {
        return Some(Zone::Fixed(0));
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return jiff::tz::TimeZone::get(s).ok().map(Zone::Named),
    };
    let (h, m) = s.get(1..)?.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(Zone::Fixed(sign * (h * 3600 + m * 60)))
}
