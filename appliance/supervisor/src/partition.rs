//! Finding the node's partitions: by GPT partition name, or on the
//! Raspberry Pi's MBR disk, which has no names, by number.

use std::path::{Path, PathBuf};

/// The block device whose GPT partition name is `name` (from sysfs
/// uevents), or on the Raspberry Pi's MBR disk, which has no names, the
/// partition with that role's number (board/rpi4-64/genimage.cfg.in).
pub(crate) fn named(name: &str) -> Option<PathBuf> {
    let number = MBR_ROLES.iter().find(|(n, _)| *n == name).map(|r| r.1);
    let entries = std::fs::read_dir("/sys/class/block").ok()?;
    entries.flatten().find_map(|e| {
        let uevent = std::fs::read_to_string(e.path().join("uevent")).ok()?;
        let mut dev = None;
        let mut named = false;
        let mut numbered = false;
        for line in uevent.lines() {
            if let Some(d) = line.strip_prefix("DEVNAME=") {
                dev = Some(PathBuf::from("/dev").join(d));
            }
            named |= line.strip_prefix("PARTNAME=") == Some(name);
            numbered |= number.is_some_and(|n| line.strip_prefix("PARTN=") == Some(n));
        }
        let ours = named || (numbered && on_our_mbr_disk(&e.path()));
        dev.filter(|_| ours)
    })
}

/// The MBR disk signature of the Raspberry Pi image (board/rpi4-64/board.env).
const MBR_SIGNATURE: [u8; 4] = 0x4152_4e34u32.to_le_bytes();
/// Roles by partition number on that disk.
const MBR_ROLES: [(&str, &str); 2] = [("autoboot", "1"), ("data", "7")];

/// Whether the disk holding this sysfs partition carries our MBR signature.
fn on_our_mbr_disk(partition: &Path) -> bool {
    let Some(disk) = std::fs::canonicalize(partition)
        .ok()
        .and_then(|p| p.parent().and_then(|d| d.file_name()).map(|d| d.to_owned()))
    else {
        return false;
    };
    first_sector(&Path::new("/dev").join(disk))
        .is_ok_and(|head| head[440..444] == MBR_SIGNATURE && head[510..] == [0x55, 0xaa])
}

/// The first 512 bytes of a disk: its MBR (or a GPT's protective one).
pub(crate) fn first_sector(disk: &Path) -> std::io::Result<[u8; 512]> {
    let mut head = [0u8; 512];
    std::io::Read::read_exact(&mut std::fs::File::open(disk)?, &mut head)?;
    Ok(head)
}
