//! `alpharen init` as PID 1 of a fresh PID namespace: it reaps orphans,
//! restarts a dead supervisor, and on SIGTERM stops services in reverse
//! order and exits. Needs root (CI runs as root).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, wait_until};

fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must run this test as root"
    );
    eprintln!("skipped: needs root for a PID namespace");
    false
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// (pid, parent, state) of every process.
fn processes() -> Vec<(u32, u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces; fields resume after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(state), Some(ppid)) = (f.first(), f.get(1).and_then(|p| p.parse().ok())) {
            out.push((pid, ppid, state.chars().next().unwrap_or('?')));
        }
    }
    out
}

fn service(name: &str, dir: &std::path::Path) -> String {
    // Leaves an orphan every 100 ms; records its stop on SIGTERM.
    format!(
        r#"
[[node.extra_services]]
name = "{name}"
command = "/bin/sh"
args = ["-c", "trap 'echo stop-{name} >> {dir}/order; exit 0' TERM; while :; do (sleep 0.05 &); sleep 0.1; done"]
"#,
        dir = dir.display()
    )
}

#[test]
fn pid1_reaps_orphans_restarts_supervisor_and_stops_in_reverse_order() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        service("first", dir.path()),
        service("second", dir.path())
    );
    let mut store = alpharen_store::Store::open(dir.path()).unwrap();
    store
        .apply(
            &alpharen_store::Config::from_toml(&config).unwrap(),
            "test",
            "seed",
        )
        .unwrap();
    drop(store);
    let log = std::fs::File::create(dir.path().join("console.log")).unwrap();
    let mut unshare = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--uts",
            BIN,
            "init",
            "--container",
            "--dev",
            "--state-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let init = wait_until(Duration::from_secs(10), || {
        children(unshare.id()).first().copied()
    })
    .expect("init did not start");
    let node = common::TestNode { dir, child: None };
    wait_until(Duration::from_secs(20), || {
        let both = ["first", "second"]
            .iter()
            .all(|n| node.service(n).is_some_and(|s| s["state"] == "running"));
        both.then_some(())
    })
    .unwrap_or_else(|| panic!("services did not start: {}", node.console()));

    // Orphans land on init every 100 ms per service; unreaped, they would
    // pile up as zombies.
    std::thread::sleep(Duration::from_secs(2));
    let zombies = processes()
        .iter()
        .filter(|(_, ppid, st)| *ppid == init && *st == 'Z')
        .count();
    assert!(zombies <= 2, "{zombies} zombies under init");

    let supervisor = *children(init)
        .iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.contains("supervise"))
        })
        .expect("no supervisor under init");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until(Duration::from_secs(20), || {
        let back = children(init).iter().any(|p| {
            *p != supervisor
                && std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("supervise"))
        });
        (back
            && node
                .service("second")
                .is_some_and(|s| s["state"] == "running"))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("init did not restart the supervisor: {}", node.console()));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_until(Duration::from_secs(40), || {
        unshare.try_wait().ok().flatten()
    })
    .unwrap_or_else(|| {
        let _ = unshare.kill();
        panic!("init did not stop: {}", node.console())
    });
    assert!(
        status.success(),
        "init exited with {status}: {}",
        node.console()
    );
    let order = std::fs::read_to_string(node.state().join("order")).unwrap_or_default();
    let order: Vec<&str> = order.lines().collect();
    // The supervisor killed by SIGKILL took its services along (pdeathsig),
    // so only the final, orderly stop is recorded.
    assert_eq!(
        order,
        vec!["stop-second", "stop-first"],
        "{}",
        node.console()
    );
}
