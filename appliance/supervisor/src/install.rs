//! Installing an update bundle into the inactive slot, and reading the
//! slots' state. The order is what makes it safe to interrupt anywhere:
//!
//! 1. plan from the loader entries (`slots::plan`): the booted slot must
//!    be good, the other one is the target;
//! 2. the bundle's signature, manifest and the decision (board, version)
//!    before anything is touched: a refused bundle leaves the slot as it
//!    was;
//! 3. the target's loader entry and record are removed (the slot is now
//!    invalid: nothing boots it), then each part streams into the slot,
//!    every block verified before it is written;
//! 4. only after the last part and the end of the bundle check out: the
//!    keys the bundle adds (`crate::keyring`); the record
//!    (`<esp>/<slot>/slot.json`) and a counting entry
//!    (`alpharen-<slot>+3.conf`, sorted first) are written to temp files,
//!    which are fsynced together with the parts; then the record is
//!    renamed into place (and its directory synced), then the entry.
//!
//! Any failure in 3 leaves the target without an entry (invalid); the
//! booted slot's files and entry are never opened for writing.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use alpharen_update::{Accept, BundleReader, Running, TrustedKeys};
use serde::{Deserialize, Serialize};

use crate::setup::Staged;
use crate::slotfile::{Dest, SlotFile};
use crate::slots::{self, Plan, PlanError, SlotState};

/// Overrides /etc/os-release, where the image says its board and version.
pub const OS_RELEASE_ENV: &str = "ALPHAREN_OS_RELEASE";
/// A directory standing in for the node's disk (tests, development
/// hosts): `rootfs-a`, `rootfs-b` (files), `esp/` and `booted` (`a`/`b`).
pub const TARGET_ENV: &str = "ALPHAREN_UPDATE_TARGET";

/// Why an install failed, naming what and where.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Bundle(#[from] alpharen_update::Error),
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("the bundle has no part {part:?}, which the slot needs to boot")]
    MissingPart { part: String },
    #[error(
        "part {part:?} has no place on a boot partition (\"..\" stands for \"/\" between two names)"
    )]
    BadPart { part: String },
    #[error("part rootfs is {size} bytes; partition {dev} holds only {room}")]
    TooBig { dev: String, size: u64, room: u64 },
    #[error("{0}")]
    Unsupported(String),
}

impl InstallError {
    /// The control-socket error code: `update_refused` when the bundle is
    /// at fault (signature, manifest, board, version, corrupt or truncated
    /// input), `update_unavailable` when this node cannot install now (no
    /// keys, not an A/B node, running slot on trial), `update_failed` when
    /// writing the slot failed.
    pub fn code(&self) -> &'static str {
        use alpharen_update::Error as E;
        match self {
            InstallError::Bundle(E::Write { .. } | E::Io { .. }) | InstallError::Io { .. } => {
                "update_failed"
            }
            InstallError::Bundle(E::Key { .. })
            | InstallError::Plan(_)
            | InstallError::Unsupported(_) => "update_unavailable",
            InstallError::Bundle(_)
            | InstallError::MissingPart { .. }
            | InstallError::BadPart { .. }
            | InstallError::TooBig { .. } => "update_refused",
        }
    }
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> InstallError {
    let what = what.into();
    move |source| InstallError::Io { what, source }
}

/// The node's disk as an install sees it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The slot this boot came from.
    pub booted: char,
    /// The rootfs partition (block device, or a file in tests) of a and b.
    pub rootfs: [PathBuf; 2],
    /// Where the ESP is mounted.
    pub esp: PathBuf,
}

impl Target {
    fn rootfs(&self, slot: char) -> &Path {
        &self.rootfs[usize::from(slot == 'b')]
    }

    pub(crate) fn entries_dir(&self) -> PathBuf {
        self.esp.join("loader/entries")
    }

    /// Every `alpharen-*` entry on the ESP: (file name, text).
    pub(crate) fn entries(&self) -> Result<Vec<(String, String)>, InstallError> {
        let dir = self.entries_dir();
        let mut out = Vec::new();
        let list = std::fs::read_dir(&dir).map_err(io_err(format!("reading {}", dir.display())))?;
        for e in list.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if slots::parse_entry_name(&name).is_some() {
                let text = std::fs::read_to_string(e.path())
                    .map_err(io_err(format!("reading {}", e.path().display())))?;
                out.push((name, text));
            }
        }
        out.sort();
        Ok(out)
    }

    pub(crate) fn record_path(&self, slot: char) -> PathBuf {
        self.esp.join(slot.to_string()).join("slot.json")
    }
}

/// What an install records beside the slot's boot files, so `system.slots`
/// can say what a slot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub version: String,
    pub build_id: String,
    pub board: String,
    pub installed_at: i64,
    /// The key id that signed the bundle.
    pub signer: String,
}

/// `KEY=value` from an os-release text, unquoted.
pub fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

pub(crate) fn os_release() -> String {
    let path = std::env::var(OS_RELEASE_ENV).unwrap_or_else(|_| "/etc/os-release".into());
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The image's release as `status` shows it: `{version, build_id}` from
/// /etc/os-release, or null where it names no VERSION_ID.
pub fn system_release() -> serde_json::Value {
    let text = os_release();
    match os_release_field(&text, "VERSION_ID") {
        Some(v) => serde_json::json!({
            "version": v,
            "build_id": os_release_field(&text, "BUILD_ID"),
        }),
        None => serde_json::Value::Null,
    }
}

/// The board and version this node runs, from its /etc/os-release
/// (`ALPHAREN_BOARD`, `VERSION_ID`; images/build.sh writes both).
pub fn running() -> Result<Running, InstallError> {
    let text = os_release();
    let board = os_release_field(&text, "ALPHAREN_BOARD").ok_or_else(|| {
        InstallError::Unsupported(
            "/etc/os-release names no ALPHAREN_BOARD: this image cannot tell which bundles fit it"
                .into(),
        )
    })?;
    let version = os_release_field(&text, "VERSION_ID")
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    Ok(Running { board, version })
}

/// What `install` did.
#[derive(Debug, Clone)]
pub struct Done {
    pub slot: char,
    pub record: SlotRecord,
    pub accept: Accept,
    pub bytes: u64,
}

/// Installs the bundle read from `input` into the inactive slot of
/// `target` (the order and what a failure leaves: the module's doc), and
/// keeps the keys it adds in `kept` (`crate::keyring`).
pub fn install<R: Read>(
    input: R,
    keys: &TrustedKeys,
    kept: &Path,
    running: &Running,
    target: &Target,
    log: &dyn Fn(&str),
) -> Result<Done, InstallError> {
    let entries = target.entries()?;
    let plan = slots::plan(target.booted, &entries)?;
    let template = entries
        .iter()
        .find(|(n, _)| *n == plan.template)
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    let entry = slots::entry_for(&template, target.booted, plan.target, plan.sort_version);
    let mut reader = BundleReader::open(input, keys)?;
    let accept = alpharen_update::decide(reader.manifest(), running)?;
    let manifest = reader.manifest().clone();
    let slot_dir = format!("{}/", plan.target);
    for file in slots::entry_files(&entry) {
        let part = file.strip_prefix(&slot_dir).unwrap_or(&file);
        if !manifest.parts.iter().any(|p| p.name == part) {
            return Err(InstallError::MissingPart { part: part.into() });
        }
    }
    let dev = target.rootfs(plan.target).to_path_buf();
    check_room(&manifest, &dev)?;
    invalidate(target, &plan)?;
    log(&format!(
        "update: slot {} marked invalid; writing version {} ({}) into it",
        plan.target, manifest.version, manifest.build_id
    ));
    let (bytes, files) = write_parts(&mut reader, log, |part| {
        if part == "rootfs" {
            return Dest::device(&dev);
        }
        let dir = target.esp.join(plan.target.to_string());
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        Dest::create(dir.join(part))
    })?;
    let record = finish(reader, &manifest, kept, log)?;
    let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
    let rec_path = target.record_path(plan.target);
    let entry_path = target.entries_dir().join(&plan.entry);
    let writing = |path: &Path| io_err(format!("writing {}", path.display()));
    let rec = Staged::write(&rec_path, &json).map_err(writing(&rec_path))?;
    let ent = Staged::write(&entry_path, entry.as_bytes()).map_err(writing(&entry_path))?;
    // The parts and both temp files reach the disk together; only then
    // does the record take its name, and after it the entry.
    let staged = [&rec, &ent].map(|s| (s.tmp.as_path(), &s.file));
    sync_together(files.iter().map(|(p, f)| (p.as_path(), f)).chain(staged))?;
    rec.commit().map_err(writing(&rec_path))?;
    ent.commit().map_err(writing(&entry_path))?;
    log(&format!(
        "update: slot {} holds version {} and is armed for a trial at the next boot ({})",
        plan.target, record.version, plan.entry
    ));
    Ok(Done {
        slot: plan.target,
        record,
        accept,
        bytes,
    })
}

/// Streams every part of the bundle into the file `dest` opens for its
/// name, each block verified before it is written. Returns the bytes
/// written and the files, not yet synced: the caller syncs them
/// ([`sync_together`]) before anything that makes the slot bootable.
pub(crate) fn write_parts<R: Read>(
    reader: &mut BundleReader<R>,
    log: &dyn Fn(&str),
    mut dest: impl FnMut(&str) -> Result<Dest, InstallError>,
) -> Result<(u64, Vec<(PathBuf, File)>), InstallError> {
    let mut bytes = 0;
    let mut files = Vec::new();
    while let Some(part) = reader.next_part().cloned() {
        let (path, mut out) = SlotFile::new(dest(&part.name)?);
        bytes += reader.copy_part(&mut out)?;
        log(&format!(
            "update: part {} ({} bytes) written to {}",
            part.name,
            part.size,
            path.display()
        ));
        files.push((path, out.into_file()));
    }
    Ok((bytes, files))
}

/// fsyncs every file at once, each on a thread of its own: a journaling
/// file system commits them together, where one fsync after the other
/// waits for a commit (a disk cache flush) each.
pub(crate) fn sync_together<'a>(
    files: impl IntoIterator<Item = (&'a Path, &'a File)>,
) -> Result<(), InstallError> {
    std::thread::scope(|s| {
        let syncs: Vec<_> = files
            .into_iter()
            .map(|(path, file)| {
                s.spawn(move || {
                    file.sync_all()
                        .map_err(io_err(format!("syncing {}", path.display())))?;
                    // Clean now: what the writes left cached goes too.
                    crate::slotfile::drop_cached(file, 0, 0);
                    Ok(())
                })
            })
            .collect();
        // The scope waits for every thread, whichever fails first.
        syncs
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// After the last part: checks the end of the bundle, keeps the keys it
/// adds (`crate::keyring`) and returns the slot's record to write.
pub(crate) fn finish<R: Read>(
    reader: BundleReader<R>,
    manifest: &alpharen_update::Manifest,
    kept: &Path,
    log: &dyn Fn(&str),
) -> Result<SlotRecord, InstallError> {
    let signer = reader.signer().to_string();
    reader.finish()?;
    let from = format!(
        "bundle {} ({}) signed by {signer}",
        manifest.version, manifest.build_id
    );
    for id in crate::keyring::keep(kept, &manifest.add_keys, &from)? {
        log(&format!(
            "update: key {id}, which the bundle adds, is trusted from now on (kept in {})",
            kept.display()
        ));
    }
    Ok(SlotRecord {
        version: manifest.version.clone(),
        build_id: manifest.build_id.clone(),
        board: manifest.board.clone(),
        installed_at: alpharen_store::now_unix(),
        signer,
    })
}

/// Refuses a bundle whose rootfs part would not fit partition `dev`.
pub(crate) fn check_room(
    manifest: &alpharen_update::Manifest,
    dev: &Path,
) -> Result<(), InstallError> {
    let room = device_size(dev)?;
    match manifest.parts.iter().find(|p| p.name == "rootfs") {
        Some(p) if p.size > room => Err(InstallError::TooBig {
            dev: dev.display().to_string(),
            size: p.size,
            room,
        }),
        _ => Ok(()),
    }
}

/// Removes the target's entries and record, durably: from here on
/// nothing boots the slot until a complete install arms it again.
fn invalidate(target: &Target, plan: &Plan) -> Result<(), InstallError> {
    let dir = target.entries_dir();
    for name in &plan.remove {
        let path = dir.join(name);
        std::fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
    }
    let rec = target.record_path(plan.target);
    match std::fs::remove_file(&rec) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_err(format!("removing {}", rec.display()))(e));
        }
        _ => {}
    }
    // The ESP's file system (the entries and the record's directory),
    // not every file system of the node as sync(2) would: that waits for
    // whatever else is being written, which can take seconds.
    File::open(&dir)
        .and_then(|d| nix::unistd::syncfs(&d).map_err(io::Error::from))
        .map_err(io_err(format!(
            "syncing the file system of {}",
            dir.display()
        )))?;
    Ok(())
}

/// Bytes a partition (or stand-in file) holds: its end.
pub(crate) fn device_size(dev: &Path) -> Result<u64, InstallError> {
    let mut f = File::open(dev).map_err(io_err(format!("opening {}", dev.display())))?;
    f.seek(SeekFrom::End(0))
        .map_err(io_err(format!("sizing {}", dev.display())))
}

/// Each slot's state, what it holds and whether it is the booted one.
pub fn slots(target: &Target) -> Result<Vec<alpharen_rpc::system::Slot>, InstallError> {
    let names: Vec<String> = target.entries()?.into_iter().map(|(n, _)| n).collect();
    let os = os_release();
    Ok(['a', 'b']
        .into_iter()
        .map(|s| {
            let record: Option<SlotRecord> = std::fs::read(target.record_path(s))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            slot_row(
                s,
                slots::slot_state(&names, s),
                record,
                s == target.booted,
                &os,
            )
        })
        .collect())
}

/// One slot as `system.slots` answers it: version and build from its
/// record, or for the booted slot without one (as flashed) from
/// os-release (`os`).
pub(crate) fn slot_row(
    s: char,
    state: SlotState,
    record: Option<SlotRecord>,
    booted: bool,
    os: &str,
) -> alpharen_rpc::system::Slot {
    let (version, build_id) = match (&record, booted) {
        (Some(r), _) => (Some(r.version.clone()), Some(r.build_id.clone())),
        (None, true) => (
            os_release_field(os, "VERSION_ID"),
            os_release_field(os, "BUILD_ID"),
        ),
        (None, false) => (None, None),
    };
    let (state, tries_left) = match state {
        SlotState::Good => ("good", None),
        SlotState::Trial { tries_left } => ("trial", Some(tries_left)),
        SlotState::Failed => ("failed", None),
        SlotState::Invalid => ("invalid", None),
    };
    alpharen_rpc::system::Slot {
        slot: s.to_string(),
        state: state.into(),
        tries_left,
        booted,
        version,
        build_id,
        // 0: the record of a slot as flashed, written time unknown.
        installed_at: record.map(|r| r.installed_at).filter(|t| *t > 0),
    }
}

/// The slot a stand-in disk says it booted (its file `booted`; `a` if it
/// names none).
pub(crate) fn standin_booted(dir: &Path) -> char {
    std::fs::read_to_string(dir.join("booted"))
        .ok()
        .and_then(|s| s.trim().chars().next())
        .filter(|c| matches!(c, 'a' | 'b'))
        .unwrap_or('a')
}

/// Runs `f` with this node's [`Target`]: the stand-in directory of
/// [`TARGET_ENV`], or the real disk with the ESP mounted for the duration.
pub fn with_target<T>(
    f: impl FnOnce(&Target) -> Result<T, InstallError>,
) -> Result<T, InstallError> {
    if let Some(dir) = std::env::var_os(TARGET_ENV).map(PathBuf::from) {
        let booted = standin_booted(&dir);
        return f(&Target {
            booted,
            rootfs: [dir.join("rootfs-a"), dir.join("rootfs-b")],
            esp: dir.join("esp"),
        });
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let booted = crate::boot::slot_from_cmdline(&cmdline).ok_or_else(|| {
        InstallError::Unsupported(
            "this node was not booted from an A/B slot (no alpharen.slot= on the kernel command line)"
                .into(),
        )
    })?;
    let part = |name: &str| {
        crate::partition::named(name).ok_or_else(|| {
            InstallError::Unsupported(format!("no partition named {name:?} on this node"))
        })
    };
    let rootfs = [part("rootfs-a")?, part("rootfs-b")?];
    let mut result = None;
    crate::boot::with_boot_partition("esp", |esp| {
        result = Some(f(&Target {
            booted,
            rootfs,
            esp: esp.to_path_buf(),
        }));
        Ok(())
    })
    .map_err(io_err("mounting the ESP"))?;
    result.unwrap_or_else(|| Err(InstallError::Unsupported("the ESP was not mounted".into())))
}

/// Installs into this node's inactive slot: the Raspberry Pi's
/// (`crate::pi_disk`) or the ESP's.
pub fn install_here<R: Read>(
    input: R,
    keys: &TrustedKeys,
    kept: &Path,
    running: &Running,
    log: &dyn Fn(&str),
) -> Result<Done, InstallError> {
    if crate::boot::is_pi() {
        crate::pi_disk::with_target(|t| crate::pi_disk::install(input, keys, kept, running, t, log))
    } else {
        with_target(|t| install(input, keys, kept, running, t, log))
    }
}

/// This node's slots (`system.slots`).
pub fn slots_here() -> Result<Vec<alpharen_rpc::system::Slot>, InstallError> {
    if crate::boot::is_pi() {
        crate::pi_disk::with_target(crate::pi_disk::slots)
    } else {
        with_target(slots)
    }
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
