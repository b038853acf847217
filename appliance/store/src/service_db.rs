//! A service's own database, `<state>/<service>.db`: its traffic (KV
//! writes, queue moves) commits there and never waits on the config
//! store's write lock, and it fsyncs on its own (WAL, `synchronous=FULL`:
//! a commit is on disk when it returns).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;

/// Opens (creating if needed) `<state>/<name>.db` and applies `steps` not
/// yet applied (counted in `PRAGMA user_version`). On creation, the rows of
/// `moved` tables still kept in `alpharen.db` by older firmware are copied
/// over and those tables dropped there, so an update keeps the data.
pub fn open_service_db(
    state_dir: &Path,
    name: &str,
    steps: &[&str],
    moved: &[&str],
) -> Result<Connection, StoreError> {
    let path = state_dir.join(format!("{name}.db"));
    let db_err = |source| StoreError::Db {
        path: path.display().to_string(),
        source,
    };
    let mut conn = Connection::open(&path).map_err(db_err)?;
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
    if version == 0 && !moved.is_empty() {
        move_from_store(&mut conn, state_dir, moved).map_err(db_err)?;
    }
    Ok(conn)
}

/// Copies `tables` from `alpharen.db` (where they exist) in one
/// transaction of the new file, then drops them from the old one. A crash
/// between the two leaves the copy done and the old tables to drop again.
fn move_from_store(
    conn: &mut Connection,
    state_dir: &Path,
    tables: &[&str],
) -> Result<(), rusqlite::Error> {
    let old = state_dir.join("alpharen.db");
    if !old.exists() {
        return Ok(());
    }
    conn.execute("ATTACH DATABASE ?1 AS old", [old.display().to_string()])?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut found = Vec::new();
    for t in tables {
        let exists: Option<String> = tx
            .query_row(
                "SELECT name FROM old.sqlite_master WHERE type = 'table' AND name = ?1",
                [t],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            tx.execute_batch(&format!("INSERT INTO main.{t} SELECT * FROM old.{t};"))?;
            found.push(*t);
        }
    }
    tx.commit()?;
    for t in found {
        conn.execute_batch(&format!("DROP TABLE old.{t};"))?;
    }
    conn.execute_batch("DETACH DATABASE old;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: &[&str] = &["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);"];

    #[test]
    fn rows_move_from_the_config_store_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::Store::open(dir.path()).unwrap();
        store.migrate_component("svc", STEPS).unwrap();
        store
            .connection()
            .execute("INSERT INTO kv VALUES ('a', '1')", [])
            .unwrap();
        drop(store);
        let db = open_service_db(dir.path(), "svc", STEPS, &["kv"]).unwrap();
        let v: String = db
            .query_row("SELECT v FROM kv WHERE k = 'a'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, "1");
        let mut store = crate::Store::open(dir.path()).unwrap();
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
        drop(db);
        // Reopening does not copy again (and finds nothing to copy).
        let db = open_service_db(dir.path(), "svc", STEPS, &["kv"]).unwrap();
        let n: i64 = db
            .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        open_service_db(dir.path(), "svc", STEPS, &[]).unwrap();
        let err = open_service_db(dir.path(), "svc", &[], &[]).unwrap_err();
        assert!(
            err.to_string().contains("newer than this firmware"),
            "{err}"
        );
    }
}
