//! Config revisions and commit-confirm. Nothing is edited in place: every
//! change, rollback and automatic revert is a new revision.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::db::audit;
use crate::secrets::move_secrets;
use crate::shared::{self, Share};
use crate::{Config, Problem, Section, Store, StoreError, diff, now_unix};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionMeta {
    pub id: i64,
    pub created_at: i64,
    pub author: String,
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub meta: RevisionMeta,
    pub config: Config,
}

/// A risky revision in effect but not yet confirmed: unless confirmed by
/// `deadline` (Unix seconds), `fallback` is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub revision: i64,
    pub fallback: i64,
    pub deadline: i64,
}

/// What an apply did: the new revision (none when the document was
/// unchanged), the sections that changed, and whether it awaits confirmation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    pub revision: Option<RevisionMeta>,
    pub changed: Vec<Section>,
    pub pending: Option<Pending>,
}

fn decode(id: i64, document: &str) -> Result<Config, StoreError> {
    serde_json::from_str(document)
        .map_err(|e| StoreError::Corrupt(format!("revision {id} cannot be read: {e}")))
}

impl Store {
    /// The revision in effect, if any was ever applied.
    pub fn current(&self) -> Result<Option<Revision>, StoreError> {
        let id: Option<i64> = self
            .optional("SELECT max(id) FROM revisions", [])?
            .flatten();
        id.map(|id| self.revision(id)).transpose()
    }

    /// The configuration in effect, or the defaults on a new node.
    pub fn current_config(&self) -> Result<Config, StoreError> {
        Ok(self.current()?.map(|r| r.config).unwrap_or_default())
    }

    pub fn revision(&self, id: i64) -> Result<Revision, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT created_at, author, comment, document FROM revisions WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        RevisionMeta {
                            id,
                            created_at: r.get(0)?,
                            author: r.get(1)?,
                            comment: r.get(2)?,
                        },
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?;
        let (meta, document) = row.ok_or(StoreError::NoRevision(id))?;
        Ok(Revision {
            config: decode(id, &document)?,
            meta,
        })
    }

    /// Newest first.
    pub fn history(&self, limit: u32) -> Result<Vec<RevisionMeta>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, created_at, author, comment FROM revisions ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit], |r| {
            Ok(RevisionMeta {
                id: r.get(0)?,
                created_at: r.get(1)?,
                author: r.get(2)?,
                comment: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Key-path differences from revision `a` to revision `b`.
    pub fn diff(&self, a: i64, b: i64) -> Result<Vec<diff::Change>, StoreError> {
        let (ra, rb) = (self.revision(a)?, self.revision(b)?);
        Ok(diff::diff(&ra.config.to_json(), &rb.config.to_json()))
    }

    pub fn pending(&self) -> Result<Option<Pending>, StoreError> {
        pending_in(&self.conn)
    }

    /// Validates and stores `config` as a new revision. Risky sections make
    /// it pending; the first revision of a node never is.
    pub fn apply(
        &mut self,
        config: &Config,
        author: &str,
        comment: &str,
    ) -> Result<ApplyOutcome, StoreError> {
        self.write(config, &Write::new(author, comment))
    }

    /// `apply` with the caller's expectations (compare-and-swap).
    pub fn write(&mut self, config: &Config, w: &Write) -> Result<ApplyOutcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = apply_in(&tx, config, w, Pend::IfRisky, self.share.as_deref())?;
        tx.commit()?;
        Ok(out)
    }

    /// An edit the operator asked for by name (a VPN peer added or removed):
    /// it takes effect confirmed. A change already pending stays pending
    /// (this does not confirm it), and the edit is also made to what an
    /// automatic revert would restore, so the revert undoes only that
    /// change.
    pub fn edit(
        &mut self,
        w: &Write,
        f: impl Fn(&mut Config) -> Result<(), Vec<Problem>>,
    ) -> Result<ApplyOutcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = edit_in(&tx, w, self.share.as_deref(), f)?;
        tx.commit()?;
        Ok(out)
    }

    /// A new revision equal to revision `id`.
    pub fn rollback(&mut self, id: i64, w: &Write) -> Result<ApplyOutcome, StoreError> {
        let old = self.revision(id)?;
        let comment = format!("rollback to revision {id}");
        self.write(
            &old.config,
            &Write {
                comment: &comment,
                ..*w
            },
        )
    }

    /// Keeps the pending revision `revision` for good; nothing else is
    /// confirmed, so a confirmation never keeps a change it did not see.
    pub fn confirm(&mut self, revision: i64, actor: &str) -> Result<Pending, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let pending = pending_in(&tx)?;
        let pending = match pending {
            Some(p) if p.revision == revision => p,
            other => {
                return Err(match other {
                    None if revision == 0 => StoreError::NothingPending,
                    _ => StoreError::NotPending {
                        named: revision,
                        pending: other.map(|p| p.revision),
                    },
                });
            }
        };
        tx.execute("DELETE FROM pending", [])?;
        audit(
            &tx,
            actor,
            "config.confirm",
            &format!("revision {} confirmed", pending.revision),
        )?;
        tx.commit()?;
        Ok(pending)
    }

    /// Restores the fallback of an unconfirmed change as a new revision.
    pub fn revert_pending(&mut self, actor: &str) -> Result<ApplyOutcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let pending = pending_in(&tx)?.ok_or(StoreError::NothingPending)?;
        let mut fallback = fallback_config(&tx, &pending)?;
        if self.share.as_ref().is_some_and(|s| s.clustered()) {
            fallback = crate::shared::keep_shared(&fallback, &latest_config(&tx)?);
        }
        let comment = format!(
            "automatic revert: revision {} was not confirmed in time; restored revision {}",
            pending.revision, pending.fallback
        );
        tx.execute("DELETE FROM pending", [])?;
        let out = apply_in(
            &tx,
            &fallback,
            &Write::new(actor, &comment),
            Pend::Never,
            self.share.as_deref(),
        )?;
        audit(&tx, actor, "config.revert", &comment)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Who writes, why, and what they expect to replace.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    pub author: &'a str,
    pub comment: &'a str,
    /// The revision the caller read and edited (0: none yet); the write is
    /// refused with `Conflict` when another came first.
    pub expect_revision: Option<i64>,
}

impl<'a> Write<'a> {
    pub fn new(author: &'a str, comment: &'a str) -> Write<'a> {
        Write {
            author,
            comment,
            expect_revision: None,
        }
    }
}

/// Whether a write may start or carry a pending change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pend {
    /// Risky sections make it pending; an existing pending change moves
    /// to the new revision with a fresh deadline.
    IfRisky,
    /// Takes effect confirmed; an existing pending change moves to the new
    /// revision with its deadline unchanged.
    Keep,
    /// The automatic revert.
    Never,
}

fn encode(config: &Config) -> Result<String, StoreError> {
    serde_json::to_string(config)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode configuration: {e}")))
}

fn latest(conn: &Connection) -> Result<Option<(i64, Config)>, StoreError> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, document FROM revisions ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(id, doc)| Ok((id, decode(id, &doc)?))).transpose()
}

/// [`Store::edit`] inside the caller's transaction.
pub(crate) fn edit_in(
    tx: &Connection,
    w: &Write,
    share: Option<&dyn Share>,
    f: impl Fn(&mut Config) -> Result<(), Vec<Problem>>,
) -> Result<ApplyOutcome, StoreError> {
    let mut config = latest_config(tx)?;
    f(&mut config).map_err(StoreError::Invalid)?;
    let out = apply_in(tx, &config, w, Pend::Keep, share)?;
    if out.revision.is_some()
        && let Some(p) = pending_in(tx)?
    {
        let mut fallback = fallback_config(tx, &p)?;
        // Where the edit cannot be made to the old document (say the
        // peer's network only exists in the pending one), the revert
        // restores the old document as it was.
        if f(&mut fallback).is_ok() && fallback.validate().is_empty() {
            let doc = encode(&fallback)?;
            tx.execute(
                "UPDATE pending SET fallback_document = ?1 WHERE id = 1",
                params![doc],
            )?;
        }
    }
    Ok(out)
}

/// The document in effect, or the defaults on a new node.
pub(crate) fn latest_config(conn: &Connection) -> Result<Config, StoreError> {
    Ok(latest(conn)?.map(|(_, c)| c).unwrap_or_default())
}

fn pending_in(conn: &Connection) -> Result<Option<Pending>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT revision, fallback, deadline FROM pending WHERE id = 1",
            [],
            |r| {
                Ok(Pending {
                    revision: r.get(0)?,
                    fallback: r.get(1)?,
                    deadline: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// What a revert restores: the fallback revision, with the confirmed edits
/// made since.
fn fallback_config(conn: &Connection, p: &Pending) -> Result<Config, StoreError> {
    let doc: Option<String> = conn.query_row(
        "SELECT coalesce(fallback_document, (SELECT document FROM revisions WHERE id = ?1)) FROM pending WHERE id = 1",
        params![p.fallback],
        |r| r.get(0),
    )?;
    let doc = doc.ok_or(StoreError::NoRevision(p.fallback))?;
    decode(p.fallback, &doc)
}

/// The one write path for revisions, inside the caller's transaction so that
/// backups can restore users and secrets in the same commit.
pub(crate) fn apply_in(
    conn: &Connection,
    config: &Config,
    w: &Write,
    pend: Pend,
    share: Option<&dyn Share>,
) -> Result<ApplyOutcome, StoreError> {
    let current = latest(conn)?;
    let share = share.filter(|s| s.clustered());
    let before = match share {
        Some(_) => Some(shared::part_in(
            conn,
            &current.as_ref().map(|(_, c)| c.clone()).unwrap_or_default(),
        )?),
        None => None,
    };
    if let Some(expected) = w.expect_revision {
        let now_at = current.as_ref().map_or(0, |(id, _)| *id);
        if expected != now_at {
            return Err(StoreError::Conflict {
                expected,
                current: now_at,
            });
        }
    }
    let mut config = config.clone();
    let secrets_changed = move_secrets(conn, &mut config)?;
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(StoreError::Invalid(problems));
    }
    let mut changed = match &current {
        Some((_, old)) => old.changed_sections(&config),
        None => Section::ALL.to_vec(),
    };
    changed.extend(secrets_changed);
    changed.sort();
    changed.dedup();
    if current.is_some() && changed.is_empty() {
        return Ok(ApplyOutcome {
            revision: None,
            changed,
            pending: None,
        });
    }
    let now = now_unix();
    conn.execute(
        "INSERT INTO revisions (created_at, author, comment, document) VALUES (?1, ?2, ?3, ?4)",
        params![now, w.author, w.comment, encode(&config)?],
    )?;
    let id = conn.last_insert_rowid();
    if let (Some(share), Some(before)) = (share, &before) {
        shared::publish_in(conn, share, before, &config, w)?;
    }
    if current
        .as_ref()
        .is_some_and(|(_, old)| old.cluster.name != config.cluster.name)
    {
        shared::new_cluster(conn, &config)?;
    }
    let existing = pending_in(conn)?;
    let risky = changed.iter().any(|s| s.is_risky());
    let deadline = now + config.node.confirm_timeout as i64;
    let pending = match (pend, &current, existing) {
        // Still unconfirmed from before: keep the last confirmed fallback.
        (Pend::IfRisky, _, Some(p)) => Some(Pending {
            revision: id,
            deadline,
            ..p
        }),
        (Pend::Keep, _, Some(p)) => Some(Pending { revision: id, ..p }),
        (Pend::IfRisky, Some((prev, _)), None) if risky => Some(Pending {
            revision: id,
            fallback: *prev,
            deadline,
        }),
        _ => None,
    };
    match pending {
        Some(p) if existing.is_some() => {
            conn.execute(
                "UPDATE pending SET revision = ?1, deadline = ?2 WHERE id = 1",
                params![p.revision, p.deadline],
            )?;
        }
        Some(p) => {
            conn.execute(
                "INSERT INTO pending (id, revision, fallback, deadline) VALUES (1, ?1, ?2, ?3)",
                params![p.revision, p.fallback, p.deadline],
            )?;
        }
        None => {}
    }
    let names: Vec<&str> = changed.iter().map(|s| s.name()).collect();
    audit(
        conn,
        w.author,
        "config.apply",
        &format!("revision {id} ({}): {}", names.join(", "), w.comment),
    )?;
    Ok(ApplyOutcome {
        revision: Some(RevisionMeta {
            id,
            created_at: now,
            author: w.author.into(),
            comment: w.comment.into(),
        }),
        changed,
        pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    fn with_host(name: &str) -> Config {
        let mut c = Config::default();
        c.node.hostname = name.into();
        c
    }

    #[test]
    fn revisions_accumulate_and_unchanged_apply_writes_nothing() {
        let (_d, mut s) = store();
        assert!(s.current().unwrap().is_none());
        let first = s.apply(&with_host("a"), "test", "first").unwrap();
        assert_eq!(first.revision.unwrap().id, 1);
        assert!(first.pending.is_none(), "first revision is never pending");
        let same = s.apply(&with_host("a"), "test", "again").unwrap();
        assert!(same.revision.is_none());
        s.apply(&with_host("b"), "test", "second").unwrap();
        let hist = s.history(10).unwrap();
        assert_eq!(hist.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(s.current_config().unwrap().node.hostname, "b");
    }

    #[test]
    fn invalid_config_writes_nothing() {
        let (_d, mut s) = store();
        s.apply(&with_host("a"), "test", "first").unwrap();
        let err = s.apply(&with_host("bad_name"), "test", "x").unwrap_err();
        assert_eq!(err.code(), "invalid_config");
        assert!(err.to_string().contains("node.hostname"));
        assert_eq!(s.history(10).unwrap().len(), 1);
    }

    #[test]
    fn rollback_is_a_new_revision_equal_to_the_old_one() {
        let (_d, mut s) = store();
        s.apply(&with_host("a"), "t", "1").unwrap();
        s.apply(&with_host("b"), "t", "2").unwrap();
        let out = s.rollback(1, &Write::new("t", "")).unwrap();
        let rev = out.revision.unwrap();
        assert_eq!(rev.id, 3);
        assert_eq!(s.current_config().unwrap().node.hostname, "a");
        let changes = s.diff(2, 3).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "node.hostname");
        assert!(matches!(
            s.rollback(99, &Write::new("t", "")),
            Err(StoreError::NoRevision(99))
        ));
    }

    #[test]
    fn risky_change_is_pending_until_confirmed() {
        let (_d, mut s) = store();
        s.apply(&Config::default(), "t", "1").unwrap();
        let mut risky = Config::default();
        risky.network.manage = Some(true);
        let out = s.apply(&risky, "t", "net").unwrap();
        let p = out.pending.unwrap();
        assert_eq!((p.revision, p.fallback), (2, 1));
        assert_eq!(s.pending().unwrap(), Some(p));
        // A safe change while pending keeps the confirmed fallback.
        let mut more = risky.clone();
        more.node.hostname = "x".into();
        let p2 = s.apply(&more, "t", "host").unwrap().pending.unwrap();
        assert_eq!((p2.revision, p2.fallback), (3, 1));
        assert!(matches!(
            s.confirm(2, "t"),
            Err(StoreError::NotPending {
                named: 2,
                pending: Some(3)
            })
        ));
        s.confirm(3, "t").unwrap();
        assert!(s.pending().unwrap().is_none());
        assert!(matches!(
            s.confirm(3, "t"),
            Err(StoreError::NotPending { pending: None, .. })
        ));
    }

    #[test]
    fn unconfirmed_change_reverts_to_the_fallback() {
        let (_d, mut s) = store();
        s.apply(&Config::default(), "t", "1").unwrap();
        let mut risky = Config::default();
        risky.network.manage = Some(false);
        s.apply(&risky, "t", "net").unwrap();
        let out = s.revert_pending("alpharen").unwrap();
        assert_eq!(out.revision.unwrap().id, 3);
        assert!(out.pending.is_none());
        assert_eq!(s.current_config().unwrap(), Config::default());
        assert!(s.pending().unwrap().is_none());
        let log = s.audit_log(1).unwrap();
        assert_eq!(log[0].action, "config.revert");
    }

    #[test]
    fn expect_revision_refuses_a_stale_write() {
        let (_d, mut s) = store();
        let w = Write {
            expect_revision: Some(0),
            ..Write::new("t", "1")
        };
        s.write(&with_host("a"), &w).unwrap();
        let stale = s.write(&with_host("b"), &w).unwrap_err();
        assert_eq!(stale.code(), "conflict");
        assert!(stale.to_string().contains("current one is 1"), "{stale}");
        let fresh = Write {
            expect_revision: Some(1),
            ..w
        };
        s.write(&with_host("b"), &fresh).unwrap();
        assert_eq!(s.current_config().unwrap().node.hostname, "b");
    }

    #[test]
    fn an_edit_keeps_a_pending_change_pending_and_survives_its_revert() {
        let (_d, mut s) = store();
        s.apply(&with_host("a"), "t", "1").unwrap();
        let mut risky = with_host("a");
        risky.network.manage = Some(true);
        let p = s.apply(&risky, "admin", "net").unwrap().pending.unwrap();
        let edit = |c: &mut Config| {
            c.node.timezone = "Europe/Berlin".into();
            Ok(())
        };
        let out = s.edit(&Write::new("vpn", "peer"), edit).unwrap();
        let still = out.pending.expect("the network change is still pending");
        assert_eq!((still.fallback, still.deadline), (p.fallback, p.deadline));
        assert!(s.confirm(p.revision, "admin").is_err(), "old number");
        s.revert_pending("alpharen").unwrap();
        let now = s.current_config().unwrap();
        assert_eq!(now.network.manage, None, "network change reverted");
        assert_eq!(now.node.timezone, "Europe/Berlin", "the edit survives");
    }

    #[test]
    fn an_edit_without_pending_takes_effect_confirmed() {
        let (_d, mut s) = store();
        s.apply(&with_host("a"), "t", "1").unwrap();
        let out = s
            .edit(&Write::new("vpn", "peer"), |c| {
                c.network.manage = Some(false);
                Ok(())
            })
            .unwrap();
        assert!(out.pending.is_none());
        assert!(s.pending().unwrap().is_none());
    }

    #[test]
    fn revisions_never_hold_a_password() {
        let (_d, mut s) = store();
        let c = Config::from_toml(
            "[[integrator.security]]\nname = \"a\"\nkind = \"basic\"\nusername = \"u\"\npassword = \"hunter2\"\n",
        )
        .unwrap();
        s.apply(&c, "t", "1").unwrap();
        let stored = s.current().unwrap().unwrap().config;
        assert!(!serde_json::to_string(&stored).unwrap().contains("hunter2"));
        // The same password again changes nothing; a new one is a change.
        assert!(s.apply(&c, "t", "2").unwrap().revision.is_none());
        let mut c2 = c.clone();
        c2.integrator.security[0].password = Some("other".into());
        let out = s.apply(&c2, "t", "3").unwrap();
        assert_eq!(out.changed, vec![Section::Integrator]);
        assert!(s.diff(1, 2).unwrap().is_empty(), "a diff shows no value");
    }

    #[test]
    fn store_reopens_with_its_data() {
        let (d, mut s) = store();
        s.apply(&with_host("kept"), "t", "1").unwrap();
        drop(s);
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.current_config().unwrap().node.hostname, "kept");
    }
}
