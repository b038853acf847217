//! The Raspberry Pi's slots on disk: the I/O around the decisions of
//! `crate::pi`. The partitions are given as paths ([`PiTarget`]), so the
//! unit tests run every step against plain files and directories.
//!
//! An install, in this order, so an interruption anywhere leaves a
//! bootable node:
//!
//! 1. plan from `autoboot.txt` and the firmware's cells (`pi::plan`): the
//!    booted slot must be the default one and not on trial;
//! 2. the bundle's signature, manifest and the decision, the boot parts it
//!    must bring (`pi::boot_needs`) and the room on the root partition: a
//!    refusal touches nothing;
//! 3. the booted slot gets a record if it has none (as flashed: its
//!    version from os-release), so it stays `good` once superseded; the
//!    target is marked invalid: `autoboot.txt` with nothing armed, the
//!    target's record (`slot-<x>.json` on the autoboot partition) removed,
//!    the autoboot file system synced, then every file of the target's
//!    boot partition removed;
//! 4. each part streams into the slot (`rootfs` onto its root partition,
//!    the others onto its boot partition, `..` read as `/`), verified
//!    block by block; after the last one all are fsynced together;
//! 5. after the end of the bundle checks out: the keys it adds, the
//!    target's `cmdline.txt` (from the booted slot's), its record
//!    (`tried: false`) and last `autoboot.txt` with the target armed under
//!    `[tryboot]`, each written durably.
//!
//! Before a reboot the armed slot's record is marked `tried` and the
//! reboot argument is `"0 tryboot"` ([`prepare_reboot`]); the health gate
//! then commits the trial or, on the default slot after a failed trial,
//! disarms and reports it ([`mark_good`]).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use alpharen_update::{BundleReader, Running, TrustedKeys};
use serde::{Deserialize, Serialize};

use crate::boot::FailedSlot;
use crate::install::{self, Done, InstallError, SlotRecord, io_err};
use crate::pi::{self, Autoboot, Trial};
use crate::slotfile::Dest;
use crate::slots::{PlanError, other};

/// The Pi's disk as an install sees it.
#[derive(Debug, Clone)]
pub struct PiTarget {
    /// What the firmware booted: its boot partition and `tryboot` flag.
    pub booted: (u32, bool),
    /// Partition 1, mounted: `autoboot.txt` and the slots' records.
    pub autoboot: PathBuf,
    /// The boot partitions of a and b (2 and 3), mounted.
    pub boot: [PathBuf; 2],
    /// The root partitions of a and b (5 and 6; files in tests).
    pub rootfs: [PathBuf; 2],
}

/// A Pi slot's record: what it holds, and whether its trial reboot was
/// made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiRecord {
    #[serde(flatten)]
    pub slot: SlotRecord,
    #[serde(flatten)]
    pub trial: Trial,
}

fn idx(slot: char) -> usize {
    usize::from(slot == 'b')
}

impl PiTarget {
    fn autoboot_txt(&self) -> PathBuf {
        self.autoboot.join("autoboot.txt")
    }

    fn record_path(&self, slot: char) -> PathBuf {
        self.autoboot.join(format!("slot-{slot}.json"))
    }

    fn read_autoboot(&self) -> Result<Autoboot, InstallError> {
        let path = self.autoboot_txt();
        let text = std::fs::read_to_string(&path)
            .map_err(io_err(format!("reading {}", path.display())))?;
        pi::parse(&text).ok_or_else(|| {
            InstallError::Unsupported(format!(
                "{}: no tryboot_a_b=1 with a boot_partition under [all] and [tryboot]",
                path.display()
            ))
        })
    }

    fn write_autoboot(&self, text: &str) -> Result<(), InstallError> {
        let path = self.autoboot_txt();
        crate::setup::write_durably(&path, text.as_bytes())
            .map_err(io_err(format!("writing {}", path.display())))
    }

    /// A slot's record; `None` if it has none or it does not parse.
    pub fn record(&self, slot: char) -> Option<PiRecord> {
        std::fs::read(self.record_path(slot))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    fn write_record(&self, slot: char, r: &PiRecord) -> Result<(), InstallError> {
        let path = self.record_path(slot);
        let json = serde_json::to_vec_pretty(r).unwrap_or_default();
        crate::setup::write_durably(&path, &json)
            .map_err(io_err(format!("writing {}", path.display())))
    }

    fn booted_slot(&self) -> Result<char, InstallError> {
        pi::slot_of(self.booted.0).ok_or(InstallError::Plan(PlanError::NotASlot(self.booted.0)))
    }
}

/// Installs the bundle read from `input` into the inactive slot of `t`
/// (the order: the module's doc).
pub fn install<R: Read>(
    input: R,
    keys: &TrustedKeys,
    kept: &Path,
    running: &Running,
    t: &PiTarget,
    log: &dyn Fn(&str),
) -> Result<Done, InstallError> {
    let plan = pi::plan(&t.read_autoboot()?, t.booted)?;
    let from = other(plan.target);
    let read = |name: &str| {
        let path = t.boot[idx(from)].join(name);
        std::fs::read_to_string(&path).map_err(io_err(format!("reading {}", path.display())))
    };
    let cmdline = pi::cmdline_for(&read("cmdline.txt")?, from, plan.target);
    let needs = pi::boot_needs(&read("config.txt")?);
    let mut reader = BundleReader::open(input, keys)?;
    let accept = alpharen_update::decide(reader.manifest(), running)?;
    let manifest = reader.manifest().clone();
    for need in needs {
        if !manifest.parts.iter().any(|p| p.name == need) {
            return Err(InstallError::MissingPart { part: need });
        }
    }
    if let Some(p) = manifest
        .parts
        .iter()
        .find(|p| p.name != "rootfs" && pi::boot_path(&p.name).is_none())
    {
        return Err(InstallError::BadPart {
            part: p.name.clone(),
        });
    }
    let dev = &t.rootfs[idx(plan.target)];
    install::check_room(&manifest, dev)?;
    if t.record(from).is_none() {
        // The slot as flashed has no record; once the target is the
        // default, a slot without one would show invalid. What it holds
        // is what runs now; when it was written is not known (0).
        let os = install::os_release();
        let flashed = SlotRecord {
            version: running.version.clone(),
            build_id: install::os_release_field(&os, "BUILD_ID").unwrap_or_default(),
            board: running.board.clone(),
            installed_at: 0,
            signer: String::new(),
        };
        t.write_record(
            from,
            &PiRecord {
                slot: flashed,
                trial: Trial::default(),
            },
        )?;
    }
    invalidate(t, plan.target, &plan.disarmed)?;
    log(&format!(
        "update: slot {} marked invalid; writing version {} ({}) into it",
        plan.target, manifest.version, manifest.build_id
    ));
    let boot = &t.boot[idx(plan.target)];
    let (bytes, files) = install::write_parts(&mut reader, log, |part| {
        if part == "rootfs" {
            return Dest::device(dev);
        }
        let path = boot.join(pi::boot_path(part).unwrap_or_default());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        }
        Dest::create(path)
    })?;
    install::sync_together(files.iter().map(|(p, f)| (p.as_path(), f)))?;
    let record = install::finish(reader, &manifest, kept, log)?;
    let path = boot.join("cmdline.txt");
    crate::setup::write_durably(&path, cmdline.as_bytes())
        .map_err(io_err(format!("writing {}", path.display())))?;
    t.write_record(
        plan.target,
        &PiRecord {
            slot: record.clone(),
            trial: Trial { tried: false },
        },
    )?;
    t.write_autoboot(&plan.armed)?;
    log(&format!(
        "update: slot {} holds version {} and is armed for a trial at the next reboot ([tryboot] boot_partition={})",
        plan.target,
        record.version,
        pi::partition(plan.target)
    ));
    Ok(Done {
        slot: plan.target,
        record,
        accept,
        bytes,
    })
}

/// Disarms `target` and removes its record, durably, then empties its boot
/// partition: from here on nothing boots it until a complete install arms
/// it again.
fn invalidate(t: &PiTarget, target: char, disarmed: &str) -> Result<(), InstallError> {
    t.write_autoboot(disarmed)?;
    let rec = t.record_path(target);
    match std::fs::remove_file(&rec) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_err(format!("removing {}", rec.display()))(e));
        }
        _ => {}
    }
    std::fs::File::open(&t.autoboot)
        .and_then(|d| nix::unistd::syncfs(&d).map_err(io::Error::from))
        .map_err(io_err(format!(
            "syncing the file system of {}",
            t.autoboot.display()
        )))?;
    let boot = &t.boot[idx(target)];
    let list = std::fs::read_dir(boot).map_err(io_err(format!("reading {}", boot.display())))?;
    for e in list {
        let path = e
            .map_err(io_err(format!("reading {}", boot.display())))?
            .path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(io_err(format!("removing {}", path.display())))?;
    }
    Ok(())
}

/// Each slot's state, what it holds and whether it is the booted one.
pub fn slots(t: &PiTarget) -> Result<Vec<alpharen_rpc::system::Slot>, InstallError> {
    let a = t.read_autoboot()?;
    let booted = pi::slot_of(t.booted.0);
    let os = install::os_release();
    Ok(['a', 'b']
        .into_iter()
        .map(|s| {
            let record = t.record(s);
            let state = pi::slot_state(&a, s, t.booted, record.as_ref().map(|r| r.trial));
            install::slot_row(s, state, record.map(|r| r.slot), booted == Some(s), &os)
        })
        .collect())
}

/// Whether this boot is a trial the health gate is still to judge.
pub fn on_trial(t: &PiTarget) -> Result<bool, InstallError> {
    Ok(pi::on_trial(&t.read_autoboot()?, t.booted))
}

/// Before a reboot: when a slot is armed and not yet tried, marks its
/// record `tried` (durably, so a default boot afterwards knows the trial
/// happened) and returns the reboot argument, `"0 tryboot"`.
pub fn prepare_reboot(t: &PiTarget) -> Result<Option<&'static str>, InstallError> {
    let a = t.read_autoboot()?;
    let Some(slot) = a.armed() else {
        return Ok(None);
    };
    let record = t.record(slot);
    let arg = pi::reboot_arg(&a, record.as_ref().map(|r| r.trial));
    if let (Some(_), Some(mut r)) = (arg, record) {
        r.trial.tried = true;
        t.write_record(slot, &r)?;
    }
    Ok(arg)
}

/// The health gate passed: a trial boot is committed (its partition the
/// default, its record no longer `tried`); a default boot disarms a slot
/// whose trial was made and failed, and returns it to be reported.
pub fn mark_good(t: &PiTarget) -> Result<Vec<FailedSlot>, InstallError> {
    let a = t.read_autoboot()?;
    if let Some(next) = pi::commit(&a, t.booted) {
        t.write_autoboot(&next)?;
        let slot = t.booted_slot()?;
        if let Some(mut r) = t.record(slot).filter(|r| r.trial.tried) {
            r.trial.tried = false;
            t.write_record(slot, &r)?;
        }
        return Ok(Vec::new());
    }
    let record = a.armed().and_then(|s| t.record(s));
    match pi::after_boot(&a, t.booted, record.as_ref().map(|r| r.trial)) {
        Some((next, slot)) => {
            t.write_autoboot(&next)?;
            Ok(vec![FailedSlot {
                slot,
                record: record.map(|r| r.slot),
            }])
        }
        None => Ok(Vec::new()),
    }
}

/// What a stand-in disk's `booted` file says: the slot, and `tryboot`
/// after it for a trial boot (`b tryboot`).
fn standin_cells(dir: &Path) -> (u32, bool) {
    let text = std::fs::read_to_string(dir.join("booted")).unwrap_or_default();
    let slot = install::standin_booted(dir);
    (
        pi::partition(slot),
        text.split_whitespace().any(|w| w == "tryboot"),
    )
}

/// Whether the stand-in disk `dir` is a Pi's (it has `autoboot/`).
pub(crate) fn is_standin(dir: &Path) -> bool {
    dir.join("autoboot").is_dir()
}

/// Runs `f` with this node's [`PiTarget`]: the stand-in directory of
/// `install::TARGET_ENV` (`autoboot/`, `boot-a/`, `boot-b/`, files
/// `rootfs-a`, `rootfs-b`, `booted`), or the real disk with partitions 1
/// to 3 mounted for the duration.
pub fn with_target<T>(
    f: impl FnOnce(&PiTarget) -> Result<T, InstallError>,
) -> Result<T, InstallError> {
    if let Some(dir) = std::env::var_os(install::TARGET_ENV).map(PathBuf::from) {
        return f(&PiTarget {
            booted: standin_cells(&dir),
            autoboot: dir.join("autoboot"),
            boot: [dir.join("boot-a"), dir.join("boot-b")],
            rootfs: [dir.join("rootfs-a"), dir.join("rootfs-b")],
        });
    }
    let booted = crate::boot::pi_cells().map_err(io_err("reading the firmware's boot cells"))?;
    let part = |name: &str| {
        crate::partition::named(name)
            .ok_or_else(|| InstallError::Unsupported(format!("no partition {name:?} on this node")))
    };
    let rootfs = [part("rootfs-a")?, part("rootfs-b")?];
    let mut result = None;
    crate::boot::with_boot_partitions(&["autoboot", "boot-a", "boot-b"], |dirs| {
        if let [autoboot, a, b] = dirs {
            result = Some(f(&PiTarget {
                booted,
                autoboot: autoboot.clone(),
                boot: [a.clone(), b.clone()],
                rootfs,
            }));
        }
        Ok(())
    })
    .map_err(io_err("mounting the boot partitions"))?;
    result.unwrap_or_else(|| {
        Err(InstallError::Unsupported(
            "the boot partitions were not mounted".into(),
        ))
    })
}

#[cfg(test)]
#[path = "pi_disk_tests.rs"]
mod tests;
