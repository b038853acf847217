//! `status` and `services.*`: the node and its supervised services. Both
//! `status` and `services.list` take no params. What services themselves
//! ask the supervisor (`services.view`, ...) is [`crate::view`].

use serde::{Deserialize, Serialize};

/// The node: name, version, uptime, revision, pending change, memory and
/// services.
pub const STATUS: &str = "status";
/// The services with state, pid, restarts, memory and who they run as.
pub const LIST: &str = "services.list";
pub const RESTART: &str = "services.restart";

/// `services.restart`'s params: answers [`Restarted`]; `no_such_service`
/// if there is none of that name. With `wait`, also `not_started` if the
/// new process could not be started, and `not_serving` if a built-in did
/// not say it serves within [`RESTART_WAIT_SECS`] (at once if it exited
/// first).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    pub name: String,
    /// Answer once the old process is gone and the new one runs, and for a
    /// built-in, once it says it is serving (its listeners bound), as `ctl
    /// restart` does. Without it the answer comes at once: the web API's
    /// way, since a restart of the web service itself would otherwise wait
    /// on the request it is answering.
    #[serde(default)]
    pub wait: bool,
}

/// How long `services.restart` with `wait` waits for a built-in to serve.
pub const RESTART_WAIT_SECS: u64 = 60;

/// What `services.restart` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restarted {
    pub restarted: String,
    /// The new process, when waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// It said it is serving: `None` when not waited for, or for a service
    /// that does not say (one from `[services]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
}

/// What each supervised service costs, for the web service's `/metrics`:
/// no params; answers a `Vec<ServiceMetrics>` in start order. A separate
/// method from `services.list` so a scrape every few seconds reads only
/// two small `/proc` files per service (no `smaps_rollup` walk).
pub const METRICS: &str = "services.metrics";

/// One service in `services.metrics`. The process figures are `None`
/// while the service has no process (starting, backoff, failed, stopped)
/// or its `/proc` entry could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceMetrics {
    pub name: String,
    /// `builtin` or `extra` (`[[node.extra_services]]`).
    pub kind: String,
    /// `starting`, `running`, `backoff`, `failed` or `stopped`.
    pub state: String,
    /// Restarts since the supervisor started.
    pub restarts: u32,
    /// Resident set size (`VmRSS` of `/proc/PID/status`).
    pub rss_bytes: Option<u64>,
    /// User plus system CPU time of the process (`/proc/PID/stat`), not
    /// of its children.
    pub cpu_seconds: Option<f64>,
}
