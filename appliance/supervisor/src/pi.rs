//! The A/B slots of a Raspberry Pi 4 as its firmware sees them, and the
//! decisions an update makes about them. Pure functions of `autoboot.txt`,
//! the firmware's cells (booted partition, `tryboot` flag) and the slots'
//! records, so every rule is unit-tested; nothing here writes.
//!
//! The firmware reads `autoboot.txt` on partition 1 (Raspberry Pi
//! documentation, "autoboot.txt"): with `tryboot_a_b=1` it boots
//! `boot_partition` of `[all]`, or, once, the one under `[tryboot]` after
//! `reboot "0 tryboot"` (0: the default partition; the `tryboot` flag is
//! one-shot, so any later reset boots the default again). Slot a's boot
//! partition is 2, slot b's 3 (board/rpi4-64/genimage.cfg.in). Here:
//!
//! - the default partition's slot is good;
//! - `[tryboot]` naming the other slot's partition arms it: the next
//!   reboot (`reboot "0 tryboot"`, [`reboot_arg`]) tries it once. Before
//!   that reboot the slot's record is marked `tried`, so that a default
//!   boot afterwards knows the trial happened and failed ([`after_boot`]);
//! - `[tryboot]` naming the default partition arms nothing: a slot being
//!   written, or whose install failed, is never booted.
//!
//! An install ([`plan`]) disarms the target first, writes its boot files
//! and rootfs, then records it and arms it; a trial that passes the health
//! gate makes its partition the default ([`commit`]).

use serde::{Deserialize, Serialize};

use crate::slots::{PlanError, SlotState, other};

/// The boot partition of a slot (MBR partition number).
pub fn partition(slot: char) -> u32 {
    if slot == 'b' { 3 } else { 2 }
}

/// The slot whose boot partition is `n`.
pub fn slot_of(n: u32) -> Option<char> {
    match n {
        2 => Some('a'),
        3 => Some('b'),
        _ => None,
    }
}

/// What `autoboot.txt` says: the default boot partition and the one
/// `[tryboot]` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autoboot {
    pub default: u32,
    pub tryboot: u32,
}

impl Autoboot {
    /// The slot `[tryboot]` arms, if it names another partition.
    pub fn armed(&self) -> Option<char> {
        (self.tryboot != self.default)
            .then(|| slot_of(self.tryboot))
            .flatten()
    }
}

/// Reads the `boot_partition` of `[all]` (or before any section) and of
/// `[tryboot]`; the last one of each counts, as for the firmware. `None`
/// if either is missing or not a number, or `tryboot_a_b=1` is not set
/// (without it `[tryboot]` would not switch partitions).
pub fn parse(text: &str) -> Option<Autoboot> {
    let mut section = String::new();
    let (mut default, mut tryboot, mut ab) = (None, None, false);
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = t.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match (section.as_str(), key) {
            ("" | "[all]", "tryboot_a_b") => ab = value == "1",
            ("" | "[all]", "boot_partition") => default = value.parse().ok(),
            ("[tryboot]", "boot_partition") => tryboot = value.parse().ok(),
            _ => {}
        }
    }
    Some(Autoboot {
        default: default?,
        tryboot: tryboot?,
    })
    .filter(|_| ab)
}

/// `autoboot.txt` as this firmware writes it.
pub fn render(a: &Autoboot) -> String {
    format!(
        "[all]\ntryboot_a_b=1\nboot_partition={}\n[tryboot]\nboot_partition={}\n",
        a.default, a.tryboot
    )
}

/// What an install records about a slot (on the autoboot partition, as
/// `slot-<x>.json`), beside the version it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Trial {
    /// A reboot into its trial was made and it was not committed.
    pub tried: bool,
}

/// The state of `slot`: `booted` is the partition the firmware booted and
/// whether with the `tryboot` flag; `record` is the slot's record, if it
/// has one.
pub fn slot_state(
    a: &Autoboot,
    slot: char,
    booted: (u32, bool),
    record: Option<Trial>,
) -> SlotState {
    let p = partition(slot);
    if booted == (p, true) {
        // On trial now: the firmware's one try is this boot.
        return SlotState::Trial { tries_left: 0 };
    }
    if p == a.default {
        return SlotState::Good;
    }
    match (record, a.tryboot == p) {
        (Some(Trial { tried: true }), _) => SlotState::Failed,
        (Some(_), true) => SlotState::Trial { tries_left: 1 },
        // Installed and committed earlier, then superseded: intact, but
        // nothing boots it.
        (Some(_), false) => SlotState::Good,
        (None, _) => SlotState::Invalid,
    }
}

/// What an install into the inactive slot writes to `autoboot.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub target: char,
    /// First, before any of the target is written: nothing armed.
    pub disarmed: String,
    /// Last, after the target's files and record: the target armed.
    pub armed: String,
}

/// Decides an install from `autoboot.txt` and the firmware's cells: the
/// booted slot must be the default one and not on trial, so that a
/// failing new slot has a slot to fall back to.
pub fn plan(a: &Autoboot, booted: (u32, bool)) -> Result<Plan, PlanError> {
    let slot = slot_of(booted.0).ok_or(PlanError::NotASlot(booted.0))?;
    if booted.1 || booted.0 != a.default {
        return Err(PlanError::BootedOnTrial(slot));
    }
    let target = other(slot);
    Ok(Plan {
        target,
        disarmed: render(&Autoboot {
            default: a.default,
            tryboot: a.default,
        }),
        armed: render(&Autoboot {
            default: a.default,
            tryboot: partition(target),
        }),
    })
}

/// The argument of the reboot (`reboot(2)`'s RESTART2): `"0 tryboot"`
/// when a slot is armed and not yet tried, so the firmware tries it once.
pub fn reboot_arg(a: &Autoboot, armed_record: Option<Trial>) -> Option<&'static str> {
    (a.armed().is_some() && armed_record.is_some_and(|r| !r.tried)).then_some("0 tryboot")
}

/// A trial boot that passed the health gate: its partition becomes the
/// default, and nothing is armed. `None` when this boot is not a trial.
pub fn commit(a: &Autoboot, booted: (u32, bool)) -> Option<String> {
    let (p, tryboot) = booted;
    (tryboot && a.tryboot == p && slot_of(p).is_some()).then(|| {
        render(&Autoboot {
            default: p,
            tryboot: p,
        })
    })
}

/// A default boot that passed the health gate: if the armed slot was
/// tried (and so failed: the firmware fell back), it is disarmed and
/// reported. Returns the new `autoboot.txt` and the failed slot.
pub fn after_boot(
    a: &Autoboot,
    booted: (u32, bool),
    armed_record: Option<Trial>,
) -> Option<(String, char)> {
    let slot = a.armed()?;
    (!booted.1 && booted.0 == a.default && armed_record.is_some_and(|r| r.tried)).then(|| {
        (
            render(&Autoboot {
                default: a.default,
                tryboot: a.default,
            }),
            slot,
        )
    })
}

/// The target slot's `cmdline.txt`, made from the booted slot's: the same
/// options, with its root partition (`root=PARTUUID=<disk>-05` for a,
/// `-06` for b) and `alpharen.slot=` switched.
pub fn cmdline_for(template: &str, from: char, to: char) -> String {
    let root = |s: char| if s == 'b' { "-06" } else { "-05" };
    let words: Vec<String> = template
        .split_whitespace()
        .map(|w| {
            if w == format!("alpharen.slot={from}") {
                format!("alpharen.slot={to}")
            } else if w.starts_with("root=PARTUUID=") && w.ends_with(root(from)) {
                format!("{}{}", &w[..w.len() - 3], root(to))
            } else {
                w.to_string()
            }
        })
        .collect();
    format!("{}\n", words.join(" "))
}

/// Where a bundle part of a Pi slot goes: `rootfs` onto the slot's root
/// partition, any other onto its boot partition, as a path (part names
/// cannot hold `/`, so a subdirectory is written `..`:
/// `overlays..disable-bt.dtbo` is `overlays/disable-bt.dtbo`). `None` for
/// a name that would leave the partition or is empty.
pub fn boot_path(part: &str) -> Option<String> {
    let parts: Vec<&str> = part.split("..").collect();
    parts
        .iter()
        .all(|c| !c.is_empty() && !c.starts_with('.'))
        .then(|| parts.join("/"))
}

#[cfg(test)]
#[path = "pi_tests.rs"]
mod tests;
