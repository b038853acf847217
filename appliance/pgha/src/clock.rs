//! UTC calendar fields from Unix time, for log stamps, the backup schedule
//! (weekdays, hours) and the storage path templates. Pure arithmetic
//! (Howard Hinnant's days-to-civil), no time zone database.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    /// ISO: 1 = Monday … 7 = Sunday.
    pub weekday: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Utc {
    pub fn from_unix(t: i64) -> Utc {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            // 1970-01-01 was a Thursday (4).
            weekday: ((days + 3).rem_euclid(7) + 1) as u32,
            hour: (secs / 3600) as u32,
            minute: (secs % 3600 / 60) as u32,
            second: (secs % 60) as u32,
        }
    }

    pub fn now() -> Utc {
        Utc::from_unix(alpharen_store::now_unix())
    }

    /// `20261123T125000Z`, for file names that sort by time.
    pub fn compact(&self) -> String {
        self.stamp().replace(['-', ':'], "")
    }

    /// `2026-11-23T12:50:00Z`
    pub fn stamp(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let epoch = Utc::from_unix(0);
        assert_eq!(epoch.stamp(), "1970-01-01T00:00:00Z");
        assert_eq!(epoch.weekday, 4);
        // 2024-02-29 12:34:56 UTC, a Thursday (leap day).
        let leap = Utc::from_unix(1_709_210_096);
        assert_eq!(leap.stamp(), "2024-02-29T12:34:56Z");
        assert_eq!(leap.weekday, 4);
        // 2026-11-23, a Monday.
        assert_eq!(Utc::from_unix(1_795_392_000).weekday, 1);
    }
}
