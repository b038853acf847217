//! Secrets (private keys, passwords, TSIG keys): kept apart from the
//! configuration so that reads of the config never carry them.

use rusqlite::params;

use crate::{Store, StoreError, now_unix};

impl Store {
    pub fn set_secret(&mut self, name: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
                "INSERT INTO secrets (name, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![name, value, now_unix()],
            )?;
        Ok(())
    }

    /// For services that need the value; never exposed by a read API.
    pub fn secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.optional("SELECT value FROM secrets WHERE name = ?1", [name])
    }

    pub fn secret_names(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM secrets ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_upserted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.secret("k").unwrap(), None);
        s.set_secret("k", "one").unwrap();
        s.set_secret("k", "two").unwrap();
        assert_eq!(s.secret("k").unwrap().as_deref(), Some("two"));
        assert_eq!(s.secret_names().unwrap(), vec!["k".to_string()]);
    }
}
