//! Opening the database, its schema migrations and the audit log.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::schema::{Schema, migrate_store, stored_config_schema};
use crate::{StoreError, now_unix};

/// A schema step: SQL, or code for data that SQL cannot rewrite.
enum Step {
    Sql(&'static str),
    Code(fn(&Connection) -> Result<(), StoreError>),
}

/// Schema steps, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[Step] = &[
    Step::Sql(FIRST),
    // What an automatic revert restores when confirmed edits were made
    // while a change was pending (`Store::edit`).
    Step::Sql("ALTER TABLE pending ADD COLUMN fallback_document TEXT;"),
    Step::Code(scrub_revisions),
    // How far this member applied the cluster's configuration log
    // (`shared.rs`).
    Step::Sql(
        "CREATE TABLE shared_config (id INTEGER PRIMARY KEY CHECK (id = 1), stream TEXT NOT NULL, seq INTEGER NOT NULL);",
    ),
];

const FIRST: &str = r#"
    CREATE TABLE revisions (
        id INTEGER PRIMARY KEY,
        created_at INTEGER NOT NULL,
        author TEXT NOT NULL,
        comment TEXT NOT NULL,
        document TEXT NOT NULL
    );
    CREATE TABLE pending (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        revision INTEGER NOT NULL REFERENCES revisions(id),
        fallback INTEGER NOT NULL REFERENCES revisions(id),
        deadline INTEGER NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE component_schema (
        name TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
"#;

/// Revisions written before secrets became references carry passwords in
/// clear: move them to the secret store and rewrite each revision with
/// references, and drop values from `config set` comments.
fn scrub_revisions(conn: &Connection) -> Result<(), StoreError> {
    let rows: Vec<(i64, String, String)> = {
        let mut stmt = conn.prepare("SELECT id, document, comment FROM revisions ORDER BY id")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    for (id, doc, comment) in rows {
        let mut config: crate::Config = serde_json::from_str(&doc)
            .map_err(|e| StoreError::Corrupt(format!("revision {id} cannot be read: {e}")))?;
        crate::secrets::move_secrets(conn, &mut config)?;
        let doc = serde_json::to_string(&config)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode revision {id}: {e}")))?;
        let comment = match comment.strip_prefix("set ") {
            Some(rest) => format!("set {}", rest.split(" = ").next().unwrap_or(rest)),
            None => comment,
        };
        conn.execute(
            "UPDATE revisions SET document = ?1, comment = ?2 WHERE id = ?3",
            params![doc, comment, id],
        )?;
    }
    conn.execute(
        "UPDATE audit SET detail = substr(detail, 1, instr(detail, ' = ') - 1) WHERE action = 'config.apply' AND detail LIKE '%: set % = %'",
        [],
    )?;
    Ok(())
}

/// How many schema steps of the tables this firmware knows.
pub(crate) const TABLE_SCHEMA: u32 = MIGRATIONS.len() as u32;

/// A handle on `<state>/alpharen.db`. Writers take `&mut self` so each write
/// is one transaction, begun IMMEDIATE: several processes share the file,
/// and a read transaction that later wants to write would fail at once
/// ("database is locked") instead of waiting out the busy timeout.
pub struct Store {
    pub(crate) conn: Connection,
    path: PathBuf,
    /// Publishes changes of the cluster-wide part (`shared.rs`).
    pub(crate) share: Option<Box<dyn crate::shared::Share>>,
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

impl Store {
    /// Opens (creating if needed) the store in a state directory.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::StateDir {
            path: state_dir.display().to_string(),
            source,
        })?;
        let path = state_dir.join("alpharen.db");
        let conn = Connection::open(&path).map_err(StoreError::db_at(&path))?;
        let mut store = Store {
            conn,
            path,
            share: None,
        };
        store.init(crate::schema::STEPS)?;
        Ok(store)
    }

    /// `open` with other configuration schema steps, for the tests of
    /// the migration.
    #[cfg(test)]
    pub(crate) fn open_with_steps(
        state_dir: &Path,
        steps: &[crate::schema::Step],
    ) -> Result<Store, StoreError> {
        let path = state_dir.join("alpharen.db");
        let conn = Connection::open(&path)?;
        let mut store = Store {
            conn,
            path,
            share: None,
        };
        store.init(steps)?;
        Ok(store)
    }

    fn init(&mut self, steps: &[crate::schema::Step]) -> Result<(), StoreError> {
        self.conn.busy_timeout(std::time::Duration::from_secs(5))?;
        self.conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )?;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = Schema {
            tables: TABLE_SCHEMA,
            config: steps.len() as u32,
        };
        let newer = |found: Schema| StoreError::NewerSchema {
            path: self.path.display().to_string(),
            found,
            known,
        };
        if version as usize > MIGRATIONS.len() {
            let config = stored_config_schema(&self.conn).unwrap_or(0);
            return Err(newer(Schema {
                tables: version as u32,
                config,
            }));
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            match step {
                Step::Sql(sql) => tx.execute_batch(sql)?,
                Step::Code(f) => f(&tx)?,
            }
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        let config = stored_config_schema(&self.conn)?;
        if config > known.config {
            return Err(newer(Schema {
                tables: TABLE_SCHEMA,
                config,
            }));
        }
        // A store made before the schema row is migrated from 0 (which
        // also writes the row); a new one gets the row at once.
        if config < known.config {
            migrate_store(&mut self.conn, config, steps)?;
        } else {
            self.conn.execute(
                "INSERT OR IGNORE INTO component_schema (name, version) VALUES (?1, ?2)",
                params![crate::schema::ROW, config],
            )?;
        }
        Ok(())
    }

    /// How older firmware made a service's tables in this file (each
    /// component counting its steps); tests make such a store with it to
    /// check [`Store::hand_over`].
    #[cfg(test)]
    pub(crate) fn migrate_component(
        &mut self,
        component: &str,
        steps: &[&str],
    ) -> Result<(), StoreError> {
        let done: i64 = self
            .optional(
                "SELECT version FROM component_schema WHERE name = ?1",
                [component],
            )?
            .unwrap_or(0);
        for (i, step) in steps.iter().enumerate().skip(done as usize) {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(step)?;
            tx.execute(
                "INSERT OR REPLACE INTO component_schema (name, version) VALUES (?1, ?2)",
                params![component, i as i64 + 1],
            )?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The connection, for tests that look under the typed methods.
    #[cfg(test)]
    pub(crate) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest audit entries, newest first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, at, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map(params![limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records an event that did not come with its own write (for example a
    /// service marked failed).
    pub fn audit(&self, actor: &str, action: &str, detail: &str) -> Result<(), StoreError> {
        Ok(audit(&self.conn, actor, action, detail)?)
    }

    /// Reads one value of a single-row query, `None` if there is no row.
    pub(crate) fn optional<T: rusqlite::types::FromSql>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.conn.query_row(sql, args, |r| r.get(0)).optional()?)
    }
}

pub(crate) fn audit(
    conn: &Connection,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<(), rusqlite::Error> {
    conn.execute(
        "INSERT INTO audit (at, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now_unix(), actor, action, detail],
    )
    .map(drop)
}
