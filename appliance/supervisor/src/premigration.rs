//! A configuration schema migration rolled back with its slot.
//!
//! The first boot of a new version may find the store (`alpharen.db`) in
//! an older schema than its firmware writes; opening it migrates it
//! (`alpharen_store::schema`), and the old version could not read it any
//! more. So before the store is opened, [`prepare`] keeps a copy of it as
//! it was (`<state>/update/pre-migration.db`, with
//! `pre-migration.json` saying which slot it belongs to). Should the new
//! slot's trial fail, the old slot boots, finds the copy tied to it and
//! puts it back before it opens the store; changes made while the new
//! slot ran are gone with it, as that slot is. Once the new slot is
//! committed by the health gate, [`committed`] drops the copy.

use std::io;
use std::path::{Path, PathBuf};

use alpharen_store::Schema;
use serde::{Deserialize, Serialize};

/// What `pre-migration.json` records beside the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The slot that ran before the migration: the copy is its store.
    pub slot: char,
    /// The slot whose first boot migrated the store.
    pub by: char,
    pub from: Schema,
    pub to: Schema,
    pub at: i64,
}

/// What to do before the store is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open it as it is (opening migrates it if it is older and there is
    /// no other slot to fall back to, or refuses it if it is newer).
    Open,
    /// Keep a copy for `slot` (the one not booted), then open it.
    Keep { slot: char },
    /// Put the kept copy back: this is the slot it belongs to, so the
    /// slot that migrated the store was not committed.
    Restore,
}

/// Decides from the store's schema (`None`: no store yet), the
/// firmware's, the booted slot (`None`: not an A/B node) and the copy
/// kept, if any.
pub fn decide(
    store: Option<Schema>,
    firmware: Schema,
    booted: Option<char>,
    kept: Option<&Kept>,
) -> Action {
    match (booted, kept) {
        (Some(b), Some(k)) if b == k.slot => return Action::Restore,
        // Still the migrating slot's boot (on trial, or restarted): the
        // copy stays until the health gate commits it.
        (Some(b), Some(k)) if b == k.by => return Action::Open,
        _ => {}
    }
    match (store, booted) {
        (Some(s), Some(b)) if s.older_than(&firmware) && !s.newer_than(&firmware) => Action::Keep {
            slot: crate::slots::other(b),
        },
        _ => Action::Open,
    }
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("update")
}

fn copy_path(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("pre-migration.db")
}

fn record_path(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("pre-migration.json")
}

/// What a restore leaves for the supervisor to report (the restore may
/// run in PID 1, before the supervisor's log exists).
fn note_path(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("config-restored.txt")
}

/// The copy's record, if one is kept.
pub fn kept(state_dir: &Path) -> Option<Kept> {
    let bytes = std::fs::read(record_path(state_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Keeps or restores the copy as [`decide`] says, before anything opens
/// the store; returns what it did, for the log. Runs in PID 1 (which
/// reads the hostname from the store) and again in the supervisor; the
/// second run finds nothing left to do.
pub fn prepare(state_dir: &Path, booted: Option<char>) -> Result<Option<String>, String> {
    let store = alpharen_store::schema::probe(state_dir).map_err(|e| e.to_string())?;
    let kept = kept(state_dir);
    match decide(store, Schema::firmware(), booted, kept.as_ref()) {
        Action::Open => Ok(None),
        Action::Keep { slot } => {
            let (Some(from), Some(by)) = (store, booted) else {
                return Ok(None);
            };
            let k = Kept {
                slot,
                by,
                from,
                to: Schema::firmware(),
                at: alpharen_store::now_unix(),
            };
            keep(state_dir, &k).map_err(|e| {
                format!(
                    "cannot keep a copy of the configuration store before migrating it from schema {from}: {e}; the store is left as it is"
                )
            })?;
            Ok(Some(format!(
                "update: the configuration store (schema {from}) is migrated to schema {}; a copy from before is kept for slot {slot} in {} until slot {by} is committed",
                k.to,
                copy_path(state_dir).display()
            )))
        }
        Action::Restore => {
            let Some(k) = kept else { return Ok(None) };
            restore(state_dir, &k).map_err(|e| {
                format!(
                    "cannot restore the configuration store kept from before slot {}'s migration: {e}",
                    k.by
                )
            })?;
            Ok(Some(restored_text(&k)))
        }
    }
}

fn restored_text(k: &Kept) -> String {
    format!(
        "slot {by} migrated the configuration to schema {to} and was not committed; slot {slot} runs again with the configuration as it was before (schema {from}); changes made while slot {by} ran are gone",
        by = k.by,
        to = k.to,
        slot = k.slot,
        from = k.from
    )
}

/// The copy, then its record: a record never names a missing copy.
fn keep(state_dir: &Path, k: &Kept) -> Result<(), String> {
    let dir = dir(state_dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let copy = copy_path(state_dir);
    let tmp = copy.with_extension("db.tmp");
    remove_if_there(&tmp).map_err(|e| format!("removing {}: {e}", tmp.display()))?;
    alpharen_store::schema::copy_to(state_dir, &tmp).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &copy).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
    let json = serde_json::to_vec_pretty(k).map_err(|e| e.to_string())?;
    let rec = record_path(state_dir);
    crate::setup::write_durably(&rec, &json).map_err(|e| format!("writing {}: {e}", rec.display()))
}

/// The copy replaces `alpharen.db` (its WAL removed first, so none of the
/// newer store's pages are applied to it), then the record and the copy
/// go. Interrupted anywhere, the record is still there and the next boot
/// does it again.
fn restore(state_dir: &Path, k: &Kept) -> io::Result<()> {
    let db = state_dir.join("alpharen.db");
    let tmp = state_dir.join("alpharen.db.restore");
    std::fs::copy(copy_path(state_dir), &tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    for side in ["alpharen.db-wal", "alpharen.db-shm"] {
        remove_if_there(&state_dir.join(side))?;
    }
    std::fs::rename(&tmp, &db)?;
    sync_dir(state_dir)?;
    crate::setup::write_durably(&note_path(state_dir), restored_text(k).as_bytes())?;
    remove_if_there(&record_path(state_dir))?;
    remove_if_there(&copy_path(state_dir))?;
    sync_dir(&dir(state_dir))
}

/// The restore's report, once: the supervisor logs and mails it.
pub fn take_note(state_dir: &Path) -> Option<String> {
    let path = note_path(state_dir);
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    Some(text)
}

/// Drops the copy once `slot`, which migrated the store, is committed;
/// says so, for the log.
pub fn committed(state_dir: &Path, slot: char) -> io::Result<Option<String>> {
    let Some(k) = kept(state_dir).filter(|k| k.by == slot) else {
        return Ok(None);
    };
    remove_if_there(&record_path(state_dir))?;
    remove_if_there(&copy_path(state_dir))?;
    sync_dir(&dir(state_dir))?;
    Ok(Some(format!(
        "update: slot {slot} is committed; the configuration store kept from before its migration (for slot {}) is dropped",
        k.slot
    )))
}

#[cfg(test)]
#[path = "premigration_tests.rs"]
mod tests;
