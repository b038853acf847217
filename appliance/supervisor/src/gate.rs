//! The health gate: once every built-in service has run for a while, a
//! trial boot of a freshly installed slot is judged. The user's health
//! check (`[update] health_check`, optional) runs then; exit 0 within its
//! timeout commits the slot, anything else gives the trial up (the slot is
//! marked failed) and reboots into the old slot. The reason is kept on the
//! data partition (`<state>/update/trial-failure.json`) so that the old
//! slot, which boots next, reports which version failed and why.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::config::TrialCheck;
use alpharen_store::now_unix;
use serde::{Deserialize, Serialize};

use crate::boot::{self, FailedSlot, ThisBoot};
use crate::builtin::BUILTINS;
use crate::privsep::{self, Drop};
use crate::state::NodeState;

/// How long every built-in service must have run before the boot counts.
const SETTLE: Duration = Duration::from_secs(10);
/// The output of the health check kept for the report: its last bytes.
const TAIL: usize = 2048;

/// How the user's health check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signalled(i32),
    TimedOut(u64),
    NotStarted(String),
}

/// What the health check did, with the tail of its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub outcome: Outcome,
    pub output: String,
}

/// Whether a trial boot is committed: `Ok` to commit, else why not. No
/// health check configured commits (services settling is the gate).
pub fn verdict(check: Option<&CheckResult>) -> Result<(), String> {
    let Some(r) = check else {
        return Ok(());
    };
    let why = match &r.outcome {
        Outcome::Exited(0) => return Ok(()),
        Outcome::Exited(code) => format!("the health check exited with status {code}"),
        Outcome::Signalled(sig) => format!("the health check was killed by signal {sig}"),
        Outcome::TimedOut(secs) => format!("the health check did not finish within {secs} s"),
        Outcome::NotStarted(e) => format!("the health check could not be started: {e}"),
    };
    let output = r.output.trim();
    Err(if output.is_empty() {
        format!("{why} (no output)")
    } else {
        format!("{why}; its output ended with:\n{output}")
    })
}

/// The last `TAIL` bytes of the output, as text.
fn tail_text(bytes: &[u8]) -> String {
    let from = bytes.len().saturating_sub(TAIL);
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

/// Runs the health check, stdout and stderr together into one pipe, with
/// a clean environment plus `env`, in its own process group (killed whole
/// at the timeout), as `drop`'s user when the supervisor separates
/// privileges.
pub async fn run_check(hc: &TrialCheck, user: Option<Drop>, env: &[(&str, String)]) -> CheckResult {
    let not_started = |e: std::io::Error| CheckResult {
        outcome: Outcome::NotStarted(format!("{}: {e}", hc.command)),
        output: String::new(),
    };
    let (mut reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return not_started(e),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return not_started(e),
    };
    let mut cmd = std::process::Command::new(&hc.command);
    cmd.args(&hc.args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0);
    if let Some(d) = user {
        // SAFETY: Drop::apply only makes async-signal-safe syscalls.
        unsafe {
            cmd.pre_exec(move || d.apply());
        }
    }
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return not_started(e),
    };
    // The command holds the parent's copies of the write ends: close them,
    // so the reader ends once the group has exited (or been killed).
    std::mem::drop(cmd);
    // A thread of its own, not `spawn_blocking`: a paused test clock
    // would not advance while a blocking task runs.
    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink = collected.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut out = sink.lock().unwrap_or_else(|e| e.into_inner());
            out.extend_from_slice(&buf[..n]);
            let excess = out.len().saturating_sub(TAIL);
            out.drain(..excess);
        }
        let _ = done_tx.send(());
    });
    let pgid = child.id();
    let outcome = match tokio::time::timeout(Duration::from_secs(hc.timeout), child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt as _;
            match (status.code(), status.signal()) {
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(sig)) => Outcome::Signalled(sig),
                (None, None) => Outcome::Exited(-1),
            }
        }
        Ok(Err(e)) => Outcome::NotStarted(format!("waiting for {}: {e}", hc.command)),
        Err(_) => Outcome::TimedOut(hc.timeout),
    };
    // Whatever it left behind in its group goes too, so the pipe closes.
    if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.wait().await;
    // A descendant that left the group may hold the pipe: do not wait on it.
    let _ = tokio::time::timeout(Duration::from_secs(1), done_rx).await;
    let output = tail_text(&collected.lock().unwrap_or_else(|e| e.into_inner()));
    CheckResult { outcome, output }
}

/// Why a trial boot was given up, kept on the data partition for the
/// old slot to report (it is the one that boots next).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialFailure {
    pub slot: char,
    pub version: Option<String>,
    pub build_id: Option<String>,
    pub reason: String,
    pub at: i64,
    /// Set once the old slot has reported it.
    #[serde(default)]
    pub reported: bool,
}

fn failure_path(state_dir: &Path) -> PathBuf {
    state_dir.join("update").join("trial-failure.json")
}

fn read_failure(state_dir: &Path) -> Option<TrialFailure> {
    let bytes = std::fs::read(failure_path(state_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_failure(state_dir: &Path, f: &TrialFailure) -> std::io::Result<()> {
    let path = failure_path(state_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(f).map_err(std::io::Error::other)?;
    crate::setup::write_durably(&path, &json)
}

/// `version V, build B` of what a slot held, where known.
fn what(version: Option<&str>, build: Option<&str>) -> String {
    match (version, build) {
        (Some(v), Some(b)) => format!("version {v}, build {b}"),
        (Some(v), None) => format!("version {v}"),
        _ => "version unknown".into(),
    }
}

/// The reports a boot of `booted` makes about slots that failed: slots
/// whose tries ran out (from the loader entries) and a trial given up by
/// its health check (the record, if not yet reported). One line each.
pub fn fell_back_reports(
    booted: char,
    failed: &[FailedSlot],
    record: Option<&TrialFailure>,
) -> Vec<String> {
    let record = record.filter(|r| !r.reported && r.slot != booted);
    let mut out = Vec::new();
    for f in failed {
        let held = f.record.as_ref().map_or("version unknown".into(), |r| {
            what(Some(&r.version), Some(&r.build_id))
        });
        match record.filter(|r| r.slot == f.slot) {
            Some(r) => out.push(format!(
                "slot {} failed its health check and was skipped ({held}); slot {booted} runs again: {}",
                f.slot, r.reason
            )),
            None => out.push(format!(
                "slot {} failed all its boot tries and was skipped ({held}); slot {booted} runs again",
                f.slot
            )),
        }
    }
    if let Some(r) = record
        && !failed.iter().any(|f| f.slot == r.slot)
    {
        out.push(format!(
            "slot {} failed its health check ({}); slot {booted} runs again: {}",
            r.slot,
            what(r.version.as_deref(), r.build_id.as_deref()),
            r.reason
        ));
    }
    out
}

/// Whether every built-in service has been running for [`SETTLE`].
async fn settled(node: &NodeState) -> bool {
    let services = node.services.lock().await;
    BUILTINS.iter().all(|b| {
        services
            .handles
            .get(b.name)
            .and_then(|h| h.status())
            .is_some_and(|s| {
                s.state == "running" && now_unix() - s.since >= SETTLE.as_secs() as i64
            })
    })
}

/// Waits for the services to settle, then judges this boot (the module's
/// doc). Runs on a node's real boot and on a stand-in disk.
pub(crate) async fn run(node: Arc<NodeState>) {
    let mut ok = false;
    for _ in 0..60 {
        tokio::time::sleep(SETTLE).await;
        if settled(&node).await {
            ok = true;
            break;
        }
    }
    if !ok {
        node.logs
            .event("services did not settle within 10 minutes; this boot is not marked good");
        return;
    }
    let this = match blocking(boot::this_boot).await {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => {
            node.logs.event(&format!("cannot judge this boot: {e}"));
            return;
        }
    };
    let release = crate::install::system_release();
    let version = release["version"].as_str().map(str::to_string);
    let build_id = release["build_id"].as_str().map(str::to_string);
    let check = match (this.trial, node.config().update.health_check) {
        (true, Some(hc)) => {
            node.logs.event(&format!(
                "update: running the health check {} (timeout {} s)",
                hc.command, hc.timeout
            ));
            let drop = node.separate.then(|| Drop::bare(privsep::NOBODY));
            let env = [
                ("ALPHAREN_SLOT", this.slot.to_string()),
                ("ALPHAREN_VERSION", version.clone().unwrap_or_default()),
            ];
            Some(run_check(&hc, drop, &env).await)
        }
        _ => None,
    };
    match verdict(check.as_ref()) {
        Ok(()) => commit(&node, this, &what(version.as_deref(), build_id.as_deref())).await,
        Err(reason) => {
            let failure = TrialFailure {
                slot: this.slot,
                version,
                build_id,
                reason,
                at: now_unix(),
                reported: false,
            };
            give_up(&node, failure).await;
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

/// Marks this boot good; reports a committed trial and the slots that
/// failed before it.
async fn commit(node: &NodeState, this: ThisBoot, held: &str) {
    let failed = match blocking(boot::mark_good).await {
        Ok(f) => f,
        Err(e) => {
            node.logs.event(&format!("cannot mark this boot good: {e}"));
            return;
        }
    };
    node.logs
        .event(&format!("boot of slot {} marked good", this.slot));
    let (state_dir, slot) = (node.opts.state_dir.clone(), this.slot);
    match blocking(move || crate::premigration::committed(&state_dir, slot)).await {
        Ok(Some(what)) => node.logs.event(&what),
        Ok(None) => {}
        Err(e) => node.logs.event(&format!(
            "cannot drop the configuration store kept from before the migration: {e}"
        )),
    }
    if this.trial {
        let what = format!(
            "update: slot {} ({held}) passed its trial boot and is committed",
            this.slot
        );
        node.logs.event(&what);
        node.notify("update committed", &what);
    }
    let state_dir = node.opts.state_dir.clone();
    let record = read_failure(&state_dir);
    for what in fell_back_reports(this.slot, &failed, record.as_ref()) {
        node.logs.event(&what);
        // The subject logfwd turns into the `arSlotFailed` trap.
        node.notify("boot slot failed", &what);
    }
    if let Some(mut r) = record.filter(|r| !r.reported && r.slot != this.slot) {
        r.reported = true;
        if let Err(e) = write_failure(&state_dir, &r) {
            node.logs.event(&format!(
                "cannot record that the failed update was reported: {e}"
            ));
        }
    }
}

/// Gives up this trial: records why, marks the slot failed and reboots
/// into the other slot.
async fn give_up(node: &NodeState, failure: TrialFailure) {
    let slot = failure.slot;
    node.logs.event(&format!(
        "update: the trial of slot {slot} failed, it is not committed: {}",
        failure.reason
    ));
    if let Err(e) = write_failure(&node.opts.state_dir, &failure) {
        node.logs
            .event(&format!("cannot record why the trial failed: {e}"));
    }
    if let Err(e) = blocking(boot::mark_failed).await {
        node.logs.event(&format!(
            "cannot mark slot {slot} failed ({e}); its remaining tries will still run out"
        ));
    }
    if node.opts.under_init {
        node.logs.event(&format!(
            "update: rebooting into the other slot, away from slot {slot}"
        ));
        if let Err(e) = crate::state::request_reboot() {
            node.logs.event(&format!("cannot reboot: {e}"));
        }
    } else {
        node.logs.event(&format!(
            "update: development mode, not rebooting; the next start boots the other slot, away from slot {slot}"
        ));
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
