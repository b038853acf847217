//! Named locks with an owner and an expiry, so a dead holder cannot
//! block the others forever: in SQLite, or on a cluster member in the
//! cluster's lock bucket (`alpharen_cluster::locks`).

use rusqlite::params;
use serde_json::{Value, json};

use super::{Data, DataError};

impl Data {
    /// Takes (or, for its owner, extends) a lock until `now + ttl_ms`; an
    /// expired holder loses it, so a dead worker cannot block forever.
    pub fn lock_acquire(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, DataError> {
        if let Some(kv) = self.cluster.kv()? {
            return Ok(kv.lock_acquire(name, owner, ttl_ms, now)?);
        }
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM integrator_locks WHERE name = ?1 AND expires_at <= ?2",
                params![name, now],
            )?;
            let n = tx.execute(
                "INSERT INTO integrator_locks (name, owner, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE integrator_locks.owner = excluded.owner",
                params![name, owner, now + ttl_ms],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    pub fn lock_release(&self, name: &str, owner: &str, now: i64) -> Result<bool, DataError> {
        if let Some(kv) = self.cluster.kv()? {
            return Ok(kv.lock_release(name, owner, now)?);
        }
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM integrator_locks WHERE name = ?1 AND owner = ?2",
                params![name, owner],
            )? > 0)
        })
    }

    pub fn locks(&self, now: i64) -> Result<Value, DataError> {
        if let Some(kv) = self.cluster.kv()? {
            let held = kv.lock_list(now)?;
            return Ok(Value::Array(
                held.into_iter()
                    .map(|(name, h)| json!({"name": name, "owner": h.owner, "expires_in_ms": h.expires_at - now}))
                    .collect(),
            ));
        }
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT name, owner, expires_at FROM integrator_locks WHERE expires_at > ?1 ORDER BY name",
            )?;
            let rows = st.query_map(params![now], |r| {
                Ok(json!({"name": r.get::<_, String>(0)?, "owner": r.get::<_, String>(1)?,
                          "expires_in_ms": r.get::<_, i64>(2)? - now}))
            })?;
            Ok(Value::Array(rows.collect::<Result<Vec<_>, _>>()?))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::data::test_data as open;

    #[test]
    fn lock_expiry_frees_a_dead_holder() {
        let (_d, data) = open();
        assert!(data.lock_acquire("l", "a", 1000, 0).expect("lock"));
        assert!(!data.lock_acquire("l", "b", 1000, 500).expect("lock"));
        assert!(data.lock_acquire("l", "a", 1000, 600).expect("extend"));
        assert!(!data.lock_acquire("l", "b", 1000, 1599).expect("lock"));
        assert!(
            data.lock_acquire("l", "b", 1000, 1600)
                .expect("expired holder")
        );
        assert!(!data.lock_release("l", "a", 1700).expect("release"));
        assert!(data.lock_release("l", "b", 1700).expect("release"));
        assert!(data.lock_acquire("l", "a", 1000, 1700).expect("lock"));
    }
}
