//! Config revisions and commit-confirm. Nothing is edited in place: every
//! change, rollback and automatic revert is a new revision.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::db::audit;
use crate::{Config, Section, Store, StoreError, diff, now_unix};

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
        Ok(self
            .conn
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

    /// Validates and stores `config` as a new revision. Risky sections make
    /// it pending; the first revision of a node never is.
    pub fn apply(
        &mut self,
        config: &Config,
        author: &str,
        comment: &str,
    ) -> Result<ApplyOutcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = apply_in(&tx, config, author, comment, true)?;
        tx.commit()?;
        Ok(out)
    }

    /// A new revision equal to revision `id`.
    pub fn rollback(&mut self, id: i64, author: &str) -> Result<ApplyOutcome, StoreError> {
        let old = self.revision(id)?;
        self.apply(&old.config, author, &format!("rollback to revision {id}"))
    }

    /// Keeps the pending revision for good.
    pub fn confirm(&mut self, actor: &str) -> Result<Pending, StoreError> {
        let pending = self.pending()?.ok_or(StoreError::NothingPending)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
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
        let pending = self.pending()?.ok_or(StoreError::NothingPending)?;
        let fallback = self.revision(pending.fallback)?;
        let comment = format!(
            "automatic revert: revision {} was not confirmed in time; restored revision {}",
            pending.revision, pending.fallback
        );
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM pending", [])?;
        let out = apply_in(&tx, &fallback.config, actor, &comment, false)?;
        audit(&tx, actor, "config.revert", &comment)?;
        tx.commit()?;
        Ok(out)
    }
}

/// The one write path for revisions, inside the caller's transaction so that
/// backups can restore users and secrets in the same commit.
pub(crate) fn apply_in(
    conn: &Connection,
    config: &Config,
    author: &str,
    comment: &str,
    may_pend: bool,
) -> Result<ApplyOutcome, StoreError> {
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(StoreError::Invalid(problems));
    }
    let current: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, document FROM revisions ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let old = match &current {
        Some((id, doc)) => Some(decode(*id, doc)?),
        None => None,
    };
    let changed = match &old {
        Some(old) => old.changed_sections(config),
        None => Section::ALL.to_vec(),
    };
    if old.is_some() && changed.is_empty() {
        return Ok(ApplyOutcome {
            revision: None,
            changed,
            pending: None,
        });
    }
    let now = now_unix();
    let document = serde_json::to_string(config)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode configuration: {e}")))?;
    conn.execute(
        "INSERT INTO revisions (created_at, author, comment, document) VALUES (?1, ?2, ?3, ?4)",
        params![now, author, comment, document],
    )?;
    let id = conn.last_insert_rowid();
    let existing: Option<i64> = conn
        .query_row("SELECT fallback FROM pending WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    let risky = changed.iter().any(|s| s.is_risky());
    let pending = match (current, existing) {
        // Still unconfirmed from before: keep the last confirmed fallback.
        (_, Some(fallback)) if may_pend => Some(fallback),
        (Some((prev, _)), None) if may_pend && risky => Some(prev),
        _ => None,
    }
    .map(|fallback| Pending {
        revision: id,
        fallback,
        deadline: now + config.node.confirm_timeout as i64,
    });
    if let Some(p) = pending {
        conn.execute(
            "INSERT OR REPLACE INTO pending (id, revision, fallback, deadline) VALUES (1, ?1, ?2, ?3)",
            params![p.revision, p.fallback, p.deadline],
        )?;
    }
    let names: Vec<&str> = changed.iter().map(|s| s.name()).collect();
    audit(
        conn,
        author,
        "config.apply",
        &format!("revision {id} ({}): {comment}", names.join(", ")),
    )?;
    Ok(ApplyOutcome {
        revision: Some(RevisionMeta {
            id,
            created_at: now,
            author: author.into(),
            comment: comment.into(),
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
        let out = s.rollback(1, "t").unwrap();
        let rev = out.revision.unwrap();
        assert_eq!(rev.id, 3);
        assert_eq!(s.current_config().unwrap().node.hostname, "a");
        let changes = s.diff(2, 3).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "node.hostname");
        assert!(matches!(
            s.rollback(99, "t"),
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
        s.confirm("t").unwrap();
        assert!(s.pending().unwrap().is_none());
        assert!(matches!(s.confirm("t"), Err(StoreError::NothingPending)));
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
    fn store_reopens_with_its_data() {
        let (d, mut s) = store();
        s.apply(&with_host("kept"), "t", "1").unwrap();
        drop(s);
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.current_config().unwrap().node.hostname, "kept");
    }
}
