//! SSH host keys pinned on first use, kept in `<state>/pgha.db`'s
//! `pgha_host_keys` table so a restart or a new revision of the config
//! does not forget them.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

/// The schema of `pgha.db` (`alpharen_store::open_service_db`).
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE pgha_host_keys (host TEXT PRIMARY KEY, key TEXT NOT NULL, pinned_at INTEGER NOT NULL);
     CREATE TABLE pgha_last_master (grp TEXT PRIMARY KEY, server INTEGER NOT NULL, since INTEGER NOT NULL);",
];

#[derive(Clone)]
pub struct Pins {
    db: Arc<Mutex<Connection>>,
}

impl Pins {
    pub fn new(db: Connection) -> Pins {
        Pins {
            db: Arc::new(Mutex::new(db)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let db = match self.db.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        f(&db)
            .inspect_err(|e| tracing::error!(error = %e, "pgha.db"))
            .ok()
    }

    /// The pinned key line of `host:port`, if any.
    pub fn get(&self, host: &str) -> Option<String> {
        self.with(|s| {
            s.query_row(
                "SELECT key FROM pgha_host_keys WHERE host = ?1",
                [host],
                |r| r.get(0),
            )
            .optional()
        })
        .flatten()
    }

    pub fn pin(&self, host: &str, key: &str) {
        self.with(|s| {
            s.execute(
                "INSERT OR REPLACE INTO pgha_host_keys (host, key, pinned_at) VALUES (?1, ?2, ?3)",
                params![host, key, alpharen_store::now_unix()],
            )
        });
    }

    /// Drops a pin so the next connection pins the key it sees; whether it
    /// was there.
    pub fn forget(&self, host: &str) -> bool {
        self.with(|s| s.execute("DELETE FROM pgha_host_keys WHERE host = ?1", [host])) == Some(1)
    }

    /// Which server of a group was master last (the seed's rule), 0 when
    /// never recorded.
    pub fn last_master(&self, group: &str) -> usize {
        self.with(|s| {
            s.query_row(
                "SELECT server FROM pgha_last_master WHERE grp = ?1",
                [group],
                |r| r.get::<_, i64>(0),
            )
            .optional()
        })
        .flatten()
        .map_or(0, |i| usize::from(i == 1))
    }

    pub fn set_last_master(&self, group: &str, server: usize) {
        self.with(|s| {
            s.execute(
                "INSERT OR REPLACE INTO pgha_last_master (grp, server, since) VALUES (?1, ?2, ?3)",
                params![group, server as i64, alpharen_store::now_unix()],
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins() -> (tempfile::TempDir, Pins) {
        let dir = tempfile::tempdir().unwrap();
        let db = alpharen_store::open_service_db(dir.path(), "pgha", SCHEMA).unwrap();
        (dir, Pins::new(db))
    }

    #[test]
    fn first_use_pins_and_forget_unpins() {
        let (_d, p) = pins();
        assert_eq!(p.get("db1:22"), None);
        p.pin("db1:22", "ssh-ed25519 AAAA");
        assert_eq!(p.get("db1:22").as_deref(), Some("ssh-ed25519 AAAA"));
        assert!(p.forget("db1:22"));
        assert!(!p.forget("db1:22"));
    }

    #[test]
    fn last_master_defaults_to_the_first_server() {
        let (_d, p) = pins();
        assert_eq!(p.last_master("general"), 0);
        p.set_last_master("general", 1);
        assert_eq!(p.last_master("general"), 1);
    }
}
