//! First boot: while no admin exists the node holds a one-time setup code,
//! shown on the console and in `<state>/setup-code` (0600). Wrong codes are
//! rate-limited per client network (IPv4 address, IPv6 /64; local callers
//! share one key), so a stranger guessing cannot lock the real admin out;
//! the code dies when setup completes.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alpharen_store::Store;
use alpharen_store::limiter::{DEFAULT_CAP, Window, client_net};

use crate::SupervisorError;

/// Wrong codes allowed per client network within `LOCKOUT`.
const MAX_WRONG: usize = 5;
const LOCKOUT: Duration = Duration::from_secs(60);

pub struct SetupState {
    code: Option<String>,
    file: PathBuf,
    wrong: Window<IpAddr>,
}

/// A code that is easy to read off a serial console: no 0/O, 1/I/L.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 12];
    rand::fill(&mut bytes);
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}-{}", &chars[0..4], &chars[4..8], &chars[8..12])
}

/// For files that must survive a power cut right after they were written
/// (the setup code once shown, the Pi's autoboot.txt): temp file, fsync,
/// rename, fsync of the directory.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let staged = Staged::write(path, bytes)?;
    staged.file.sync_all()?;
    staged.commit()
}

/// `write_durably` in two steps, so that the temp file's fsync can join
/// others (`crate::install::sync_together`): the bytes written to the temp
/// file beside `path`, not yet synced; [`Staged::commit`] renames it into
/// place once the caller has synced `file`.
pub(crate) struct Staged {
    pub(crate) tmp: PathBuf,
    path: PathBuf,
    pub(crate) file: std::fs::File,
}

impl Staged {
    pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<Staged> {
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        Ok(Staged {
            tmp,
            path: path.to_path_buf(),
            file,
        })
    }

    /// Renames the synced temp file into place and syncs the directory.
    pub(crate) fn commit(self) -> std::io::Result<()> {
        std::fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum CodeCheck {
    Ok,
    NotRequired,
    Wrong,
    Locked(Duration),
}

impl SetupState {
    pub fn init(store: &Store, state_dir: &Path) -> Result<SetupState, SupervisorError> {
        let file = state_dir.join("setup-code");
        let mut state = SetupState {
            code: None,
            file,
            wrong: Window::new(MAX_WRONG, LOCKOUT, DEFAULT_CAP),
        };
        if store.has_admin()? {
            let _ = std::fs::remove_file(&state.file);
            return Ok(state);
        }
        // The same code until setup is done, so the one printed at the
        // first boot stays valid across reboots.
        let kept = std::fs::read_to_string(&state.file)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|c| {
                c.len() == 14 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            });
        if let Some(code) = kept {
            state.code = Some(code);
            return Ok(state);
        }
        let code = new_code();
        write_durably(&state.file, format!("{code}\n").as_bytes()).map_err(|source| {
            SupervisorError::Read {
                path: state.file.display().to_string(),
                source,
            }
        })?;
        state.code = Some(code);
        Ok(state)
    }

    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// `client` is the caller's address, `None` for a local caller.
    pub fn check(&mut self, given: &str, client: Option<IpAddr>, now: Instant) -> CodeCheck {
        let Some(code) = &self.code else {
            return CodeCheck::NotRequired;
        };
        let key = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), client_net);
        if let Err(left) = self.wrong.check(&key, now) {
            return CodeCheck::Locked(left);
        }
        let normal = |s: &str| s.trim().to_ascii_uppercase().replace([' ', '-'], "");
        if normal(given) == normal(code) {
            return CodeCheck::Ok;
        }
        self.wrong.failure(&key, now);
        CodeCheck::Wrong
    }

    /// Setup finished: the code is gone for good.
    pub fn finish(&mut self) {
        self.code = None;
        let _ = std::fs::remove_file(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_codes_lock_out_and_right_code_works_once_finished() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut s = SetupState::init(&store, dir.path()).unwrap();
        let code = s.code().unwrap().to_string();
        let on_disk = std::fs::read_to_string(dir.path().join("setup-code")).unwrap();
        assert_eq!(on_disk.trim(), code);
        let again = SetupState::init(&store, dir.path()).unwrap();
        assert_eq!(again.code(), Some(code.as_str()), "code survives a restart");
        let t0 = Instant::now();
        let stranger = Some("192.0.2.66".parse().unwrap());
        let admin = Some("192.0.2.10".parse().unwrap());
        for _ in 0..MAX_WRONG {
            assert_eq!(s.check("nope", stranger, t0), CodeCheck::Wrong);
        }
        assert!(matches!(s.check(&code, stranger, t0), CodeCheck::Locked(_)));
        assert_eq!(
            s.check(&code, admin, t0),
            CodeCheck::Ok,
            "another client is not locked out"
        );
        assert_eq!(s.check(&code, None, t0), CodeCheck::Ok, "nor the console");
        let later = t0 + LOCKOUT + Duration::from_secs(1);
        assert_eq!(
            s.check(&code.to_lowercase(), stranger, later),
            CodeCheck::Ok
        );
        s.finish();
        assert_eq!(s.check(&code, admin, later), CodeCheck::NotRequired);
        assert!(!dir.path().join("setup-code").exists());
    }
}
