//! reaction.db: the statistics.

use super::*;
use alpharen_store::config::Config;

fn incident(rule: &str, at_ms: i64, state: &str) -> Incident {
    Incident {
        id: 0,
        rule: rule.into(),
        agent: "h".into(),
        pattern: "p".into(),
        path: "/log".into(),
        line: "x".into(),
        at_ms,
        state: state.into(),
        run_id: None,
    }
}

#[test]
fn stats_count_incidents_runs_and_time_to_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(dir.path()).unwrap();
    let c = Config::from_toml(
        "[[reaction.agents]]\nname = \"h\"\n[[reaction.flows]]\nname = \"f\"\n\
         [[reaction.flows.tasks]]\nname = \"t\"\nkind = \"command\"\nhost = \"h\"\ncommand = \"true\"\n",
    )
    .unwrap();
    let flow = &c.reaction.flows[0];
    // Resolved in 3 s and 5 s, one failed, one pending, one denied.
    for (at, end, ok) in [(1000, 4000, true), (2000, 7000, true), (3000, 3500, false)] {
        let i = db.add_incident(&incident("r", at, "started")).unwrap();
        let run = db.start_run(flow, Some(i), at).unwrap();
        db.end_run(run, if ok { "done" } else { "failed" }, None, end)
            .unwrap();
    }
    db.add_incident(&incident("r", 9000, "pending")).unwrap();
    let d = db.add_incident(&incident("q", 9000, "pending")).unwrap();
    db.decide_incident(d, None, 9100).unwrap();
    db.start_run(flow, None, 9500).unwrap();

    let s = db.stats().unwrap();
    let q = &s.rules[0];
    assert_eq!(
        (q.rule.as_str(), q.incidents, q.denied, q.resolved),
        ("q", 1, 1, 0)
    );
    assert_eq!(q.mean_resolve_ms, None);
    let r = &s.rules[1];
    assert_eq!((r.incidents, r.pending, r.resolved), (4, 1, 2));
    assert_eq!(r.mean_resolve_ms, Some(4000));
    let f = &s.flows[0];
    assert_eq!((f.runs, f.done, f.failed, f.running), (4, 2, 1, 1));
    assert_eq!(f.success_rate, Some(2.0 / 3.0));
    assert_eq!(db.incidents(10, true).unwrap().len(), 1);
    assert_eq!(db.incidents(10, false).unwrap().len(), 5);
}
