//! UTC time for log stamps, the backup schedule (weekdays) and the storage
//! path templates, on `chrono`; no time zone database.

use chrono::{DateTime, Datelike};

pub type Utc = DateTime<chrono::Utc>;

/// The instant `t` seconds after the Unix epoch (the epoch itself for a
/// value chrono cannot represent, far beyond any real clock).
pub fn from_unix(t: i64) -> Utc {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

pub fn now() -> Utc {
    from_unix(alpharen_store::now_unix())
}

/// ISO weekday: 1 = Monday … 7 = Sunday.
pub fn weekday(t: &Utc) -> u32 {
    t.weekday().number_from_monday()
}

/// `2026-11-23T12:50:00Z`
pub fn stamp(t: &Utc) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `20261123T125000Z`, for file names that sort by time.
pub fn compact(t: &Utc) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_weekdays_of_known_dates() {
        let epoch = from_unix(0);
        assert_eq!(stamp(&epoch), "1970-01-01T00:00:00Z");
        assert_eq!(weekday(&epoch), 4);
        // 2024-02-29 12:34:56 UTC, a Thursday (leap day).
        let leap = from_unix(1_709_210_096);
        assert_eq!(stamp(&leap), "2024-02-29T12:34:56Z");
        assert_eq!(compact(&leap), "20240229T123456Z");
        assert_eq!(weekday(&leap), 4);
        // 2026-11-23, a Monday.
        assert_eq!(weekday(&from_unix(1_795_392_000)), 1);
    }
}
