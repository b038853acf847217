//! Who may touch what in the state directory once services run as their
//! own users. The supervisor (root) sets it at every start, before any
//! service runs, so a state directory made by an older firmware (all root)
//! is brought in line too.
//!
//! - the directory, `run/` and `log/`: root:alpharen 2770 (setgid, so what
//!   a service creates there belongs to the group);
//! - `alpharen.db` and its `-wal`/`-shm`: root:root 0600 (SQLite gives
//!   the files it creates the database file's mode): only the supervisor
//!   opens it; services get their view over the control socket;
//! - the files a service writes in `log/` (pgha's journals): its user;
//! - each service's own directories ([`crate::builtin::Builtin::owns`]):
//!   its user, recursively; its own database `<name>.db` (and `-wal`,
//!   `-shm`): its user, 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::builtin::BUILTINS;
use crate::privsep::ALPHAREN_GID;

/// One path's owner and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// A directory, created if missing.
    pub dir: bool,
    /// Also give everything below it to `uid`:`gid` (modes kept).
    pub recursive: bool,
}

const SHARED_DIR: u32 = 0o2770;
const PRIVATE_FILE: u32 = 0o600;

/// The rules for a state directory, in the order they must be applied
/// (parents first).
pub fn rules(state_dir: &Path) -> Vec<Rule> {
    let shared_dir = |path: PathBuf| Rule {
        path,
        uid: 0,
        gid: ALPHAREN_GID,
        mode: SHARED_DIR,
        dir: true,
        recursive: false,
    };
    let mut out = vec![
        shared_dir(state_dir.to_path_buf()),
        shared_dir(state_dir.join("run")),
        shared_dir(state_dir.join("log")),
    ];
    let db_files = |name: &str, uid: u32, gid: u32| {
        ["", "-wal", "-shm"].map(|suffix| Rule {
            path: state_dir.join(format!("{name}.db{suffix}")),
            uid,
            gid,
            mode: PRIVATE_FILE,
            dir: false,
            recursive: false,
        })
    };
    out.extend(db_files("alpharen", 0, 0));
    for b in BUILTINS {
        out.extend(db_files(b.name, b.user.id, ALPHAREN_GID));
        for (sub, mode) in b.owns {
            out.push(Rule {
                path: state_dir.join(sub),
                uid: b.user.id,
                gid: ALPHAREN_GID,
                mode: *mode,
                dir: true,
                recursive: true,
            });
        }
    }
    out
}

/// Applies the rules; returns one line per path it could not set (the
/// service that needs it will then fail and say which file).
pub fn apply(state_dir: &Path) -> Vec<String> {
    let mut problems = unreachable_through(state_dir);
    for rule in rules(state_dir) {
        if let Err(e) = apply_rule(&rule) {
            problems.push(format!("{}: {e}", rule.path.display()));
        }
    }
    for (path, uid) in service_logs(state_dir) {
        if let Err(e) = std::os::unix::fs::lchown(&path, Some(uid), Some(ALPHAREN_GID)) {
            problems.push(format!("{}: {e}", path.display()));
        }
    }
    problems
}

/// The files of the shared `log/` directory a service writes itself
/// ([`crate::builtin::Builtin::logs`]), with their owner-to-be.
fn service_logs(state_dir: &Path) -> Vec<(PathBuf, u32)> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("log")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let b = BUILTINS
                .iter()
                .find(|b| b.logs.iter().any(|p| name.starts_with(p)))?;
            Some((e.path(), b.user.id))
        })
        .collect()
}

/// The TUN device the vpn service opens (boringtun) is 0666 on the image
/// (the kernel's default); where a host made it root-only, it is given to
/// the vpn user, so the service can open it without CAP_DAC_OVERRIDE.
/// Returns what it changed, for the log.
pub fn tun_device() -> Option<String> {
    const TUN: &str = "/dev/net/tun";
    let vpn = crate::builtin::find("vpn")?;
    let mode = std::fs::metadata(TUN).ok()?.permissions().mode();
    if mode & 0o006 == 0o006 {
        return None;
    }
    Some(
        match std::os::unix::fs::chown(TUN, Some(vpn.user.id), None) {
            Ok(()) => format!(
                "{TUN} (mode {:o}) given to {} so it can open it",
                mode & 0o777,
                vpn.user.name
            ),
            Err(e) => format!(
                "{TUN} (mode {:o}): cannot give it to {}: {e}",
                mode & 0o777,
                vpn.user.name
            ),
        },
    )
}

/// Ancestors of the state directory that other users cannot search
/// (e.g. a `mktemp -d` parent, 0700): no service could open its files.
fn unreachable_through(state_dir: &Path) -> Vec<String> {
    let Ok(full) = std::path::absolute(state_dir) else {
        return Vec::new();
    };
    full.ancestors()
        .skip(1)
        .filter_map(|dir| {
            let mode = std::fs::metadata(dir).ok()?.permissions().mode();
            (mode & 0o001 == 0).then(|| {
                format!(
                    "{}: mode {:o} lets no service user reach the state directory; allow search (chmod o+x)",
                    dir.display(),
                    mode & 0o7777
                )
            })
        })
        .collect()
}

fn apply_rule(rule: &Rule) -> std::io::Result<()> {
    if rule.dir {
        std::fs::create_dir_all(&rule.path)?;
    } else if !rule.path.exists() {
        return Ok(());
    }
    if rule.recursive {
        chown_tree(&rule.path, rule.uid, rule.gid)?;
    } else {
        std::os::unix::fs::chown(&rule.path, Some(rule.uid), Some(rule.gid))?;
    }
    // chown clears the setgid bit, so the mode comes after it.
    std::fs::set_permissions(&rule.path, std::fs::Permissions::from_mode(rule.mode))
}

/// Owner of a tree, depth first; symbolic links themselves, never their
/// targets.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_paths_come_first_and_belong_to_root_and_the_group() {
        let r = rules(Path::new("/data"));
        assert_eq!(r[0].path, Path::new("/data"));
        assert_eq!((r[0].uid, r[0].gid, r[0].mode), (0, ALPHAREN_GID, 0o2770));
        let db = r
            .iter()
            .find(|x| x.path == Path::new("/data/alpharen.db"))
            .unwrap();
        assert_eq!((db.uid, db.gid, db.mode, db.dir), (0, 0, 0o600, false));
    }

    #[test]
    fn each_service_owns_its_directories() {
        let r = rules(Path::new("/data"));
        let owner = |p: &str| r.iter().find(|x| x.path == Path::new(p)).map(|x| x.uid);
        assert_eq!(
            owner("/data/ssh"),
            crate::builtin::find("ssh").map(|b| b.user.id)
        );
        assert_eq!(
            owner("/data/integrator"),
            crate::builtin::find("integrator").map(|b| b.user.id)
        );
        assert_eq!(
            owner("/data/spool"),
            crate::builtin::find("mail").map(|b| b.user.id)
        );
    }

    #[test]
    fn applying_sets_owners_and_modes() {
        if !crate::privsep::available() {
            return; // chown needs root
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alpharen.db"), b"").unwrap();
        std::fs::create_dir_all(dir.path().join("ssh")).unwrap();
        std::fs::write(dir.path().join("ssh/host_ed25519"), b"k").unwrap();
        assert_eq!(apply(dir.path()), Vec::<String>::new());
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dir.path()).unwrap();
        assert_eq!((m.gid(), m.mode() & 0o7777), (ALPHAREN_GID, 0o2770));
        let key = std::fs::metadata(dir.path().join("ssh/host_ed25519")).unwrap();
        assert_eq!(key.uid(), crate::builtin::find("ssh").unwrap().user.id);
        let db = std::fs::metadata(dir.path().join("alpharen.db")).unwrap();
        assert_eq!((db.uid(), db.mode() & 0o777), (0, 0o600));
        std::fs::write(dir.path().join("log/pgctrl_g1.log"), b"old\n").unwrap();
        std::fs::write(dir.path().join("log/web.log"), b"x\n").unwrap();
        assert_eq!(apply(dir.path()), Vec::<String>::new());
        let pgha = crate::builtin::find("pgha").unwrap().user.id;
        let journal = std::fs::metadata(dir.path().join("log/pgctrl_g1.log")).unwrap();
        assert_eq!(journal.uid(), pgha, "pgha's journal is given to it");
        let other = std::fs::metadata(dir.path().join("log/web.log")).unwrap();
        assert_eq!(other.uid(), 0, "the supervisor's logs stay root's");
    }
}
