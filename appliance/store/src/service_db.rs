//! A service's own database, `<state>/<service>.db`: its traffic (KV
//! writes, queue moves) commits there and never waits on the config
//! store's write lock, and it fsyncs on its own (WAL, `synchronous=FULL`:
//! a commit is on disk when it returns).

use std::path::Path;

use rusqlite::Connection;

use crate::{Store, StoreError};

/// Opens (creating if needed) `<state>/<name>.db` and applies `steps` not
/// yet applied (counted in `PRAGMA user_version`). Tables older firmware
/// kept in `alpharen.db` were moved here by the supervisor before the
/// service started ([`Store::hand_over`]).
pub fn open_service_db(
    state_dir: &Path,
    name: &str,
    steps: &[&str],
) -> Result<Connection, StoreError> {
    std::fs::create_dir_all(state_dir).map_err(|source| StoreError::StateDir {
        path: state_dir.display().to_string(),
        source,
    })?;
    let path = state_dir.join(format!("{name}.db"));
    let db_err = StoreError::db_at(&path);
    let mut conn = Connection::open(&path).map_err(db_err)?;
    // Its user's alone (SQLite gives `-wal`/`-shm` the same mode): other
    // services share the directory's group.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        StoreError::StateDir {
            path: path.display().to_string(),
            source,
        }
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db_err)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(db_err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if version as usize > steps.len() {
        return Err(StoreError::Corrupt(format!(
            "{} has schema version {version}, newer than this firmware knows ({}); boot the newer slot or restore a backup",
            path.display(),
            steps.len()
        )));
    }
    for (i, step) in steps.iter().enumerate().skip(version as usize) {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        tx.execute_batch(step).map_err(db_err)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
    }
    Ok(conn)
}

impl Store {
    /// Moves `name`'s `tables`, kept in `alpharen.db` by older firmware
    /// (made by `migrate_component(name, …)`), into `<state>/<name>.db`
    /// with their indexes and rows, at the schema version they had there;
    /// then drops them here. The supervisor does it before the service
    /// starts, as the service cannot open this file. A crash between the
    /// copy and the drop leaves a complete copy and the drop to do again.
    /// Returns whether anything was moved.
    pub fn hand_over(&mut self, name: &str, tables: &[&str]) -> Result<bool, StoreError> {
        let mut present = Vec::new();
        for t in tables {
            let sql: Option<String> = self.optional(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [t],
            )?;
            if let Some(sql) = sql {
                present.push((*t, sql));
            }
        }
        if present.is_empty() {
            return Ok(false);
        }
        let version: i64 = self
            .optional(
                "SELECT version FROM component_schema WHERE name = ?1",
                [name],
            )?
            .unwrap_or(0);
        let dir = self
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = dir.join(format!("{name}.db"));
        let db_err = StoreError::db_at(&path);
        let mut target = Connection::open(&path).map_err(db_err)?;
        target
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(db_err)?;
        let copied: i64 = target
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_err)?;
        if copied == 0 {
            copy_tables(&mut target, self.path(), &present, version).map_err(db_err)?;
        }
        drop(target);
        let tx = self.conn.transaction()?;
        for (t, _) in &present {
            tx.execute_batch(&format!("DROP TABLE {t};"))?;
        }
        tx.execute("DELETE FROM component_schema WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(true)
    }
}

/// The tables' schema (with their indexes) and rows from the old file, in
/// one transaction of the new one, which then has the old version.
fn copy_tables(
    target: &mut Connection,
    old: &Path,
    tables: &[(&str, String)],
    version: i64,
) -> Result<(), rusqlite::Error> {
    target.execute("ATTACH DATABASE ?1 AS old", [old.display().to_string()])?;
    let tx = target.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for (t, sql) in tables {
        tx.execute_batch(sql)?;
        let indexes: Vec<String> = {
            let mut stmt = tx.prepare(
                "SELECT sql FROM old.sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
            )?;
            stmt.query_map([t], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for i in indexes {
            tx.execute_batch(&i)?;
        }
        tx.execute_batch(&format!("INSERT INTO main.{t} SELECT * FROM old.{t};"))?;
    }
    tx.pragma_update(None, "user_version", version.max(1))?;
    tx.commit()?;
    target.execute_batch("DETACH DATABASE old;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OptionalExtension;

    const STEPS: &[&str] = &[
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL); CREATE INDEX kv_v ON kv (v);",
        "CREATE TABLE other (x INTEGER);",
    ];

    /// A store as older firmware left it: `svc`'s table `kv` at schema
    /// version 1 with one row.
    fn old_store() -> (tempfile::TempDir, crate::Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::Store::open(dir.path()).unwrap();
        store.migrate_component("svc", &STEPS[..1]).unwrap();
        store
            .connection()
            .execute("INSERT INTO kv VALUES ('a', '1')", [])
            .unwrap();
        (dir, store)
    }

    #[test]
    fn tables_move_from_the_config_store_once_at_their_version() {
        let (dir, mut store) = old_store();
        assert!(store.hand_over("svc", &["kv", "absent"]).unwrap());
        assert!(
            !store.hand_over("svc", &["kv"]).unwrap(),
            "nothing left to move"
        );
        let left: Option<String> = store
            .connection()
            .query_row(
                "SELECT name FROM sqlite_master WHERE name = 'kv'",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap();
        assert_eq!(left, None, "the old table is dropped");
        // The service opens it at version 1 and applies only step 2.
        let db = open_service_db(dir.path(), "svc", STEPS).unwrap();
        let v: String = db
            .query_row("SELECT v FROM kv WHERE k = 'a'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, "1");
        let index: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'kv_v'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1, "the index came along");
        db.execute("INSERT INTO other VALUES (1)", []).unwrap();
    }

    #[test]
    fn a_copy_made_before_a_crash_is_kept_and_the_drop_redone() {
        let (dir, mut store) = old_store();
        // The copy exists already (user_version set): rows are not doubled.
        let db = open_service_db(dir.path(), "svc", &STEPS[..1]).unwrap();
        db.execute("INSERT INTO kv VALUES ('a', 'copied')", [])
            .unwrap();
        drop(db);
        assert!(store.hand_over("svc", &["kv"]).unwrap());
        let db = open_service_db(dir.path(), "svc", STEPS).unwrap();
        let v: String = db
            .query_row("SELECT v FROM kv WHERE k = 'a'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, "copied");
    }

    #[test]
    fn the_state_directory_is_made_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("new");
        open_service_db(&state, "svc", STEPS).unwrap();
        assert!(state.join("svc.db").exists());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        open_service_db(dir.path(), "svc", STEPS).unwrap();
        let err = open_service_db(dir.path(), "svc", &[]).unwrap_err();
        assert!(
            err.to_string().contains("newer than this firmware"),
            "{err}"
        );
    }
}
