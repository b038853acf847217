//! The durable spool `<state>/spool/mail/`: one file per message, written to
//! `tmp/`, fsynced, renamed into `queue/`, and the directory fsynced before
//! the caller may say "accepted". Queue metadata (attempts, next try, last
//! error) lives next to it in `<id>.json`, replaced atomically the same way,
//! so the spool alone is the queue and survives restarts and `kill -9`.
//!
//! Files: `queue/<id>.msg` = one JSON line (the envelope) + the message in
//! CRLF lines; `queue/<id>.json` = [`QueueState`] (absent = never tried);
//! `dead/` holds messages that failed for good, listable and retryable.
//!
//! Duplicate window: a delivery is forgotten (files unlinked, directory
//! fsynced) only after the relay has answered 250. A crash between that
//! answer and the unlink makes the message go out again after the restart:
//! at-least-once, never lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no message {0:?} in the spool")]
    NotFound(String),
    #[error("{0:?} is not a message id")]
    BadId(String),
    #[error("spool file {0} is damaged: {1}")]
    Damaged(PathBuf, String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a message came from; decides who hears about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Smtp,
    Sendmail,
    /// Written by the node itself (notifications, tests, bounces).
    Node,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Reverse path; empty for bounces (the null sender).
    pub from: String,
    pub to: Vec<String>,
    /// Unix seconds of acceptance; the queue age counts from here.
    pub received: i64,
    pub origin: Origin,
}

/// Delivery bookkeeping of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    pub attempts: u32,
    /// Unix seconds; 0 = as soon as possible.
    pub next_try: i64,
    pub last_error: Option<String>,
    /// Recipients already delivered (direct mode delivers per domain).
    #[serde(default)]
    pub done: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Queue,
    Dead,
}

impl Area {
    fn dir(self) -> &'static str {
        match self {
            Area::Queue => "queue",
            Area::Dead => "dead",
        }
    }
}

/// One listed message.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub received: i64,
    pub origin: Origin,
    pub size: u64,
    pub attempts: u32,
    pub next_try: i64,
    pub last_error: Option<String>,
}

pub struct Spool {
    root: PathBuf,
}

/// Ids are ours (hex and '-'); anything else from a client is refused
/// before it can name a path.
pub fn check_id(id: &str) -> Result<(), SpoolError> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        Ok(())
    } else {
        Err(SpoolError::BadId(id.to_string()))
    }
}

fn new_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{now:014x}-{:08x}", rand::random::<u32>())
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

impl Spool {
    /// Opens the spool under a state directory, creating its directories.
    pub fn open(state_dir: &Path) -> Result<Spool, SpoolError> {
        let root = state_dir.join("spool").join("mail");
        for sub in ["tmp", "queue", "dead"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(io_at(&d))?;
        }
        Ok(Spool { root })
    }

    fn path(&self, area: Area, id: &str, ext: &str) -> PathBuf {
        self.root.join(area.dir()).join(format!("{id}.{ext}"))
    }

    /// Writes a file durably: tmp, fsync, rename, fsync of the directory.
    fn write_durable(&self, target: &Path, parts: &[&[u8]]) -> Result<(), SpoolError> {
        let tmp = self.root.join("tmp").join(format!("{}.tmp", new_id()));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(io_at(&tmp))?;
            for p in parts {
                f.write_all(p).map_err(io_at(&tmp))?;
            }
            f.sync_all().map_err(io_at(&tmp))?;
            fs::rename(&tmp, target).map_err(io_at(target))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        sync_dir(target.parent().unwrap_or(&self.root))
    }

    /// Accepts a message for good; when this returns Ok the message survives
    /// a power cut. Returns its id.
    pub fn enqueue(&self, env: &Envelope, message: &[u8]) -> Result<String, SpoolError> {
        let id = new_id();
        let mut head = serde_json::to_vec(env).map_err(|e| {
            SpoolError::Damaged(self.root.clone(), format!("envelope not serialisable: {e}"))
        })?;
        head.push(b'\n');
        self.write_durable(&self.path(Area::Queue, &id, "msg"), &[&head, message])?;
        Ok(id)
    }

    pub fn load(&self, area: Area, id: &str) -> Result<(Envelope, Vec<u8>), SpoolError> {
        check_id(id)?;
        let path = self.path(area, id, "msg");
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SpoolError::NotFound(id.into()));
            }
            Err(e) => return Err(io_at(&path)(e)),
        };
        let nl = data
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| SpoolError::Damaged(path.clone(), "no envelope line".into()))?;
        let env: Envelope = serde_json::from_slice(&data[..nl])
            .map_err(|e| SpoolError::Damaged(path.clone(), e.to_string()))?;
        Ok((env, data[nl + 1..].to_vec()))
    }

    pub fn state(&self, area: Area, id: &str) -> Result<QueueState, SpoolError> {
        check_id(id)?;
        let path = self.path(area, id, "json");
        match fs::read(&path) {
            Ok(d) => {
                serde_json::from_slice(&d).map_err(|e| SpoolError::Damaged(path, e.to_string()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(QueueState::default()),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    pub fn set_state(&self, area: Area, id: &str, state: &QueueState) -> Result<(), SpoolError> {
        check_id(id)?;
        let body = serde_json::to_vec(state)
            .map_err(|e| SpoolError::Damaged(self.root.clone(), e.to_string()))?;
        self.write_durable(&self.path(area, id, "json"), &[&body])
    }

    /// Ids in an area, oldest first (ids start with the acceptance time).
    pub fn ids(&self, area: Area) -> Result<Vec<String>, SpoolError> {
        let dir = self.root.join(area.dir());
        let mut ids: Vec<String> = fs::read_dir(&dir)
            .map_err(io_at(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".msg")?;
                check_id(id).ok().map(|_| id.to_string())
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn list(&self, area: Area) -> Result<Vec<Entry>, SpoolError> {
        let mut out = Vec::new();
        for id in self.ids(area)? {
            // A message delivered or deleted while we list is simply skipped.
            let Ok((env, msg)) = self.load(area, &id) else {
                continue;
            };
            let st = self.state(area, &id).unwrap_or_default();
            out.push(Entry {
                id,
                from: env.from,
                to: env.to,
                received: env.received,
                origin: env.origin,
                size: msg.len() as u64,
                attempts: st.attempts,
                next_try: st.next_try,
                last_error: st.last_error,
            });
        }
        Ok(out)
    }

    /// Forgets a message (delivered or deleted): the message first, so a
    /// crash in between leaves at worst an orphan state file.
    pub fn remove(&self, area: Area, id: &str) -> Result<(), SpoolError> {
        check_id(id)?;
        let msg = self.path(area, id, "msg");
        match fs::remove_file(&msg) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SpoolError::NotFound(id.into()));
            }
            Err(e) => return Err(io_at(&msg)(e)),
        }
        let _ = fs::remove_file(self.path(area, id, "json"));
        sync_dir(&self.root.join(area.dir()))
    }

    /// Moves a message between queue and dead letters with its state.
    pub fn move_to(
        &self,
        from: Area,
        to: Area,
        id: &str,
        state: &QueueState,
    ) -> Result<(), SpoolError> {
        check_id(id)?;
        self.set_state(to, id, state)?;
        let (src, dst) = (self.path(from, id, "msg"), self.path(to, id, "msg"));
        match fs::rename(&src, &dst) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = fs::remove_file(self.path(to, id, "json"));
                return Err(SpoolError::NotFound(id.into()));
            }
            Err(e) => return Err(io_at(&dst)(e)),
        }
        sync_dir(&self.root.join(to.dir()))?;
        let _ = fs::remove_file(self.path(from, id, "json"));
        sync_dir(&self.root.join(from.dir()))
    }

    /// Removes leftovers: temporary files older than an hour (a sendmail may
    /// be writing a young one right now) and state files without a message.
    pub fn sweep(&self) {
        let tmp = self.root.join("tmp");
        if let Ok(rd) = fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
                if old {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        for area in [Area::Queue, Area::Dead] {
            let dir = self.root.join(area.dir());
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "json")
                        && !p.with_extension("msg").exists()
                    {
                        let _ = fs::remove_file(&p);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope {
            from: "a@b.example".into(),
            to: vec!["c@d.example".into()],
            received: 100,
            origin: Origin::Smtp,
        }
    }

    #[test]
    fn enqueue_load_state_move_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        let id = s.enqueue(&env(), b"Subject: x\r\n\r\nhi\r\n").unwrap();
        let (e, m) = s.load(Area::Queue, &id).unwrap();
        assert_eq!(e, env());
        assert_eq!(m, b"Subject: x\r\n\r\nhi\r\n");
        assert_eq!(s.state(Area::Queue, &id).unwrap(), QueueState::default());
        let st = QueueState {
            attempts: 2,
            next_try: 500,
            last_error: Some("421 busy".into()),
            done: vec![],
        };
        s.set_state(Area::Queue, &id, &st).unwrap();
        // A fresh handle (a restart) sees the same queue.
        let s2 = Spool::open(dir.path()).unwrap();
        assert_eq!(s2.state(Area::Queue, &id).unwrap(), st);
        assert_eq!(s2.list(Area::Queue).unwrap()[0].attempts, 2);
        s2.move_to(Area::Queue, Area::Dead, &id, &st).unwrap();
        assert!(s2.ids(Area::Queue).unwrap().is_empty());
        assert_eq!(s2.ids(Area::Dead).unwrap(), vec![id.clone()]);
        s2.remove(Area::Dead, &id).unwrap();
        assert!(matches!(
            s2.remove(Area::Dead, &id),
            Err(SpoolError::NotFound(_))
        ));
        assert!(
            fs::read_dir(dir.path().join("spool/mail/tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn ids_from_outside_cannot_name_paths() {
        assert!(check_id("../../etc/passwd").is_err());
        assert!(check_id("").is_err());
        assert!(check_id("0001a-ff").is_ok());
    }
}
