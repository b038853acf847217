//! The supervisor end to end: real processes, real signals, the real store.

mod common;

use std::time::Duration;

use common::{TestNode, text, wait_until};
use serde_json::json;

#[test]
fn crash_loop_marks_service_failed_and_restart_revives_it() {
    let node = TestNode::start(Some(
        r#"
[[node.extra_services]]
name = "crasher"
command = "/bin/sh"
args = ["-c", "echo boom; exit 3"]
"#,
    ));
    // Backoff 1+2+4+8 s before the fifth exit.
    let failed = wait_until(Duration::from_secs(40), || {
        node.service("crasher").filter(|s| s["state"] == "failed")
    })
    .expect("crasher never marked failed");
    assert_eq!(failed["restarts"], 5);
    assert_eq!(failed["last_exit"], "crasher exited with status 3");
    let logs = node
        .call("logs.read", json!({"service": "crasher"}))
        .unwrap();
    assert!(logs.as_array().unwrap().iter().any(|l| l["text"] == "boom"));
    let audit_events = node
        .call("logs.read", json!({"service": "supervisor", "lines": 500}))
        .unwrap();
    assert!(
        audit_events
            .to_string()
            .contains("crasher is in a crash loop")
    );

    let out = node.ctl(&["restart", "crasher"]);
    assert!(out.status.success(), "{:?}", text(&out));
    // An extra service does not say it serves: answered once it runs.
    assert!(
        text(&out).0.starts_with("crasher restarted (pid "),
        "{:?}",
        text(&out)
    );
    wait_until(Duration::from_secs(10), || {
        node.service("crasher").filter(|s| s["state"] != "failed")
    })
    .expect("manual restart did not revive the service");
}

#[test]
fn restart_of_a_builtin_that_exits_at_once_fails_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    let program = bin.path().join("alpharen");
    std::fs::copy(common::BIN, &program).unwrap();
    let node = TestNode::start_from(&program, None);
    wait_until(Duration::from_secs(30), || {
        node.service("mail").filter(|s| s["state"] == "running")
    })
    .expect("mail never ran");
    // The node starts its services from this path: the next mail process
    // is a program that exits at once, never saying it serves.
    let broken = bin.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\nexit 7\n").unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&broken, &program).unwrap();
    let out = node.ctl(&["restart", "mail"]);
    assert!(!out.status.success(), "{:?}", text(&out));
    // Not "did not say it is serving within 60 s": the wait ended when the
    // process exited.
    let err = text(&out).1;
    assert!(
        err.contains("mail restarted (pid ")
            && err.contains("but exited with status 7 before it said it is serving"),
        "{err}"
    );
}

#[test]
fn extra_services_follow_the_config() {
    let node = TestNode::start(None);
    let cfg = "[[node.extra_services]]\nname = \"sleeper\"\ncommand = \"/bin/sleep\"\nargs = [\"1000\"]\n";
    let path = node.state().join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = node.ctl(&[
        "config",
        "apply",
        "-f",
        path.to_str().unwrap(),
        "-m",
        "add sleeper",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let running = wait_until(Duration::from_secs(10), || {
        node.service("sleeper").filter(|s| s["state"] == "running")
    })
    .expect("sleeper did not start");
    let pid = running["pid"].as_i64().unwrap();
    std::fs::write(&path, "").unwrap();
    // An empty file has no sections: without --replace it changes nothing.
    let out = node.ctl(&["config", "apply", "-f", path.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        node.service("sleeper").is_some(),
        "an empty apply removed it"
    );
    let out = node.ctl(&["config", "apply", "--replace", "-f", path.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        node.service("sleeper").is_none(),
        "removed service still listed"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z"),
        "sleeper process still alive"
    );
}

#[test]
fn unconfirmed_risky_change_reverts_by_itself() {
    let node = TestNode::start(Some("[node]\nconfirm_timeout = 2\n"));
    let out = node.ctl(&["config", "set", "network.manage", "false"]);
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("confirm it within"),
        "{stdout}{stderr}{}",
        node.console()
    );
    let reverted = wait_until(Duration::from_secs(15), || {
        let h = node.call("config.history", json!({})).ok()?;
        (h["revisions"].as_array()?.len() == 3).then_some(h)
    })
    .expect("risky change was not reverted");
    assert!(
        reverted["revisions"][0]["comment"]
            .as_str()
            .unwrap()
            .contains("automatic revert")
    );
    assert!(reverted["pending"].is_null());
    let cfg = node
        .call("config.get", json!({"section": "network"}))
        .unwrap();
    assert!(cfg["config"]["manage"].is_null(), "{cfg}");
}

#[test]
fn confirmed_risky_change_stays() {
    let node = TestNode::start(Some("[node]\nconfirm_timeout = 2\n"));
    assert!(
        node.ctl(&["config", "set", "network.manage", "false"])
            .status
            .success()
    );
    let out = node.ctl(&["config", "confirm"]);
    assert!(out.status.success(), "{:?}", text(&out));
    std::thread::sleep(Duration::from_secs(3));
    let h = node.call("config.history", json!({})).unwrap();
    assert_eq!(h["revisions"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_config_is_refused_with_its_path_and_nothing_changes() {
    let node = TestNode::start(Some("[node]\nhostname = \"keep\"\n"));
    let cases = [
        ("[node\nhostname = 1", "line 1"),
        ("[node]\nhostnme = \"x\"\n", "node.hostnme"),
        (
            "[node]\nconfirm_timeout = \"soon\"\n",
            "node.confirm_timeout",
        ),
        (
            "[[network.interfaces]]\nname = \"eth0\"\naddresses = [\"10.0.0.300/24\"]\n",
            "network.interfaces[0].addresses[0]",
        ),
        ("{\"node\": {\"hostname\": 5}}", "node.hostname"),
    ];
    let path = node.state().join("bad.toml");
    for (doc, where_) in cases {
        std::fs::write(&path, doc).unwrap();
        let out = node.ctl(&["config", "apply", "-f", path.to_str().unwrap()]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{doc}: {stderr}");
        assert!(stderr.contains(where_), "{doc}: {stderr}");
        assert!(stderr.contains("invalid_config"), "{stderr}");
    }
    let out = node.ctl(&["config", "set", "node.hostname.x", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let h = node.call("config.history", json!({})).unwrap();
    assert_eq!(h["revisions"].as_array().unwrap().len(), 1);
    let cfg = node.call("config.get", json!({"section": "node"})).unwrap();
    assert_eq!(cfg["config"]["hostname"], "keep");
}

#[test]
fn control_socket_answers_garbage_with_clear_errors() {
    use std::io::{BufRead, BufReader, Write};
    let node = TestNode::start(None);
    let mut s = std::os::unix::net::UnixStream::connect(node.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut ask = |line: &[u8]| -> serde_json::Value {
        // The server may close before taking all of an oversized line.
        let _ = s.write_all(line);
        let mut answer = String::new();
        r.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap()
    };
    let v = ask(b"this is not json\n");
    assert_eq!(v["error"]["data"]["code"], "parse_error");
    let v = ask(b"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"status\"}\n");
    assert_eq!(v["error"]["data"]["code"], "invalid_request");
    let v = ask(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"}\n");
    assert_eq!(v["error"]["data"]["code"], "method_not_found");
    let v = ask(
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"config.diff\",\"params\":{\"a\":\"x\"}}\n",
    );
    assert_eq!(v["error"]["data"]["code"], "invalid_params");
    let v = ask(b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"config.rollback\",\"params\":{\"revision\":42}}\n");
    assert_eq!(v["error"]["data"]["code"], "no_such_revision");
    // Still usable after all that.
    let v = ask(b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"status\"}\n");
    assert_eq!(v["id"], 5);
    // An oversized line is refused and the connection closed.
    let mut big = vec![b'x'; alpharen_rpc::MAX_LINE + 1];
    big.push(b'\n');
    let v = ask(&big);
    assert_eq!(v["error"]["data"]["code"], "invalid_request");
    let mut rest = String::new();
    assert_eq!(
        r.read_line(&mut rest).unwrap_or(0),
        0,
        "connection should be closed"
    );
    // The node is fine.
    assert!(node.call("status", json!({})).is_ok());
}

#[test]
fn kill_9_during_apply_leaves_old_or_new_revision() {
    let mut node = TestNode::start(None);
    for round in 0..5u64 {
        let socket = node.socket();
        let writer = std::thread::spawn(move || {
            let mut applied = Vec::new();
            for i in 0..200 {
                let Ok(mut c) = alpharen_rpc::Client::connect(&socket) else {
                    break;
                };
                let name = format!("n{round}x{i}");
                match c.call(
                    "config.set",
                    json!({"path": "node.hostname", "value": name}),
                ) {
                    Ok(_) => applied.push(name),
                    Err(_) => break,
                }
            }
            applied
        });
        std::thread::sleep(Duration::from_millis(150 + round * 70));
        node.kill9();
        let applied = writer.join().unwrap();
        let store = alpharen_store::Store::open(node.state()).expect("store opens after kill -9");
        let current = store
            .current_config()
            .expect("current revision reads")
            .node
            .hostname;
        let history = store.history(10_000).unwrap();
        for meta in &history {
            store.revision(meta.id).expect("every revision decodes");
        }
        // Acknowledged writes are durable: the last acknowledged name or a
        // later, unacknowledged one is in effect, never an older one.
        if let Some(last) = applied.last() {
            let ok = &current == last || current.starts_with(&format!("n{round}x"));
            assert!(ok, "round {round}: {current} after acknowledging {last}");
            let pos = |n: &str| n.rsplit('x').next().and_then(|i| i.parse::<u32>().ok());
            assert!(pos(&current) >= pos(last), "acknowledged revision lost");
        }
        drop(store);
        node.spawn(false);
    }
}

#[test]
fn seed_config_applies_once() {
    let mut node = TestNode::start(Some("[node]\nhostname = \"seeded\"\n"));
    let h = node.call("config.history", json!({})).unwrap();
    assert_eq!(h["revisions"][0]["author"], "seed");
    node.ctl(&["config", "set", "node.hostname", "changed"]);
    node.stop().expect("supervisor stops on SIGTERM");
    node.spawn(true);
    let cfg = node.call("config.get", json!({"section": "node"})).unwrap();
    assert_eq!(
        cfg["config"]["hostname"], "changed",
        "seed must not overwrite"
    );
}

#[test]
fn ctl_covers_users_backup_rollback_and_export() {
    let node = TestNode::start(None);
    let out = node.ctl_stdin(
        &["user", "add", "admin", "--role", "admin"],
        "s3cret-pass\n",
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let out = node.ctl_stdin(&["user", "add", "eve"], "short\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("too short"));
    let (list, _) = text(&node.ctl(&["user", "list"]));
    assert!(list.contains("admin") && list.contains("admin"), "{list}");
    assert_eq!(
        node.ctl(&["user", "del", "admin"]).status.code(),
        Some(1),
        "last admin"
    );

    node.ctl(&["config", "set", "node.hostname", "one"]);
    node.ctl(&["config", "set", "node.hostname", "two"]);
    let (diff, _) = text(&node.ctl(&["config", "diff", "1", "2"]));
    assert!(diff.contains("node.hostname: \"one\" -> \"two\""), "{diff}");
    assert!(node.ctl(&["config", "rollback", "1"]).status.success());
    let (show, _) = text(&node.ctl(&["config", "show", "node"]));
    assert!(show.contains("hostname = \"one\""), "{show}");

    let backup = node.state().join("node.bak");
    let out = node.ctl(&["backup", "create", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    node.ctl(&["config", "set", "node.hostname", "three"]);
    let out = node.ctl(&["backup", "restore", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let cfg = node.call("config.get", json!({"section": "node"})).unwrap();
    assert_eq!(cfg["config"]["hostname"], "one");
    std::fs::write(&backup, "{\"format\": \"other\"}").unwrap();
    assert_eq!(
        node.ctl(&["backup", "restore", backup.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );

    let (export, _) = text(&node.ctl(&["config", "export"]));
    assert!(export.contains("[node]"), "{export}");
    let out = node.ctl(&["--json", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hostname"], "one");
}

#[test]
fn ctl_without_a_node_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["ctl", "--state-dir"])
        .arg(dir.path())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the supervisor running"));
}
