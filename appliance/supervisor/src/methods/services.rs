//! `status`, `services.*`, `logs.read`, `system.*`.

use std::sync::Arc;

use alpharen_rpc::logs::{self, Logs};
use alpharen_rpc::services::{self as m, RESTART_WAIT_SECS, Restart, Restarted};
use alpharen_rpc::system::{self, Stopping};
use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_store::now_unix;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::{unknown, with_store};
use crate::service::{Cmd, ServiceStatus};
use crate::state::NodeState;

async fn statuses(node: &NodeState) -> Vec<ServiceStatus> {
    let services = node.services.lock().await;
    services
        .order
        .iter()
        .filter_map(|n| services.handles.get(n).and_then(|h| h.status()))
        .collect()
}

/// Restarts a service; with `wait`, answers once the old process is gone
/// and the new one runs, and once a built-in said it is serving again.
async fn restart(node: &NodeState, p: Restart) -> Result<Restarted, RpcError> {
    let tx = {
        let services = node.services.lock().await;
        let h = services.handles.get(&p.name).ok_or_else(|| {
            RpcError::new(
                "no_such_service",
                format!(
                    "there is no service {:?}; `alpharen ctl services` lists them",
                    p.name
                ),
            )
        })?;
        h.tx.clone()
    };
    let gone = || RpcError::new("internal_error", "the service task is gone");
    let (asked, started) = tokio::sync::oneshot::channel();
    tx.send(Cmd::Restart(asked)).await.map_err(|_| gone())?;
    if !p.wait {
        return Ok(Restarted {
            restarted: p.name,
            pid: None,
            serving: None,
        });
    }
    let started = started.await.map_err(|_| gone())?.ok_or_else(|| {
        RpcError::new(
            "not_started",
            format!(
                "{} could not be started again; `alpharen ctl logs {}` says why",
                p.name, p.name
            ),
        )
    })?;
    let pid = started.pid;
    let serving = match crate::builtin::find(&p.name) {
        Some(b) => {
            use crate::builtin::Restart as R;
            let within = std::time::Duration::from_secs(RESTART_WAIT_SECS);
            let then = match crate::builtin::serves(
                node.serving.subscribe(),
                b.name,
                pid,
                started.exited,
                within,
            )
            .await
            {
                R::Serving => None,
                R::Exited(how) => Some(format!("{how} before it said it is serving")),
                R::Replaced => {
                    Some("was stopped or restarted again before it said it is serving".into())
                }
                R::Silent => Some(format!(
                    "did not say it is serving within {RESTART_WAIT_SECS} s"
                )),
            };
            if let Some(then) = then {
                return Err(RpcError::new(
                    "not_serving",
                    format!(
                        "{} restarted (pid {pid}) but {then}; `alpharen ctl logs {}` says why",
                        p.name, p.name
                    ),
                ));
            }
            Some(true)
        }
        _ => None,
    };
    Ok(Restarted {
        restarted: p.name,
        pid: Some(pid),
        serving,
    })
}

/// Rss and Pss of a process in KiB, from /proc/PID/smaps_rollup.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((field("Rss:")?, field("Pss:")?))
}

/// Who a process runs as, from /proc/PID/status: its real uid, its
/// effective capabilities (hex, as the kernel prints them) and whether
/// it may gain privileges. What `ctl --json services` shows, so the
/// separation can be checked on a node (tests/e2e/qemu-boot.sh).
fn identity(status: &str) -> Option<Value> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
    };
    Some(json!({
        "uid": field("Uid:")?.parse::<u32>().ok()?,
        "cap_eff": field("CapEff:")?,
        "no_new_privs": field("NoNewPrivs:")? == "1",
    }))
}

/// The services with their memory, and the total over every alpharen
/// process: init (when we run under it), this supervisor and the services.
async fn services_with_memory(node: &NodeState) -> (Vec<Value>, Value) {
    let mut pids = vec![std::process::id()];
    if node.opts.under_init {
        pids.push(1);
    }
    let list = statuses(node)
        .await
        .into_iter()
        .map(|st| {
            let mem = st.pid.and_then(memory_kib);
            pids.extend(st.pid);
            let mut v = json!(st);
            v["rss_kib"] = json!(mem.map(|m| m.0));
            v["runs_as"] = st
                .pid
                .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
                .and_then(|text| identity(&text))
                .unwrap_or(Value::Null);
            v
        })
        .collect();
    let (rss, pss) = pids
        .iter()
        .filter_map(|p| memory_kib(*p))
        .fold((0, 0), |(r, p), (r2, p2)| (r + r2, p + p2));
    let total = json!({"rss_kib": rss, "pss_kib": pss, "processes": pids.len()});
    (list, total)
}

pub async fn call(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let value = match call.method.as_str() {
        m::STATUS => {
            let config = node.config();
            let (revision, pending, setup_required) = with_store(node, |s| {
                Ok((
                    s.current()?.map(|r| r.meta.id),
                    s.pending()?,
                    !s.has_admin()?,
                ))
            })?;
            let (services, memory) = services_with_memory(node).await;
            json!({
                "hostname": config.node.hostname,
                "version": env!("CARGO_PKG_VERSION"),
                // The system's release, which an update changes (the image's
                // /etc/os-release); absent on a development host.
                "system": crate::install::system_release(),
                "uptime": now_unix() - node.started_at,
                "dev": node.opts.dev,
                "state_dir": node.opts.state_dir,
                "revision": revision,
                "pending": pending,
                "setup_required": setup_required,
                "memory": memory,
                "services": services,
            })
        }
        m::LIST => json!(services_with_memory(node).await.0),
        m::METRICS => {
            let list: Vec<_> = statuses(node)
                .await
                .iter()
                .map(crate::procstat::service_metrics)
                .collect();
            json!(list)
        }
        m::RESTART => {
            let p: Restart = call.params()?;
            json!(restart(node, p).await?)
        }
        logs::READ => {
            let p: Logs = call.params()?;
            let lines = node.logs.tail(p.service.as_deref(), p.lines);
            if p.follow {
                let (tx, rx) = mpsc::channel(256);
                tokio::spawn(follow(node.logs.subscribe(), p.service, tx));
                return Ok(Reply::Stream {
                    first: json!(lines),
                    rest: rx,
                });
            }
            json!(lines)
        }
        system::REBOOT | system::POWEROFF => {
            if !node.opts.under_init {
                if call.method == system::POWEROFF {
                    node.shutdown.notify_one();
                    return Ok(Reply::Value(json!(Stopping { stopping: true })));
                }
                return Err(RpcError::new(
                    "not_supported",
                    "this supervisor is not the node's init (development mode), so it cannot reboot; stop it with Ctrl-C or `ctl poweroff`",
                ));
            }
            // busybox convention: SIGTERM to init reboots, SIGUSR2 powers off.
            let signalled = if call.method == system::REBOOT {
                let n = node.clone();
                tokio::task::spawn_blocking(move || crate::state::request_reboot(&n.logs))
                    .await
                    .map_err(|e| RpcError::new("internal_error", e.to_string()))?
            } else {
                kill(Pid::from_raw(1), Signal::SIGUSR2)
            };
            signalled
                .map_err(|e| RpcError::new("internal_error", format!("cannot signal init: {e}")))?;
            json!(Stopping { stopping: true })
        }
        _ => return Err(unknown(&call)),
    };
    Ok(Reply::Value(value))
}

/// Streams new log lines until the client goes away.
async fn follow(
    mut rx: broadcast::Receiver<crate::logs::LogLine>,
    service: Option<String>,
    tx: mpsc::Sender<Value>,
) {
    loop {
        match rx.recv().await {
            Ok(line) => {
                if service.as_ref().is_some_and(|s| *s != line.service) {
                    continue;
                }
                if tx.send(json!(line)).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let note = json!({"service": "supervisor", "stream": "event", "text": format!("{n} log lines skipped (reader too slow)")});
                if tx.send(note).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_reads_uid_capabilities_and_no_new_privs() {
        let status = "Name:\talpharen\nUid:\t904\t904\t904\t904\nCapEff:\t0000000000000400\nNoNewPrivs:\t1\n";
        assert_eq!(
            identity(status),
            Some(json!({"uid": 904, "cap_eff": "0000000000000400", "no_new_privs": true}))
        );
        assert_eq!(identity("Name:\tx\n"), None);
    }
}
