//! Scheduling decisions, and the timer task on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::engine_tests::node_with;

const EVERY_10S: &str = "[[reaction.agents]]\nname = \"h\"\n[[reaction.flows]]\nname = \"p\"\nschedule = \"every 10s\"\n[[reaction.flows.tasks]]\nname = \"c\"\nkind = \"command\"\nhost = \"h\"\ncommand = \"true\"\n";

#[test]
fn first_seen_waits_a_period_then_starts_once_per_boundary() {
    // First seen (or a changed period): one period from now, no start.
    assert_eq!(
        decide(None, 10, 100),
        Decision {
            start: false,
            next_due: 110
        }
    );
    assert_eq!(decide(Some((105, 60)), 10, 100).next_due, 110);
    // Not yet due.
    assert_eq!(
        decide(Some((110, 10)), 10, 105),
        Decision {
            start: false,
            next_due: 110
        }
    );
    // Due now, or long overdue: one start, the next boundary after now.
    assert_eq!(
        decide(Some((110, 10)), 10, 110),
        Decision {
            start: true,
            next_due: 120
        }
    );
    assert_eq!(
        decide(Some((110, 10)), 10, 1_005),
        Decision {
            start: true,
            next_due: 1_010
        }
    );
}

#[test]
fn the_timer_sleeps_until_the_earliest_due_at_most_a_minute() {
    assert_eq!(wait_ms([5_000, 3_000], 1_000), 2_000);
    assert_eq!(wait_ms([500], 1_000), 0);
    assert_eq!(wait_ms([], 1_000), 60_000);
    assert_eq!(wait_ms([10_000_000], 0), 60_000);
}

fn runs(node: &Node) -> usize {
    node.db().runs(1000).unwrap().len()
}

#[tokio::test(start_paused = true)]
async fn a_periodic_flow_starts_every_period() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), EVERY_10S);
    let timer = tokio::spawn(run(node.clone()));
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    assert_eq!(runs(&node), 0);
    tokio::time::sleep(Duration::from_secs(26)).await;
    // At 10, 20 and 30 s.
    assert_eq!(runs(&node), 3);
    timer.abort();
}

#[tokio::test(start_paused = true)]
async fn a_start_at_wakes_the_timer_and_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(dir.path(), crate::engine_tests::ONE_COMMAND);
    let timer = tokio::spawn(run(node.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The timer sleeps its full minute: only the notify makes it look.
    let at = node.clock.now_ms() + 2_000;
    node.start_at("f", at).unwrap();
    assert!(matches!(
        node.start_at("nope", at),
        Err(DbError::NotFound(_))
    ));
    tokio::time::sleep(Duration::from_millis(1_900)).await;
    assert_eq!(runs(&node), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(runs(&node), 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(runs(&node), 1);
    let s = node.db().starts(10).unwrap();
    assert_eq!(
        (s[0].state.as_str(), s[0].run_id.is_some()),
        ("started", true)
    );
    timer.abort();
}

fn at_wall(dir: &std::path::Path, toml: &str, wall: i64) -> Arc<Node> {
    let mut node = node_with(dir, toml);
    Arc::get_mut(&mut node).unwrap().clock = Clock::new(wall);
    node
}

#[tokio::test(start_paused = true)]
async fn timers_survive_a_restart_without_repeats_or_catch_up_storms() {
    let dir = tempfile::tempdir().unwrap();
    let toml = EVERY_10S.to_string()
        + "[[reaction.flows]]\nname = \"f\"\n[[reaction.flows.tasks]]\nname = \"c\"\nkind = \"command\"\nhost = \"h\"\ncommand = \"true\"\n";
    let a = at_wall(dir.path(), &toml, 1_000_000);
    assert_eq!(tick(&a).await.unwrap(), 10_000);
    a.start_at("f", 1_005_000).unwrap();
    assert_eq!(tick(&a).await.unwrap(), 5_000);
    drop(a);
    // The engine was down for 100 s: the one-off start runs, the periodic
    // flow starts once (not once per missed period).
    let b = at_wall(dir.path(), &toml, 1_100_000);
    assert_eq!(tick(&b).await.unwrap(), 10_000);
    assert_eq!(runs(&b), 2);
    assert_eq!(tick(&b).await.unwrap(), 10_000);
    assert_eq!(runs(&b), 2);
    drop(b);
    let c = at_wall(dir.path(), &toml, 1_100_500);
    tick(&c).await.unwrap();
    assert_eq!(runs(&c), 2);
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    tick(&c).await.unwrap();
    assert_eq!(runs(&c), 3);
}

const SCHEDULED_RULE: &str = "[[reaction.agents]]\nname = \"h\"\n[[reaction.patterns]]\nname = \"p\"\nregex = \"X\"\n[[reaction.rules]]\nname = \"r\"\npattern = \"p\"\nflow = \"f\"\nstart = \"scheduled\"\ncron = \"*/20 * * * * *\"\n[[reaction.flows]]\nname = \"f\"\n[[reaction.flows.tasks]]\nname = \"c\"\nkind = \"command\"\nhost = \"h\"\ncommand = \"true\"\n";

fn line(seq: i64) -> Vec<crate::engine::Event> {
    vec![crate::engine::Event {
        seq,
        path: "/l".into(),
        pattern: "p".into(),
        line: "X".into(),
    }]
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_incident_waits_for_its_time_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = at_wall(dir.path(), SCHEDULED_RULE, 1_001_000);
    a.events("h", "e", line(1)).await.unwrap();
    let s = a.db().waiting_starts().unwrap();
    // The next 20 s boundary of the cron.
    assert_eq!((s.len(), s[0].at_ms), (1, 1_020_000));
    let inc = a.db().incidents(10, false).unwrap();
    assert_eq!(
        (inc[0].state.as_str(), s[0].incident_id),
        ("scheduled", Some(inc[0].id))
    );
    assert_eq!(tick(&a).await.unwrap(), 19_000);
    assert_eq!(runs(&a), 0);
    drop(a);
    // Restarted (kill -9: nothing but reaction.db is kept) past its time:
    // one run, for the incident.
    let b = at_wall(dir.path(), SCHEDULED_RULE, 1_020_500);
    tick(&b).await.unwrap();
    tick(&b).await.unwrap();
    assert_eq!(runs(&b), 1);
    let inc = b.db().incidents(10, false).unwrap();
    let run = b.db().runs(10).unwrap();
    assert_eq!(inc[0].state, "started");
    assert_eq!(
        (inc[0].run_id, run[0].incident_id),
        (Some(run[0].id), Some(inc[0].id))
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_start_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let a = at_wall(dir.path(), SCHEDULED_RULE, 1_001_000);
    a.events("h", "e", line(1)).await.unwrap();
    let id = a.db().waiting_starts().unwrap()[0].id;
    let c = a.cancel_start(id).unwrap();
    assert_eq!((c.state.as_str(), c.id), ("cancelled", id));
    assert!(matches!(a.cancel_start(id), Err(DbError::State(_))));
    assert!(matches!(a.cancel_start(99), Err(DbError::NotFound(_))));
    tokio::time::sleep(Duration::from_secs(60)).await;
    tick(&a).await.unwrap();
    assert_eq!(runs(&a), 0);
    assert_eq!(a.db().incidents(10, false).unwrap()[0].state, "cancelled");
    // A start by hand is cancelled the same way.
    let at = a.clock.now_ms() + 5_000;
    let id = a.start_at("f", at).unwrap();
    a.cancel_start(id).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    tick(&a).await.unwrap();
    assert_eq!(runs(&a), 0);
}

#[test]
fn a_cron_flow_starts_at_each_time_once_and_skips_missed_ones() {
    // Every 10 s (ms boundaries).
    let next = |t: i64| Some((t + 9_999) / 10_000 * 10_000);
    let spec = "*/10 * * * * *";
    // First seen, or the expression changed: its next time, no start.
    assert_eq!(
        decide_cron(None, spec, next, 12_000),
        Some(Decision {
            start: false,
            next_due: 20_000
        })
    );
    assert_eq!(
        decide_cron(Some((5_000, "0 * * * * *")), spec, next, 12_000).map(|d| d.next_due),
        Some(20_000)
    );
    assert_eq!(
        decide_cron(Some((20_000, spec)), spec, next, 19_000),
        Some(Decision {
            start: false,
            next_due: 20_000
        })
    );
    // Due (at its time, or long after): one start, the next time after now.
    assert_eq!(
        decide_cron(Some((20_000, spec)), spec, next, 20_000),
        Some(Decision {
            start: true,
            next_due: 30_000
        })
    );
    assert_eq!(
        decide_cron(Some((20_000, spec)), spec, next, 95_500),
        Some(Decision {
            start: true,
            next_due: 100_000
        })
    );
    assert_eq!(decide_cron(None, spec, |_| None, 0), None);
}

#[tokio::test(start_paused = true)]
async fn a_cron_flow_runs_at_its_times() {
    let dir = tempfile::tempdir().unwrap();
    let toml = EVERY_10S.replace("every 10s", "cron */20 * * * * *");
    let node = at_wall(dir.path(), &toml, 1_001_000);
    let timer = tokio::spawn(run(node.clone()));
    tokio::time::sleep(Duration::from_millis(18_500)).await;
    assert_eq!(runs(&node), 0);
    // At 1_020_000, 1_040_000 and 1_060_000.
    tokio::time::sleep(Duration::from_secs(41)).await;
    assert_eq!(runs(&node), 3);
    timer.abort();
}
