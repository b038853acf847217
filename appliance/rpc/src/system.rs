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
/// Starts an upload of an update bundle: no params; answers [`Upload`].
/// Only one install runs at a time (`busy` otherwise).
pub const UPDATE_BEGIN: &str = "system.update.begin";
/// The next bytes of the bundle ([`UpdateData`]), at most [`UPDATE_CHUNK`]
/// bytes each, in order; answers `{"received": N}` (bytes so far). The
/// supervisor verifies and writes as the bytes arrive, so a refused bundle
/// (bad signature, wrong board, corrupt block) fails a call a few chunks
/// after the offending bytes (or `end`), with the reason. Error codes: `update_refused`
/// (the bundle's fault), `update_unavailable` (this node cannot install
/// now), `update_failed` (writing the slot failed), `busy`.
pub const UPDATE_DATA: &str = "system.update.data";
/// The end of the bundle ([`UploadId`]): waits until the install is
/// complete and answers [`Installed`].
pub const UPDATE_END: &str = "system.update.end";

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

/// Bytes of bundle per `system.update.data` call: base64 of it stays well
/// within one request line ([`crate::MAX_LINE`]).
pub const UPDATE_CHUNK: usize = 512 * 1024;

/// What `system.update.begin` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub upload: String,
}

/// `system.update.end`'s params.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadId {
    pub upload: String,
}

/// `system.update.data`'s params: `data` is base64 (standard alphabet).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateData {
    pub upload: String,
    pub data: String,
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
