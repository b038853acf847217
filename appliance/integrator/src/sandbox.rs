//! What a Python worker may reach. It starts with an empty environment
//! (only `PATH` and the locale), `PR_SET_NO_NEW_PRIVS`, and, where the
//! kernel has Landlock, a filesystem ruleset allowing only reading and
//! executing what Python needs: the system directories, a few files of
//! `/etc`, the random devices, the interpreter's own prefix and the SDK.
//! Nothing else of the state directory: a worker cannot open
//! `alpharen.db` or a secret; it gets what it needs over its pipes. The
//! deployed code reaches it in the `sync` frame, not from disk.
//!
//! The ruleset is built before the fork (it opens paths and allocates);
//! between fork and exec only `prctl` and `landlock_restrict_self` run.
//!
//! The integrator itself is made non-dumpable ([`hide_from_workers`]), so
//! a worker of the same user cannot read its environment or memory
//! through `/proc`.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, path_beneath_rules,
};

/// The newest Landlock ABI this code knows; older kernels enforce what
/// they can (best effort).
const ABI_HANDLED: ABI = ABI::V3;

/// The environment a worker gets, after `env_clear`. `python3 -I` ignores
/// every `PYTHON*` variable, so none is passed.
pub const ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/bin:/bin"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C.UTF-8"),
];

/// Readable and executable for a worker: the system, the minimal `/etc`
/// (loader cache, time zone, name resolution, CA certificates), the random
/// devices, the interpreter's prefix when it lives elsewhere, the SDK and
/// the uploaded packages beside it.
pub fn readable(python: &Path, sdk_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = [
        "/usr",
        "/lib",
        "/lib64",
        "/bin",
        "/etc/ld.so.cache",
        "/etc/localtime",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/nsswitch.conf",
        "/etc/gai.conf",
        "/etc/ssl",
        "/dev/urandom",
        "/dev/random",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    // A python3 outside /usr (a virtualenv, ALPHAREN_PYTHON): its prefix.
    if let Some(prefix) = python.parent().and_then(Path::parent)
        && prefix.is_absolute()
        && !out.iter().any(|p| prefix.starts_with(p))
    {
        out.push(prefix.to_path_buf());
    }
    out.push(sdk_dir.to_path_buf());
    out.push(sdk_dir.with_file_name(crate::packages::DIR));
    out
}

/// The ruleset, ready to be enforced in a child; `None` where the kernel
/// has no Landlock.
pub struct Sandbox {
    ruleset: Option<OwnedFd>,
}

static REPORTED: AtomicBool = AtomicBool::new(false);

impl Sandbox {
    pub fn new(python: &Path, sdk_dir: &Path) -> std::io::Result<Sandbox> {
        let mut paths = readable(python, sdk_dir);
        // Landlock follows symbolic links to their targets (on the image
        // /etc/resolv.conf points into the state directory's run/).
        let targets: Vec<PathBuf> = paths
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .filter(|t| !paths.contains(t))
            .collect();
        paths.extend(targets);
        let created = Ruleset::default()
            .handle_access(AccessFs::from_all(ABI_HANDLED))
            .and_then(|r| r.create())
            .and_then(|r| r.add_rules(path_beneath_rules(&paths, AccessFs::from_read(ABI_HANDLED))))
            .and_then(|r| {
                r.add_rules(path_beneath_rules(
                    ["/dev/null"],
                    AccessFs::from_read(ABI_HANDLED) | AccessFs::WriteFile,
                ))
            })
            .map_err(std::io::Error::other)?;
        let ruleset: Option<OwnedFd> = created.into();
        if !REPORTED.swap(true, Ordering::Relaxed) {
            match &ruleset {
                Some(_) => tracing::info!(
                    "python workers confined by Landlock to reading the system and the SDK"
                ),
                None => tracing::warn!(
                    "Landlock is not available in this kernel: python workers are not confined to the system and SDK directories (only by their user and NoNewPrivs)"
                ),
            }
        }
        Ok(Sandbox { ruleset })
    }

    /// What the child runs before exec; copy it into the `pre_exec`
    /// closure. The descriptor stays valid while `self` lives, which is
    /// past the spawn.
    pub fn child(&self) -> ChildSide {
        ChildSide {
            ruleset: self.ruleset.as_ref().map(|fd| fd.as_raw_fd()),
        }
    }
}

#[derive(Clone, Copy)]
pub struct ChildSide {
    ruleset: Option<RawFd>,
}

impl ChildSide {
    /// No new privileges, then the ruleset.
    ///
    /// # Safety
    /// Only between fork and exec: it restricts the calling process.
    pub unsafe fn apply(self) -> std::io::Result<()> {
        // SAFETY: prctl and landlock_restrict_self act on this process
        // only and take no pointers.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = self.ruleset
                && libc::syscall(libc::SYS_landlock_restrict_self, fd, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Makes this process non-dumpable: its `/proc/PID` files (environ, mem,
/// fd) belong to root, so a worker running as the same user cannot read
/// them, and it cannot be ptraced by one.
pub fn hide_from_workers() -> std::io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE changes a flag of this process only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_may_read_the_system_and_the_sdk_but_not_the_state_directory() {
        let r = readable(
            Path::new("/usr/bin/python3"),
            Path::new("/data/integrator/sdk"),
        );
        assert!(r.contains(&PathBuf::from("/usr")));
        assert!(r.contains(&PathBuf::from("/data/integrator/sdk")));
        assert!(
            !r.iter()
                .any(|p| p == Path::new("/data") || p == Path::new("/etc"))
        );
        assert!(
            !r.iter()
                .any(|p| Path::new("/data/alpharen.db").starts_with(p))
        );
    }

    #[test]
    fn a_python_outside_usr_brings_its_prefix() {
        let r = readable(Path::new("/opt/venv/bin/python3"), Path::new("/s/sdk"));
        assert!(r.contains(&PathBuf::from("/opt/venv")));
        let r = readable(Path::new("/usr/bin/python3"), Path::new("/s/sdk"));
        assert!(!r.contains(&PathBuf::from("/usr/bin/..")));
        assert_eq!(r.iter().filter(|p| p.starts_with("/usr")).count(), 1);
    }
}
