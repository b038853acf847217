//! A/B boot bookkeeping with systemd-boot's boot counting: a loader entry
//! `alpharen-a+3.conf` loses a try at every boot (`alpharen-a+2-1.conf`);
//! once the node is healthy we rename it `alpharen-a.conf` (good). A slot
//! whose tries reach zero is sorted last by the boot loader, so the other
//! slot boots, and we report the failed one.
//!
//! On a Raspberry Pi the firmware does the A/B switch (board/rpi4-64):
//! `autoboot.txt` names the default boot partition and, under `[tryboot]`,
//! the one tried once after `reboot "0 tryboot"`. A trial boot that comes
//! up healthy is committed by making its partition the default
//! (`crate::pi::commit`); one that does not falls back by itself at the
//! next reset, because the firmware's flag is one-shot.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::install::{self, InstallError, SlotRecord};
use crate::slots::{self, SlotState};

const BOOT_MOUNT: &str = "/run/boot";

/// The slot this boot came from (`alpharen.slot=a` on the kernel command line).
pub fn slot_from_cmdline(cmdline: &str) -> Option<char> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("alpharen.slot="))
        .and_then(|s| s.chars().next())
        .filter(|c| matches!(c, 'a' | 'b'))
}

/// The slot this boot came from, without mounting anything: the
/// stand-in disk's `booted` file, or `alpharen.slot=` on the kernel
/// command line; `None` on a node without A/B slots.
pub fn booted_slot() -> Option<char> {
    if let Some(dir) = std::env::var_os(install::TARGET_ENV) {
        return Some(install::standin_booted(Path::new(&dir)));
    }
    slot_from_cmdline(&std::fs::read_to_string("/proc/cmdline").ok()?)
}

/// The name a counting entry of `slot` gets once the boot is good.
pub fn good_name(file: &str, slot: char) -> Option<String> {
    let prefix = format!("alpharen-{slot}+");
    (file.starts_with(&prefix) && file.ends_with(".conf")).then(|| format!("alpharen-{slot}.conf"))
}

/// The slot of an entry that ran out of tries (`alpharen-b+0-3.conf`).
pub fn failed_slot(file: &str) -> Option<char> {
    let rest = file.strip_prefix("alpharen-")?;
    let (slot, counters) = rest.strip_suffix(".conf")?.split_once('+')?;
    let left = counters.split('-').next()?;
    (left == "0").then(|| slot.chars().next()).flatten()
}

/// Serializes the users of /run/boot: the health gate's commit and an
/// update's install would otherwise mount over each other.
static BOOT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether the Raspberry Pi firmware does the A/B switch on this node.
pub(crate) fn is_pi() -> bool {
    Path::new(PI_BOOTLOADER).join("partition").exists()
}

/// Mounts the FAT partition `name` on /run/boot, runs `f`, syncs and
/// unmounts.
pub(crate) fn with_boot_partition<T>(
    name: &str,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let dev = crate::partition::named(name)
        .ok_or_else(|| std::io::Error::other(format!("no partition named \"{name}\"")))?;
    let _held = BOOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(BOOT_MOUNT)?;
    mount(
        Some(&dev),
        BOOT_MOUNT,
        Some("vfat"),
        MsFlags::MS_NOATIME,
        None::<&str>,
    )
    .map_err(std::io::Error::from)?;
    let result = f(Path::new(BOOT_MOUNT));
    nix::unistd::sync();
    let _ = umount2(BOOT_MOUNT, MntFlags::empty());
    result
}

/// The boot the health gate judges: its slot, and whether it is a trial
/// (a counting entry, or the Pi's one-shot `tryboot`) that must prove
/// itself before it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThisBoot {
    pub slot: char,
    pub trial: bool,
}

/// A slot whose trial failed, with what its install recorded.
#[derive(Debug, Clone)]
pub struct FailedSlot {
    pub slot: char,
    pub record: Option<SlotRecord>,
}

fn other_err(e: InstallError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Reads the Pi firmware's cells: (boot partition, tryboot flag).
fn pi_cells() -> std::io::Result<(u32, bool)> {
    let pi = Path::new(PI_BOOTLOADER);
    let read = |name| -> std::io::Result<u32> {
        let bytes = std::fs::read(pi.join(name))?;
        let bytes: [u8; 4] = bytes
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                std::io::Error::other(format!("{PI_BOOTLOADER}/{name}: not a 32-bit cell"))
            })?;
        Ok(u32::from_be_bytes(bytes))
    };
    Ok((read("partition")?, read("tryboot").unwrap_or(0) == 1))
}

/// Whether this node boots from A/B slots at all: a stand-in disk, or a
/// kernel command line naming the slot.
fn ab_slot() -> Option<char> {
    if std::env::var_os(install::TARGET_ENV).is_some() {
        return Some('a'); // the stand-in's own `booted` file says which
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    slot_from_cmdline(&cmdline)
}

/// This boot's slot and whether it is on trial; `None` on a node without
/// A/B slots.
pub fn this_boot() -> std::io::Result<Option<ThisBoot>> {
    let Some(slot) = ab_slot() else {
        return Ok(None);
    };
    if is_pi() {
        return Ok(Some(ThisBoot {
            slot,
            trial: pi_cells()?.1,
        }));
    }
    install::with_target(|t| {
        let names: Vec<String> = t.entries()?.into_iter().map(|(n, _)| n).collect();
        let trial = matches!(slots::slot_state(&names, t.booted), SlotState::Trial { .. });
        Ok(Some(ThisBoot {
            slot: t.booted,
            trial,
        }))
    })
    .map_err(other_err)
}

/// Marks the running slot good (commits a trial) and lists the slots
/// whose tries ran out.
pub fn mark_good() -> std::io::Result<Vec<FailedSlot>> {
    if ab_slot().is_none() {
        return Ok(Vec::new());
    }
    if is_pi() {
        let booted = pi_cells()?;
        if booted.1 {
            with_boot_partition("autoboot", |dir| {
                let path = dir.join("autoboot.txt");
                let text = std::fs::read_to_string(&path)?;
                let autoboot = crate::pi::parse(&text).ok_or_else(|| {
                    std::io::Error::other(format!(
                        "{}: no tryboot_a_b=1 with a boot_partition under [all] and [tryboot]",
                        path.display()
                    ))
                })?;
                if let Some(next) = crate::pi::commit(&autoboot, booted) {
                    crate::setup::write_durably(&path, next.as_bytes())?;
                }
                Ok(())
            })?;
        }
        return Ok(Vec::new());
    }
    install::with_target(|t| {
        let dir = t.entries_dir();
        let mut failed = Vec::new();
        for (name, _) in t.entries()? {
            if let Some(good) = good_name(&name, t.booted) {
                std::fs::rename(dir.join(&name), dir.join(good)).map_err(|source| {
                    InstallError::Io {
                        what: format!("renaming {name}"),
                        source,
                    }
                })?;
            } else if let Some(slot) = failed_slot(&name) {
                let record = std::fs::read(t.record_path(slot))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                failed.push(FailedSlot { slot, record });
            }
        }
        sync_dir(&dir)?;
        Ok(failed)
    })
    .map_err(other_err)
}

/// Gives up on the running slot's trial, so the next boot is the other
/// slot's: its counting entry loses all its tries (`alpharen-b+0-3.conf`).
/// On the Pi there is nothing to write: the firmware's `tryboot` flag was
/// one-shot, the next reset boots the default partition.
pub fn mark_failed() -> std::io::Result<()> {
    if ab_slot().is_none() || is_pi() {
        return Ok(());
    }
    install::with_target(|t| {
        let dir = t.entries_dir();
        for (name, _) in t.entries()? {
            if let Some(failed) = failed_name(&name, t.booted) {
                std::fs::rename(dir.join(&name), dir.join(failed)).map_err(|source| {
                    InstallError::Io {
                        what: format!("renaming {name}"),
                        source,
                    }
                })?;
            }
        }
        sync_dir(&dir)
    })
    .map_err(other_err)
}

fn sync_dir(dir: &Path) -> Result<(), InstallError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| InstallError::Io {
            what: format!("syncing {}", dir.display()),
            source,
        })
}

/// The name a counting entry of `slot` gets when its trial is given up:
/// no tries left, the ones used kept (`alpharen-b+2-1.conf` →
/// `alpharen-b+0-3.conf`).
pub fn failed_name(file: &str, slot: char) -> Option<String> {
    let counters = file
        .strip_prefix(&format!("alpharen-{slot}+"))?
        .strip_suffix(".conf")?;
    let mut it = counters.split('-');
    let left: u32 = it.next()?.parse().ok()?;
    let done: u32 = it.next().map_or(Some(0), |d| d.parse().ok())?;
    (left > 0).then(|| format!("alpharen-{slot}+0-{}.conf", left + done))
}

/// The Raspberry Pi firmware's view of this boot (big-endian cells).
const PI_BOOTLOADER: &str = "/proc/device-tree/chosen/bootloader";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_like_systemd_boot_writes_them() {
        assert_eq!(
            slot_from_cmdline("console=ttyS0 alpharen.slot=b quiet"),
            Some('b')
        );
        assert_eq!(slot_from_cmdline("console=ttyS0"), None);
        assert_eq!(
            good_name("alpharen-a+2-1.conf", 'a').as_deref(),
            Some("alpharen-a.conf")
        );
        assert_eq!(
            good_name("alpharen-a+3.conf", 'a').as_deref(),
            Some("alpharen-a.conf")
        );
        assert_eq!(good_name("alpharen-b+2-1.conf", 'a'), None);
        assert_eq!(good_name("alpharen-a.conf", 'a'), None);
        assert_eq!(failed_slot("alpharen-b+0-3.conf"), Some('b'));
        assert_eq!(failed_slot("alpharen-b+1-2.conf"), None);
        assert_eq!(failed_slot("alpharen-a.conf"), None);
        assert_eq!(
            failed_name("alpharen-b+2-1.conf", 'b').as_deref(),
            Some("alpharen-b+0-3.conf")
        );
        assert_eq!(
            failed_name("alpharen-b+3.conf", 'b').as_deref(),
            Some("alpharen-b+0-3.conf")
        );
        assert_eq!(failed_name("alpharen-b+0-3.conf", 'b'), None);
        assert_eq!(failed_name("alpharen-b.conf", 'b'), None);
        assert_eq!(failed_name("alpharen-a+2-1.conf", 'b'), None);
    }
}
