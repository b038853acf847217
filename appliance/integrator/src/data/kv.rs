//! ARKVD: namespaced keys holding JSON or bytes, with TTLs, prefix
//! listing and compare-and-set.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::{Data, DataError};

/// A KV value: JSON or raw bytes, kept apart so bytes round-trip exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum KvValue {
    Json(Value),
    Bytes(Vec<u8>),
}

impl KvValue {
    fn record(&self, ttl_ms: Option<i64>, now: i64) -> alpharen_cluster::kv::Record {
        let (kind, value) = self.encode();
        alpharen_cluster::kv::Record {
            kind: kind.into(),
            value,
            expires_at: ttl_ms.map(|t| now + t),
        }
    }

    pub(super) fn encode(&self) -> (&'static str, Vec<u8>) {
        match self {
            KvValue::Json(v) => ("json", serde_json::to_vec(v).unwrap_or_default()),
            KvValue::Bytes(b) => ("bytes", b.clone()),
        }
    }

    /// A hash, list or set of `self.kvdb.conn` (`redis.rs`) reads as its JSON.
    pub(super) fn decode(kind: &str, raw: Vec<u8>) -> KvValue {
        if matches!(kind, "json" | "hash" | "list" | "set") {
            KvValue::Json(serde_json::from_slice(&raw).unwrap_or(Value::Null))
        } else {
            KvValue::Bytes(raw)
        }
    }

    /// The wire form between worker and integrator: `{"json": v}` or `{"b64": s}`.
    pub fn to_wire(&self) -> Value {
        use base64::Engine;
        match self {
            KvValue::Json(v) => json!({"json": v}),
            KvValue::Bytes(b) => {
                json!({"b64": base64::engine::general_purpose::STANDARD.encode(b)})
            }
        }
    }

    pub fn from_wire(v: &Value) -> Option<KvValue> {
        use base64::Engine;
        if let Some(s) = v.get("b64") {
            return base64::engine::general_purpose::STANDARD
                .decode(s.as_str()?)
                .ok()
                .map(KvValue::Bytes);
        }
        v.get("json").map(|j| KvValue::Json(j.clone()))
    }
}

impl Data {
    pub fn kv_get(&self, ns: &str, key: &str, now: i64) -> Result<Option<KvValue>, DataError> {
        if let Some(c) = self.cluster.kv()? {
            return Ok(c
                .get(ns, key, now)?
                .map(|r| KvValue::decode(&r.kind, r.value)));
        }
        self.with(|c| Ok(read_live(c, ns, key, now)?))
    }

    pub fn kv_set(
        &self,
        ns: &str,
        key: &str,
        value: &KvValue,
        ttl_ms: Option<i64>,
        now: i64,
    ) -> Result<(), DataError> {
        if let Some(c) = self.cluster.kv()? {
            return Ok(c.set(ns, key, &value.record(ttl_ms, now))?);
        }
        self.with(|c| Ok(write(c, ns, key, value, ttl_ms, now)?))
    }

    pub fn kv_del(&self, ns: &str, key: &str, now: i64) -> Result<bool, DataError> {
        if let Some(c) = self.cluster.kv()? {
            return Ok(c.del(ns, key, now)?);
        }
        self.with(|c| {
            let n = c.execute(
                "DELETE FROM integrator_kv WHERE ns = ?1 AND key = ?2
                 AND (expires_at IS NULL OR expires_at > ?3)",
                params![ns, key, now],
            )?;
            c.execute(
                "DELETE FROM integrator_kv WHERE ns = ?1 AND key = ?2",
                params![ns, key],
            )?;
            Ok(n > 0)
        })
    }

    /// Compare-and-set: `expected` None means "absent"; `new` None deletes.
    pub fn kv_cas(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&KvValue>,
        new: Option<&KvValue>,
        ttl_ms: Option<i64>,
        now: i64,
    ) -> Result<bool, DataError> {
        if let Some(c) = self.cluster.kv()? {
            let expected = expected.map(KvValue::encode);
            let new = new.map(|v| v.record(ttl_ms, now));
            return Ok(c.cas(
                ns,
                key,
                expected.as_ref().map(|(k, v)| (*k, v.as_slice())),
                new.as_ref(),
                now,
            )?);
        }
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let cur = read_live(&tx, ns, key, now)?;
            if cur.as_ref() != expected {
                return Ok(false);
            }
            match new {
                Some(v) => write(&tx, ns, key, v, ttl_ms, now)?,
                None => {
                    tx.execute(
                        "DELETE FROM integrator_kv WHERE ns = ?1 AND key = ?2",
                        params![ns, key],
                    )?;
                }
            }
            tx.commit()?;
            Ok(true)
        })
    }

    pub fn kv_keys(
        &self,
        ns: &str,
        prefix: &str,
        now: i64,
        limit: i64,
    ) -> Result<Vec<String>, DataError> {
        if let Some(c) = self.cluster.kv()? {
            return Ok(c.keys(ns, prefix, now, limit.max(0) as usize)?);
        }
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT key FROM integrator_kv WHERE ns = ?1 AND substr(key, 1, length(?2)) = ?2
                 AND (expires_at IS NULL OR expires_at > ?3) ORDER BY key LIMIT ?4",
            )?;
            let rows = st.query_map(params![ns, prefix, now, limit], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
    }

    /// Every namespace with its live key count (for `ctl integrator kv list`).
    pub fn kv_namespaces(&self, now: i64) -> Result<Vec<(String, i64)>, DataError> {
        if let Some(c) = self.cluster.kv()? {
            return Ok(c.namespaces(now)?);
        }
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT ns, COUNT(*) FROM integrator_kv WHERE expires_at IS NULL OR expires_at > ?1
                 GROUP BY ns ORDER BY ns",
            )?;
            let rows = st.query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}

/// The value of a key unless it has expired.
fn read_live(c: &Connection, ns: &str, key: &str, now: i64) -> rusqlite::Result<Option<KvValue>> {
    let row: Option<(String, Vec<u8>)> = c
        .query_row(
            "SELECT kind, value FROM integrator_kv WHERE ns = ?1 AND key = ?2
             AND (expires_at IS NULL OR expires_at > ?3)",
            params![ns, key, now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.map(|(k, v)| KvValue::decode(&k, v)))
}

/// Stores a key, replacing any value it had; `ttl_ms` from `now`.
fn write(
    c: &Connection,
    ns: &str,
    key: &str,
    value: &KvValue,
    ttl_ms: Option<i64>,
    now: i64,
) -> rusqlite::Result<()> {
    let (kind, raw) = value.encode();
    c.prepare_cached(
        "INSERT OR REPLACE INTO integrator_kv (ns, key, kind, value, expires_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![ns, key, kind, raw, ttl_ms.map(|t| now + t), now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_data as open;

    #[test]
    fn kv_ttl_cas_prefix() {
        let (_d, data) = open();
        let v = KvValue::Json(json!({"a": 1}));
        data.kv_set("ns", "user:1", &v, Some(1000), 0).expect("set");
        data.kv_set("ns", "user:2", &KvValue::Bytes(vec![0, 255]), None, 0)
            .expect("set");
        data.kv_set("other", "user:3", &v, None, 0).expect("set");
        assert_eq!(
            data.kv_get("ns", "user:1", 999).expect("get"),
            Some(v.clone())
        );
        assert_eq!(data.kv_get("ns", "user:1", 1000).expect("get"), None);
        assert_eq!(
            data.kv_keys("ns", "user:", 10, 100).expect("keys"),
            vec!["user:1", "user:2"]
        );
        assert_eq!(
            data.kv_keys("ns", "user:", 2000, 100).expect("keys"),
            vec!["user:2"]
        );
        let one = KvValue::Json(json!(1));
        let two = KvValue::Json(json!(2));
        assert!(
            data.kv_cas("ns", "n", None, Some(&one), None, 0)
                .expect("cas")
        );
        assert!(
            !data
                .kv_cas("ns", "n", None, Some(&two), None, 0)
                .expect("cas")
        );
        assert!(
            !data
                .kv_cas("ns", "n", Some(&two), Some(&two), None, 0)
                .expect("cas")
        );
        assert!(
            data.kv_cas("ns", "n", Some(&one), Some(&two), None, 0)
                .expect("cas")
        );
        assert_eq!(data.kv_get("ns", "n", 0).expect("get"), Some(two));
        assert_eq!(data.sweep(5000).expect("sweep"), 1);
    }
}
