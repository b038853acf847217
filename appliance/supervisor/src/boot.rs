//! A/B boot bookkeeping with systemd-boot's boot counting: a loader entry
//! `alpharen-a+3.conf` loses a try at every boot (`alpharen-a+2-1.conf`);
//! once the node is healthy we rename it `alpharen-a.conf` (good). A slot
//! whose tries reach zero is sorted last by the boot loader, so the other
//! slot boots, and we report the failed one.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

const ESP_MOUNT: &str = "/run/esp";

/// The slot this boot came from (`alpharen.slot=a` on the kernel command line).
pub fn slot_from_cmdline(cmdline: &str) -> Option<char> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("alpharen.slot="))
        .and_then(|s| s.chars().next())
        .filter(|c| matches!(c, 'a' | 'b'))
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

fn with_esp<T>(f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    let dev = crate::init::partition_named("esp")
        .ok_or_else(|| std::io::Error::other("no partition named \"esp\""))?;
    std::fs::create_dir_all(ESP_MOUNT)?;
    mount(
        Some(&dev),
        ESP_MOUNT,
        Some("vfat"),
        MsFlags::MS_NOATIME,
        None::<&str>,
    )
    .map_err(std::io::Error::from)?;
    let result = f(Path::new(ESP_MOUNT));
    nix::unistd::sync();
    let _ = umount2(ESP_MOUNT, MntFlags::empty());
    result
}

/// Marks the running slot good and lists slots that failed their tries.
pub fn mark_good() -> std::io::Result<(Option<char>, Vec<char>)> {
    let cmdline = std::fs::read_to_string("/proc/cmdline")?;
    let Some(slot) = slot_from_cmdline(&cmdline) else {
        return Ok((None, Vec::new()));
    };
    with_esp(|esp| {
        let dir = esp.join("loader/entries");
        let mut failed = Vec::new();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(good) = good_name(&name, slot) {
                std::fs::rename(entry.path(), dir.join(good))?;
            } else if let Some(bad) = failed_slot(&name) {
                failed.push(bad);
            }
        }
        Ok((Some(slot), failed))
    })
}

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
    }
}
