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
