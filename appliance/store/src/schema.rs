//! The configuration document's schema version and its migrations.
//!
//! Revisions are stored as JSON documents. When a release changes their
//! shape (renames a key, moves a section), it adds a step to [`STEPS`]: a
//! pure function that turns a document of schema `n` into one of schema
//! `n + 1`. The store records the schema its revisions are in (a row of
//! `component_schema`, which every firmware since the first has, so no
//! table change is needed) and, when it is opened by a firmware that knows
//! more steps, runs the missing ones over every revision in one
//! transaction. A store whose schema (of its tables, `PRAGMA user_version`,
//! or of its documents) is newer than the firmware knows is refused with
//! [`StoreError::NewerSchema`] instead of being misread.
//!
//! Rolling a migration back with a failed update is the supervisor's part
//! (it keeps a copy of the store from before the migration, tied to the
//! old slot): [`probe`] reads a store's schema without changing it and
//! [`copy_to`] makes that copy.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StoreError;

/// One step: a document of schema `n` to one of schema `n + 1`, or why it
/// cannot be migrated.
pub type Step = fn(Value) -> Result<Value, String>;

/// The steps this firmware knows, from schema 0 on. `STEPS[n]` migrates
/// schema `n` to `n + 1`.
pub const STEPS: &[Step] = &[recorded];

/// The schema this firmware writes.
pub const CONFIG_SCHEMA: u32 = STEPS.len() as u32;

/// The `component_schema` row that holds the documents' schema.
pub(crate) const ROW: &str = "config-document";

/// Schema 0 → 1: the documents are unchanged; from schema 1 on the store
/// records its schema (stores written before have no row, schema 0).
fn recorded(doc: Value) -> Result<Value, String> {
    Ok(doc)
}

/// Runs `steps[from..]` over one document.
pub fn migrate_document(mut doc: Value, from: u32, steps: &[Step]) -> Result<Value, String> {
    for (n, step) in steps.iter().enumerate().skip(from as usize) {
        doc = step(doc).map_err(|e| format!("schema step {n} → {}: {e}", n + 1))?;
    }
    Ok(doc)
}

/// A store's schema: of its tables and of its configuration documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub tables: u32,
    pub config: u32,
}

impl Schema {
    /// What this firmware reads and writes.
    pub fn firmware() -> Schema {
        Schema {
            tables: crate::db::TABLE_SCHEMA,
            config: CONFIG_SCHEMA,
        }
    }

    /// Whether either part is newer than `other`'s: a firmware that reads
    /// `other` cannot read this.
    pub fn newer_than(&self, other: &Schema) -> bool {
        self.tables > other.tables || self.config > other.config
    }

    /// Whether opening it with a firmware of schema `other` migrates it.
    pub fn older_than(&self, other: &Schema) -> bool {
        self.tables < other.tables || self.config < other.config
    }
}

impl std::fmt::Display for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tables {}, configuration {}", self.tables, self.config)
    }
}

/// The schema of the store in `state_dir`, read without changing it;
/// `None` when there is no store yet. A store whose tables predate the
/// schema row has configuration schema 0 if it holds revisions, else none
/// to migrate (it gets this firmware's).
pub fn probe(state_dir: &Path) -> Result<Option<Schema>, StoreError> {
    let path = state_dir.join("alpharen.db");
    if !path.exists() {
        return Ok(None);
    }
    let conn = open_read_only(&path)?;
    let db_err = StoreError::db_at(&path);
    let tables: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if tables == 0 {
        return Ok(None);
    }
    Ok(Some(Schema {
        tables,
        config: stored_config_schema(&conn).map_err(db_err)?,
    }))
}

/// The documents' schema recorded in an opened store (see [`probe`]).
pub(crate) fn stored_config_schema(conn: &Connection) -> Result<u32, rusqlite::Error> {
    let row: Option<u32> = conn
        .query_row(
            "SELECT version FROM component_schema WHERE name = ?1",
            [ROW],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(v) = row {
        return Ok(v);
    }
    let any: Option<i64> = conn
        .query_row("SELECT id FROM revisions LIMIT 1", [], |r| r.get(0))
        .optional()?;
    Ok(if any.is_some() { 0 } else { CONFIG_SCHEMA })
}

/// Migrates every revision (and a pending change's fallback document)
/// from schema `from` with `steps`, checking that each result is a
/// document this firmware reads, then records the new schema. One
/// transaction: a step that fails leaves the store as it was.
pub(crate) fn migrate_store(
    conn: &mut Connection,
    from: u32,
    steps: &[Step],
) -> Result<(), StoreError> {
    let to = steps.len() as u32;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let rows: Vec<(i64, String)> = {
        let mut stmt = tx.prepare("SELECT id, document FROM revisions ORDER BY id")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let fallback: Option<Option<String>> = tx
        .query_row(
            "SELECT fallback_document FROM pending WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let step = |what: &str, text: &str| -> Result<String, StoreError> {
        let fail = |e: String| {
            StoreError::Corrupt(format!(
                "{what} cannot be migrated from configuration schema {from} to {to}: {e}"
            ))
        };
        let doc: Value = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
        let doc = migrate_document(doc, from, steps).map_err(fail)?;
        let config: crate::Config =
            serde_json::from_value(doc.clone()).map_err(|e| fail(e.to_string()))?;
        serde_json::to_string(&config).map_err(|e| fail(e.to_string()))
    };
    for (id, text) in rows {
        let doc = step(&format!("revision {id}"), &text)?;
        tx.execute(
            "UPDATE revisions SET document = ?1 WHERE id = ?2",
            params![doc, id],
        )?;
    }
    if let Some(Some(text)) = fallback {
        let doc = step("the pending change's fallback", &text)?;
        tx.execute(
            "UPDATE pending SET fallback_document = ?1 WHERE id = 1",
            params![doc],
        )?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO component_schema (name, version) VALUES (?1, ?2)",
        params![ROW, to],
    )?;
    crate::db::audit(
        &tx,
        "store",
        "config.migrate",
        &format!("configuration schema {from} → {to}"),
    )?;
    tx.commit()?;
    Ok(())
}

/// The store at `path` opened read-only, waiting out a writer.
fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let db_err = StoreError::db_at(path);
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db_err)?;
    Ok(conn)
}

/// A consistent copy of the store in `state_dir` as `dest` (which must
/// not exist), written through SQLite (`VACUUM INTO`), so a write under
/// way or the WAL is no problem; fsynced.
pub fn copy_to(state_dir: &Path, dest: &Path) -> Result<(), StoreError> {
    let path = state_dir.join("alpharen.db");
    let conn = open_read_only(&path)?;
    conn.execute("VACUUM INTO ?1", [dest.display().to_string()])
        .map_err(StoreError::db_at(&path))?;
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|source| StoreError::StateDir {
            path: dest.display().to_string(),
            source,
        })
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
