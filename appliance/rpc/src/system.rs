//! `system.*`: reboot and power off the node, show the A/B slots and
//! install an update bundle into the inactive one (docs/update.md).
//! Reboot and power off take no params and
//! answer [`Stopping`]; a supervisor that is not the node's init
//! (development mode) stops itself on `system.poweroff` and refuses
//! `system.reboot` with `not_supported`.

use serde::{Deserialize, Serialize};

pub const REBOOT: &str = "system.reboot";
pub const POWEROFF: &str = "system.poweroff";

/// What `system.reboot` and `system.poweroff` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopping {
    pub stopping: bool,
}

/// `system.slots`: no params; answers a list of [`Slot`].
pub const SLOTS: &str = "system.slots";
/// Installs an update bundle: no params. The bundle's bytes follow as
/// a raw upload ([`crate::upload`]): the `ready` notification's params are
/// an [`Upload`], and the answer, after the end frame, is [`Installed`].
/// The supervisor verifies and writes as the bytes arrive, so a refused
/// bundle (bad signature, wrong board, corrupt block) is answered a few
/// frames after the offending bytes, and the connection closed. Error
/// codes: `update_refused` (the bundle's fault, a truncated upload
/// included), `update_unavailable` (this node cannot install now; before
/// `ready`), `update_failed` (writing the slot failed), `busy` (another
/// install runs; before `ready`).
pub const UPDATE_UPLOAD: &str = "system.update.upload";

/// The upload in progress: no params; answers [`UpdateStatus`].
pub const UPDATE_STATUS: &str = "system.update.status";

/// What `system.update.status` answers: whether an install is running,
/// its upload id and the bundle bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub installing: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
}

/// The `ready` of `system.update.upload`: the upload's id, which
/// `system.update.status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub upload: String,
}

/// What a complete install answers: the slot written and armed for a
/// one-shot trial at the next reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub slot: String,
    pub version: String,
    pub build_id: String,
    /// `upgrade` or `reinstall`.
    pub accept: String,
    pub bytes: u64,
}

/// One A/B slot as `system.slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// `a` or `b`.
    pub slot: String,
    /// `good`, `trial`, `failed` or `invalid` (see docs/update.md).
    pub state: String,
    /// Boots left for a slot on trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries_left: Option<u32>,
    /// The slot this node runs from.
    pub booted: bool,
    /// What the slot holds, where known: recorded by the install, or for
    /// the booted slot read from its /etc/os-release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// Unix time of the install, for slots written by an update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<i64>,
}
