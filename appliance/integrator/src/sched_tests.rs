//! Unit tests of `sched.rs`, kept apart so that file stays readable.

use super::*;

fn ts(s: &str) -> i64 {
    local_to_unix(s, &Zone::Fixed(0)).unwrap_or_else(|| panic!("bad test time {s}"))
}

fn cron_plan(expr: &str) -> Plan {
    Plan {
        schedule: Schedule::Cron(Box::new(Cron::parse(expr).expect("cron"))),
        zone: Zone::Fixed(0),
        holidays: HashSet::new(),
    }
}

#[test]
fn day_numbers_round_trip() {
    for day in [-800_000, -1, 0, 1, 11_016, 19_782, 20_000, 2_932_896] {
        let date = date_of_day(day).expect("in range");
        assert_eq!(day_number(date.year(), date.month(), date.day()), Some(day));
    }
    assert_eq!(day_number(2024, 2, 29), Some(19_782));
    assert_eq!(day_number(2023, 2, 29), None);
    assert_eq!(
        format_utc(ts("2024-02-29T13:05:09")),
        "2024-02-29T13:05:09Z"
    );
}

#[test]
fn cron_next_run_table() {
    let table = [
        ("* * * * *", "2024-01-01T00:00:30", "2024-01-01T00:01:00"),
        ("*/15 * * * *", "2024-01-01T10:07:00", "2024-01-01T10:15:00"),
        ("0 9 * * 1-5", "2024-01-05T09:00:00", "2024-01-08T09:00:00"), // Fri → Mon
        ("30 2 1 * *", "2024-01-31T00:00:00", "2024-02-01T02:30:00"),
        ("0 0 29 2 *", "2024-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 12 * * 0", "2024-01-01T00:00:00", "2024-01-07T12:00:00"), // Sunday
        ("0 12 * * 7", "2024-01-01T00:00:00", "2024-01-07T12:00:00"), // 7 = Sunday
        (
            "*/10 * * * * *",
            "2024-01-01T00:00:05",
            "2024-01-01T00:00:10",
        ),
        (
            "5/20 * * * * *",
            "2024-01-01T00:00:26",
            "2024-01-01T00:00:45",
        ),
        ("0 0 1,15 * 1", "2024-01-02T00:00:00", "2024-01-08T00:00:00"), // dom or dow
        (
            "59 23 31 12 *",
            "2024-12-31T23:59:00",
            "2025-12-31T23:59:00",
        ),
        (
            "0 8-10/2 * * *",
            "2024-01-01T08:00:00",
            "2024-01-01T10:00:00",
        ),
    ];
    for (expr, after, want) in table {
        let got = cron_plan(expr).next_after(ts(after)).map(format_utc);
        assert_eq!(
            got.as_deref(),
            Some(&*format!("{want}Z")),
            "{expr} after {after}"
        );
    }
    assert_eq!(cron_plan("0 0 30 2 *").next_after(0), None);
}

#[test]
fn cron_errors() {
    assert_eq!(Cron::parse("* * *"), Err(CronError::Fields(3)));
    assert!(matches!(
        Cron::parse("60 * * * *"),
        Err(CronError::Field { field: 1, .. })
    ));
    assert!(matches!(
        Cron::parse("* * * 13 *"),
        Err(CronError::Field { field: 4, .. })
    ));
    assert!(matches!(
        Cron::parse("*/0 * * * *"),
        Err(CronError::Field { .. })
    ));
    assert!(Cron::parse("x * * * *").is_err());
}

#[test]
fn cron_in_a_time_zone() {
    let mut p = cron_plan("0 9 * * *");
    p.zone = Zone::Fixed(2 * 3600); // 09:00 at +02:00 is 07:00Z
    assert_eq!(
        p.next_after(ts("2024-06-01T08:00:00"))
            .map(format_utc)
            .as_deref(),
        Some("2024-06-02T07:00:00Z")
    );
}

#[test]
fn cron_names_and_macros() {
    assert_eq!(
        Cron::parse("0 9 * jan-mar MON-fri").unwrap(),
        Cron::parse("0 9 * 1-3 1-5").unwrap()
    );
    assert_eq!(
        Cron::parse("@daily").unwrap(),
        Cron::parse("0 0 * * *").unwrap()
    );
    assert_eq!(
        Cron::parse("@weekly").unwrap(),
        Cron::parse("0 0 * * sun").unwrap()
    );
    assert!(Cron::parse("0 9 * * funday").is_err());
    assert!(Cron::parse("0 jan * * *").is_err());
    assert!(Cron::parse("@fortnightly").is_err());
}

#[test]
fn cron_across_daylight_saving_in_a_named_zone() {
    let berlin = parse_tz("Europe/Berlin").unwrap();
    let next = |expr: &str, after: &str| {
        let mut p = cron_plan(expr);
        p.zone = berlin.clone();
        p.next_after(ts(after)).map(format_utc)
    };
    // 09:00 Berlin is 08:00Z in winter, 07:00Z in summer (2026-03-29).
    assert_eq!(
        next("0 9 * * *", "2026-03-28T09:00:00").as_deref(),
        Some("2026-03-29T07:00:00Z")
    );
    assert_eq!(
        next("0 9 * * *", "2026-03-27T09:00:00").as_deref(),
        Some("2026-03-28T08:00:00Z")
    );
    // 02:30 does not exist on 2026-03-29: it runs at 03:30 CEST.
    assert_eq!(
        next("30 2 * * *", "2026-03-29T00:00:00").as_deref(),
        Some("2026-03-29T01:30:00Z")
    );
    // 02:30 happens twice on 2026-10-25 (00:30Z CEST, 01:30Z CET): once.
    assert_eq!(
        next("30 2 * * *", "2026-10-25T00:00:00").as_deref(),
        Some("2026-10-25T00:30:00Z")
    );
    assert_eq!(
        next("30 2 * * *", "2026-10-25T00:30:00").as_deref(),
        Some("2026-10-26T01:30:00Z")
    );
    // An hourly job runs the repeated hour once (01:00Z is skipped).
    assert_eq!(
        next("0 * * * *", "2026-10-25T00:30:00").as_deref(),
        Some("2026-10-25T02:00:00Z")
    );
    assert!(parse_tz("Mars/Olympus").is_none());
    assert_eq!(parse_tz("+05:30"), Some(Zone::Fixed(5 * 3600 + 1800)));
}

#[test]
fn holiday_skip() {
    let mut p = cron_plan("0 9 * * *");
    p.holidays.insert(day_number(2024, 12, 25).expect("date"));
    p.holidays.insert(day_number(2024, 12, 26).expect("date"));
    let got = p.next_after(ts("2024-12-24T10:00:00")).map(format_utc);
    assert_eq!(got.as_deref(), Some("2024-12-27T09:00:00Z"));
    let iv = Plan {
        schedule: Schedule::Interval {
            every: 3600,
            start: ts("2024-12-24T00:00:00"),
            end: None,
        },
        zone: Zone::Fixed(0),
        holidays: p.holidays.clone(),
    };
    assert_eq!(
        iv.next_after(ts("2024-12-24T23:30:00"))
            .map(format_utc)
            .as_deref(),
        Some("2024-12-27T00:00:00Z")
    );
    let once = Plan {
        schedule: Schedule::OneTime {
            at: ts("2024-12-25T12:00:00"),
        },
        zone: Zone::Fixed(0),
        holidays: p.holidays,
    };
    assert_eq!(once.next_after(0), None);
}

#[test]
fn interval_start_and_end() {
    let p = Plan {
        schedule: Schedule::Interval {
            every: 90,
            start: 1000,
            end: Some(1300),
        },
        zone: Zone::Fixed(0),
        holidays: HashSet::new(),
    };
    assert_eq!(p.next_after(0), Some(1000));
    assert_eq!(p.next_after(1000), Some(1090));
    assert_eq!(p.next_after(1089), Some(1090));
    assert_eq!(p.next_after(1260), Some(1270));
    assert_eq!(p.next_after(1270), None);
}

#[test]
fn one_time() {
    let p = Plan {
        schedule: Schedule::OneTime { at: 500 },
        zone: Zone::Fixed(0),
        holidays: HashSet::new(),
    };
    assert_eq!(p.next_after(499), Some(500));
    assert_eq!(p.next_after(500), None);
}

#[test]
fn misfire_decisions() {
    assert_eq!(misfire(None, 1000, 1, "run_once"), Misfire::OnTime);
    assert_eq!(misfire(Some(1200), 1000, 1, "run_once"), Misfire::OnTime);
    assert_eq!(misfire(Some(999), 1000, 1, "run_once"), Misfire::OnTime);
    assert_eq!(misfire(Some(900), 1000, 1, "run_once"), Misfire::RunOnce);
    assert_eq!(misfire(Some(900), 1000, 1, "skip"), Misfire::Skip);
}

#[tokio::test(start_paused = true)]
async fn timer_sleeps_until_due_with_cap() {
    let t0 = tokio::time::Instant::now();
    sleep_until_due(Some(1005), 1000, std::time::Duration::from_secs(60)).await;
    assert_eq!(t0.elapsed().as_secs(), 5);
    let t1 = tokio::time::Instant::now();
    sleep_until_due(Some(5000), 1000, std::time::Duration::from_secs(2)).await;
    assert_eq!(t1.elapsed().as_secs(), 2);
    let t2 = tokio::time::Instant::now();
    sleep_until_due(Some(10), 1000, std::time::Duration::from_secs(2)).await;
    assert_eq!(t2.elapsed().as_secs(), 0);
}
