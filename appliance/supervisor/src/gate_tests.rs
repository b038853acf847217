use super::*;
use crate::install::SlotRecord;

fn result(outcome: Outcome, output: &str) -> CheckResult {
    CheckResult {
        outcome,
        output: output.into(),
    }
}

fn check(command: &str, args: &[&str], timeout: u64) -> TrialCheck {
    TrialCheck {
        command: command.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        timeout,
    }
}

#[test]
fn only_exit_zero_commits() {
    assert_eq!(verdict(None), Ok(()));
    assert_eq!(verdict(Some(&result(Outcome::Exited(0), "fine"))), Ok(()));
    assert_eq!(
        verdict(Some(&result(Outcome::Exited(3), "db down\n"))),
        Err("the health check exited with status 3; its output ended with:\ndb down".into())
    );
    assert_eq!(
        verdict(Some(&result(Outcome::TimedOut(30), ""))),
        Err("the health check did not finish within 30 s (no output)".into())
    );
    assert!(verdict(Some(&result(Outcome::Signalled(9), ""))).is_err());
    assert!(verdict(Some(&result(Outcome::NotStarted("x".into()), ""))).is_err());
}

#[test]
fn output_keeps_its_tail() {
    let long = format!("{}END", "x".repeat(5000));
    let t = tail_text(long.as_bytes());
    assert_eq!(t.len(), TAIL);
    assert!(t.ends_with("END"));
}

#[tokio::test]
async fn a_check_runs_with_its_environment_and_output() {
    let hc = check(
        "/bin/sh",
        &["-c", "echo slot $ALPHAREN_SLOT; echo oops >&2; exit 4"],
        30,
    );
    let r = run_check(&hc, None, &[("ALPHAREN_SLOT", "b".into())]).await;
    assert_eq!(r.outcome, Outcome::Exited(4));
    assert_eq!(r.output, "slot b\noops\n");
    let ok = run_check(&check("/bin/true", &[], 30), None, &[]).await;
    assert_eq!(ok.outcome, Outcome::Exited(0));
    let missing = run_check(&check("/nonexistent/check", &[], 30), None, &[]).await;
    assert!(matches!(missing.outcome, Outcome::NotStarted(_)));
}

#[tokio::test(start_paused = true)]
async fn a_check_that_hangs_times_out_and_is_killed() {
    // The clock is paused: the runtime jumps to the timeout as soon as it
    // has nothing else to do (the output may not have been written yet).
    // The background child holds the pipe too: the whole group is killed
    // (no `sleep 1000` is left running).
    let hc = check("/bin/sh", &["-c", "sleep 1000 & sleep 1000"], 5);
    let r = run_check(&hc, None, &[]).await;
    assert_eq!(r.outcome, Outcome::TimedOut(5));
}

fn failed(slot: char, version: &str) -> FailedSlot {
    FailedSlot {
        slot,
        record: Some(SlotRecord {
            version: version.into(),
            build_id: "bid".into(),
            board: "qemu-x86_64".into(),
            installed_at: 1,
            signer: "k".into(),
        }),
    }
}

fn failure(slot: char, reported: bool) -> TrialFailure {
    TrialFailure {
        slot,
        version: Some("0.3.0".into()),
        build_id: Some("bid".into()),
        reason: "the health check exited with status 1 (no output)".into(),
        at: 1,
        reported,
    }
}

#[test]
fn the_old_slot_reports_which_version_failed_and_why() {
    // Tries ran out (alpharen exits at start): no record of a reason.
    assert_eq!(
        fell_back_reports('a', &[failed('b', "0.3.0")], None),
        [
            "slot b failed all its boot tries and was skipped (version 0.3.0, build bid); slot a runs again"
        ]
    );
    // Given up by the health check (x86: entry at +0, and the record).
    assert_eq!(
        fell_back_reports('a', &[failed('b', "0.3.0")], Some(&failure('b', false))),
        [
            "slot b failed its health check and was skipped (version 0.3.0, build bid); slot a runs again: the health check exited with status 1 (no output)"
        ]
    );
    // The Pi: no entries, only the record.
    assert_eq!(
        fell_back_reports('a', &[], Some(&failure('b', false))),
        [
            "slot b failed its health check (version 0.3.0, build bid); slot a runs again: the health check exited with status 1 (no output)"
        ]
    );
    // Reported once; a record about the booted slot itself is old news.
    assert!(fell_back_reports('a', &[], Some(&failure('b', true))).is_empty());
    assert!(fell_back_reports('b', &[], Some(&failure('b', false))).is_empty());
}

#[test]
fn the_failure_record_is_written_whole_and_read_back() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_failure(dir.path()), None);
    write_failure(dir.path(), &failure('b', false)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_failure(dir.path()), Some(failure('b', false)));
}
