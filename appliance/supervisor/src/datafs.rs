//! The data partition at boot. The image ships it blank and small; the
//! first boot grows it to the end of the disk and formats it. A data
//! filesystem that will not mount is checked, and if that fails too it is
//! either reformatted (kernel command line `alpharen.data=reformat`) or left
//! alone for recovery while the node runs on a temporary state directory.
//! Either way the node boots and stays reachable.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{MsFlags, mount};

/// The label `mkfs` gives the data filesystem (and the image documents).
const LABEL: &str = "ALPHAREN_DATA";
/// How much of the partition must be zeros to call it blank.
const BLANK_PROBE: usize = 1 << 20;

/// What the first megabyte of the partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Blank,
    Ext4,
    Unknown,
}

/// What to do with a filesystem that still will not mount after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCorrupt {
    Reformat,
    Keep,
}

/// The ext2/3/4 superblock sits at byte 1024, its magic 0xEF53 at offset 56.
pub fn classify(head: &[u8]) -> Found {
    if head.iter().all(|&b| b == 0) {
        Found::Blank
    } else if head.get(1024 + 56..1024 + 58) == Some(&[0x53, 0xEF][..]) {
        Found::Ext4
    } else {
        Found::Unknown
    }
}

pub fn on_corrupt(cmdline: &str) -> OnCorrupt {
    if cmdline
        .split_whitespace()
        .any(|w| w == "alpharen.data=reformat")
    {
        OnCorrupt::Reformat
    } else {
        OnCorrupt::Keep
    }
}

/// Sets up and mounts the data partition on `target`; `Err` says why the
/// node has to run without it.
pub fn prepare(dev: &Path, target: &Path, say: impl Fn(&str)) -> Result<(), String> {
    let show = dev.display();
    let mut head = vec![0u8; BLANK_PROBE];
    std::fs::File::open(dev)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("cannot read {show}: {e}"))?;
    let found = classify(&head);
    if found == Found::Blank {
        match grow(dev) {
            Ok(Some(mib)) => say(&format!("data partition {show} grown to {mib} MiB")),
            Ok(None) => {}
            Err(e) => say(&format!("cannot grow the data partition {show}: {e}")),
        }
        format(dev)?;
        say(&format!(
            "data partition {show} was blank: formatted ext4 ({LABEL})"
        ));
        return mount_ext4(dev, target);
    }
    if found == Found::Ext4 && mount_ext4(dev, target).is_ok() {
        return Ok(());
    }
    if found == Found::Ext4 {
        say(&format!(
            "data filesystem on {show} does not mount; checking it"
        ));
        // Exit 1 (errors corrected) counts as failure for `run`; what
        // matters is whether it mounts afterwards.
        let checked = run("/usr/sbin/e2fsck", &["-y", &dev.display().to_string()], "");
        if mount_ext4(dev, target).is_ok() {
            say(&format!("data filesystem on {show} repaired and mounted"));
            return Ok(());
        }
        say(&format!(
            "e2fsck could not repair {show}: {}",
            checked
                .err()
                .unwrap_or_else(|| "it still does not mount".into())
        ));
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    match on_corrupt(&cmdline) {
        OnCorrupt::Reformat => {
            format(dev)?;
            say(&format!(
                "data partition {show} was unreadable and alpharen.data=reformat is set: formatted it empty"
            ));
            mount_ext4(dev, target)
        }
        OnCorrupt::Keep => Err(format!(
            "{show} holds no readable ext4 filesystem; it is left as it is for recovery (boot with alpharen.data=reformat to start it afresh)"
        )),
    }
}

fn mount_ext4(dev: &Path, target: &Path) -> Result<(), String> {
    mount(
        Some(dev),
        target,
        Some("ext4"),
        MsFlags::MS_NOATIME,
        None::<&str>,
    )
    .map_err(|e| format!("{}: {e}", dev.display()))
}

/// Lazy inode table and journal init and no discard: the kernel finishes
/// the tables in the background, so the first boot is not held up.
fn format(dev: &Path) -> Result<(), String> {
    let path = dev.display().to_string();
    let args = ["-q", "-F", "-t", "ext4", "-L", LABEL, "-E", LAZY, &path];
    run("/usr/sbin/mke2fs", &args, "")
}

const LAZY: &str = "nodiscard,lazy_itable_init=1,lazy_journal_init=1";

/// Moves the GPT backup header to the end of the disk (a no-op on MBR),
/// extends the partition over the free space after it and tells the kernel. `None`:
/// nothing to grow.
fn grow(dev: &Path) -> Result<Option<u64>, String> {
    let name = dev
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sys = PathBuf::from("/sys/class/block").join(&name);
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let number = read(&sys.join("partition"))?;
    let disk = std::fs::canonicalize(&sys)
        .ok()
        .and_then(|p| p.parent().and_then(|d| d.file_name()).map(|d| d.to_owned()))
        .ok_or_else(|| format!("no disk found for {name}"))?;
    let sectors = |p: &Path| read(p).map(|s| s.parse::<u64>().unwrap_or(0));
    let before = sectors(&sys.join("size"))?;
    let start = sectors(&sys.join("start"))?;
    let disk_size = sectors(&sys.join("..").join("size"))?;
    if !worth_growing(disk_size, start, before) {
        return Ok(None);
    }
    let disk = Path::new("/dev").join(disk).display().to_string();
    run(
        "/usr/sbin/sfdisk",
        &["-q", "--no-reread", "--relocate", "gpt-bak-std", &disk],
        "",
    )?;
    let extend = |number: &str| {
        run(
            "/usr/sbin/sfdisk",
            &["-q", "--no-reread", "--no-tell-kernel", "-N", number, &disk],
            ", +\n",
        )
    };
    // A logical partition of an MBR disk (the Raspberry Pi layout) can
    // only grow once its extended container has.
    let mbr =
        crate::partition::first_sector(Path::new(&disk)).map_err(|e| format!("{disk}: {e}"))?;
    if number.parse::<u8>().is_ok_and(|n| n > 4)
        && let Some(ext) = extended_partition(&mbr)
    {
        extend(&ext.to_string())?;
    }
    extend(&number)?;
    // The root is mounted from this disk, so the kernel cannot re-read the
    // whole table; update just this partition (BLKPG).
    run("/usr/sbin/partx", &["-u", "--nr", &number, &disk], "")?;
    let after = sectors(&sys.join("size"))?;
    Ok((after > before).then_some(after / 2048))
}

/// The number of the extended partition in an MBR (partition types 0x05,
/// 0x0f and 0x85); `None` for a GPT's protective MBR or no extended one.
fn extended_partition(mbr: &[u8; 512]) -> Option<u8> {
    if mbr[510..] != [0x55, 0xaa] {
        return None;
    }
    (0..4u8).find_map(|i| {
        let kind = mbr[446 + 16 * usize::from(i) + 4];
        matches!(kind, 0x05 | 0x0f | 0x85).then_some(i + 1)
    })
}

/// Runs a tool; its complaints become the error (and stay off the console
/// when it succeeds).
fn run(program: &str, args: &[&str], input: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot wait for {program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    let why = why.trim().lines().last().unwrap_or("no message");
    Err(format!(
        "{program} {} failed ({}): {why}",
        args.join(" "),
        out.status
    ))
}

/// Growing rewrites the partition table; only worth it for at least 1 MiB
/// beyond the partition (and the 33 sectors of the backup GPT).
pub fn worth_growing(disk_sectors: u64, start: u64, size: u64) -> bool {
    disk_sectors.saturating_sub(start + size + 33) >= 2048
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_blank_from_ext4_from_anything_else() {
        let mut head = vec![0u8; 4096];
        assert_eq!(classify(&head), Found::Blank);
        head[1024 + 56] = 0x53;
        head[1024 + 57] = 0xEF;
        assert_eq!(classify(&head), Found::Ext4);
        head[1024 + 57] = 0;
        assert_eq!(classify(&head), Found::Unknown);
        assert_eq!(classify(&[0, 0, 7]), Found::Unknown);
    }

    #[test]
    fn reformat_only_when_asked_on_the_command_line() {
        assert_eq!(
            on_corrupt("console=ttyS0 alpharen.data=reformat alpharen.slot=a"),
            OnCorrupt::Reformat
        );
        assert_eq!(on_corrupt("console=ttyS0 alpharen.slot=a"), OnCorrupt::Keep);
        assert_eq!(on_corrupt("alpharen.data=reformatx"), OnCorrupt::Keep);
    }

    #[test]
    fn finds_the_extended_partition_of_an_mbr() {
        let mut mbr = [0u8; 512];
        assert_eq!(extended_partition(&mbr), None);
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        mbr[446 + 4] = 0x0c;
        mbr[446 + 16 + 4] = 0x0c;
        assert_eq!(extended_partition(&mbr), None);
        mbr[446 + 48 + 4] = 0x0f;
        assert_eq!(extended_partition(&mbr), Some(4));
        // A GPT's protective MBR: one partition of type 0xee.
        let mut pmbr = [0u8; 512];
        pmbr[510] = 0x55;
        pmbr[511] = 0xaa;
        pmbr[446 + 4] = 0xee;
        assert_eq!(extended_partition(&pmbr), None);
    }

    #[test]
    fn grows_only_into_a_megabyte_or_more() {
        // 64 MiB partition at 1 MiB on a disk with just the backup GPT after it.
        assert!(!worth_growing(2048 + 131_072 + 33, 2048, 131_072));
        assert!(!worth_growing(2048 + 131_072 + 33 + 2047, 2048, 131_072));
        assert!(worth_growing(2048 + 131_072 + 33 + 2048, 2048, 131_072));
        assert!(!worth_growing(100, 2048, 131_072));
    }

    #[test]
    fn foreign_data_is_left_alone() {
        // Blank and ext4 need a real disk (the QEMU tests); this one runs
        // on a plain file.
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("data.img");
        std::fs::write(&img, vec![0x42u8; BLANK_PROBE]).unwrap();
        let err = prepare(&img, dir.path(), |_| {}).unwrap_err();
        assert!(err.contains("left as it is"), "{err}");
        assert_eq!(std::fs::read(&img).unwrap(), vec![0x42u8; BLANK_PROBE]);
    }
}
