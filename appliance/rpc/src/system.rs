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

/// Schedules a reboot (into an installed slot's trial, typically):
/// [`ScheduleReboot`] params, answers [`RebootSchedule`]. Replaces an
/// earlier schedule. Kept in memory: a reboot or restart forgets it.
pub const REBOOT_SCHEDULE: &str = "system.reboot.schedule";
/// The reboot scheduled, if any: no params, answers [`RebootSchedule`].
pub const REBOOT_SCHEDULED: &str = "system.reboot.scheduled";

/// `system.reboot.schedule`'s params: `at` a local time `HH:MM` (the
/// node's `node.timezone`; the next such time, today or tomorrow), or
/// `cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleReboot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default)]
    pub cancel: bool,
}

/// `HH:MM` (00:00 to 23:59) as minutes of the day: checked by `ctl`
/// before it uploads a bundle to be rebooted into at that time, and by
/// the supervisor.
pub fn parse_time_of_day(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !digits(h) || !digits(m) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// The pending scheduled reboot: its Unix time, or null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootSchedule {
    pub at: Option<i64>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(parse_time_of_day("03:30"), Some(210));
        assert_eq!(parse_time_of_day("3:05"), Some(185));
        assert_eq!(parse_time_of_day("23:59"), Some(1439));
        for bad in [
            "24:00", "12:60", "12", "12:5", ":30", "ab:cd", "-1:00", "003:00", "+1:00",
        ] {
            assert_eq!(parse_time_of_day(bad), None, "{bad}");
        }
    }
}
