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
        match run("/usr/sbin/e2fsck", &["-y", &dev.display().to_string()]) {
            // 0 clean, 1 errors corrected, 2 corrected and reboot advised.
            Ok(0..=2) if mount_ext4(dev, target).is_ok() => {
                say(&format!("data filesystem on {show} repaired and mounted"));
                return Ok(());
            }
            Ok(code) => say(&format!("e2fsck could not repair {show} (exit {code})")),
            Err(e) => say(&e),
        }
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

fn format(dev: &Path) -> Result<(), String> {
    let path = dev.display().to_string();
    match run(
        "/usr/sbin/mke2fs",
        &["-q", "-F", "-t", "ext4", "-L", LABEL, &path],
    )? {
        0 => Ok(()),
        code => Err(format!("mke2fs {path} failed (exit {code})")),
    }
}

/// Moves the GPT backup header to the end of the disk, extends the
/// partition over the free space after it and tells the kernel. `None`:
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
    let disk = Path::new("/dev").join(disk).display().to_string();
    let sectors = |p: &Path| read(p).map(|s| s.parse::<u64>().unwrap_or(0));
    let before = sectors(&sys.join("size"))?;
    run(
        "sfdisk",
        &["-q", "--no-reread", "--relocate", "gpt-bak-std", &disk],
    )?;
    let code = run_with_input(
        "/usr/sbin/sfdisk",
        &["-q", "--no-reread", "-N", &number, &disk],
        ", +\n",
    )?;
    if code != 0 {
        return Err(format!("sfdisk -N {number} {disk} failed (exit {code})"));
    }
    // The root is mounted from this disk, so the kernel cannot re-read the
    // whole table; update just this partition (BLKPG).
    let code = run("/usr/sbin/partx", &["-u", "--nr", &number, &disk])?;
    if code != 0 {
        return Err(format!(
            "partx -u --nr {number} {disk} failed (exit {code})"
        ));
    }
    let after = sectors(&sys.join("size"))?;
    Ok((after > before).then_some(after / 2048))
}

fn run(program: &str, args: &[&str]) -> Result<i32, String> {
    run_with_input(program, args, "")
}

fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<i32, String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for {program}: {e}"))?;
    Ok(status.code().unwrap_or(-1))
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
