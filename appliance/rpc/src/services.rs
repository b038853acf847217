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
/// if there is none of that name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Name {
    pub name: String,
}

/// What `services.restart` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restarted {
    pub restarted: String,
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
