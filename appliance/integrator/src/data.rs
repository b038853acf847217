//! Durable state of the async features in SQLite: the KV store (ARKVD),
//! the pub/sub and `invoke_async` queues (ARPuSuB), locks and the
//! scheduler's job table. Its own connection to `alpharen.db` with
//! `synchronous = NORMAL`: in WAL mode a commit survives a crash of this
//! process (kill -9), and only a power cut may lose the newest commits,
//! which costs an fsync per KV write or published message otherwise.

use std::path::Path;
use std::sync::Mutex;

use alpharen_store::Store;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};

/// Appended to `registry::SCHEMA` (never edit an applied step).
pub const SCHEMA_STEP: &str = r#"
    CREATE TABLE integrator_kv (
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        value BLOB NOT NULL,
        expires_at INTEGER,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (ns, key)
    ) WITHOUT ROWID;
    CREATE TABLE integrator_queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        msg_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        subscriber TEXT NOT NULL,
        data TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        expires_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        backoff_ms INTEGER NOT NULL,
        next_at INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'ready',
        last_error TEXT
    );
    CREATE INDEX integrator_queue_due ON integrator_queue (state, next_at);
    CREATE INDEX integrator_queue_sub ON integrator_queue (topic, subscriber, state);
    CREATE TABLE integrator_locks (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE integrator_jobs (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        next_run INTEGER,
        last_run INTEGER,
        last_result TEXT,
        last_trigger TEXT,
        last_ms REAL,
        runs INTEGER NOT NULL DEFAULT 0
    );
"#;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "queue of subscriber {subscriber:?} on topic {topic:?} is full ({depth} messages); the message was not published"
    )]
    Full {
        topic: String,
        subscriber: String,
        depth: u64,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Store(#[from] alpharen_store::StoreError),
}

impl DataError {
    pub fn code(&self) -> &'static str {
        match self {
            DataError::Full { .. } => "queue_full",
            DataError::NotFound(_) => "not_found",
            _ => "internal_error",
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A KV value: JSON or raw bytes, kept apart so bytes round-trip exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum KvValue {
    Json(Value),
    Bytes(Vec<u8>),
}

impl KvValue {
    fn encode(&self) -> (&'static str, Vec<u8>) {
        match self {
            KvValue::Json(v) => ("json", serde_json::to_vec(v).unwrap_or_default()),
            KvValue::Bytes(b) => ("bytes", b.clone()),
        }
    }

    fn decode(kind: &str, raw: Vec<u8>) -> KvValue {
        if kind == "json" {
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

/// One message taken from a queue for delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub msg_id: String,
    pub topic: String,
    pub subscriber: String,
    pub data: Value,
    pub attempts: u32,
    pub max_attempts: u32,
    pub backoff_ms: u64,
}

/// Where a message goes: a topic's subscriber or (topic "") an
/// `invoke_async` target.
#[derive(Debug, Clone)]
pub struct Route {
    pub topic: String,
    pub subscriber: String,
    pub max_depth: u64,
    pub expiry_ms: Option<i64>,
    pub max_attempts: u32,
    pub backoff_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueStat {
    pub topic: String,
    pub subscriber: String,
    pub ready: i64,
    pub in_flight: i64,
    pub dead: i64,
}

/// The queue operations delivery needs. SQLite implements it on one
/// node; NATS JetStream (a stream per topic, a durable consumer per
/// subscriber, `AckWait`/`MaxDeliver` and an advisory-fed DLQ) can take its
/// place in cluster mode without touching delivery or the SDK.
pub trait Broker: Send + Sync {
    /// Stores one copy of the message per route, all or none.
    fn publish(&self, routes: &[Route], data: &Value, now: i64) -> Result<String, DataError>;
    /// Leases up to `limit` due messages (they are not handed out twice).
    fn take_due(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, DataError>;
    /// Delivered: forget it.
    fn ack(&self, id: i64) -> Result<(), DataError>;
    /// Failed: try again at `next_at`, or dead-letter when `next_at` is None.
    fn nack(&self, id: i64, error: &str, next_at: Option<i64>) -> Result<(), DataError>;
    /// Not attempted (no worker free): back to ready without counting.
    fn release(&self, id: i64, next_at: i64) -> Result<(), DataError>;
    /// After a restart: leased messages were in flight and are due again.
    fn recover(&self) -> Result<usize, DataError>;
}

pub struct Data {
    conn: Mutex<Store>,
}

impl Data {
    pub fn open(state_dir: &Path) -> Result<Data, DataError> {
        let mut store = Store::open(state_dir)?;
        store
            .connection()
            .execute_batch("PRAGMA synchronous = NORMAL;")?;
        Ok(Data {
            conn: Mutex::new(store),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DataError>,
    ) -> Result<T, DataError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.connection())
    }

    // ---- KV ---------------------------------------------------------------

    pub fn kv_get(&self, ns: &str, key: &str, now: i64) -> Result<Option<KvValue>, DataError> {
        self.with(|c| {
            let row: Option<(String, Vec<u8>)> = c
                .query_row(
                    "SELECT kind, value FROM integrator_kv WHERE ns = ?1 AND key = ?2
                     AND (expires_at IS NULL OR expires_at > ?3)",
                    params![ns, key, now],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(row.map(|(k, v)| KvValue::decode(&k, v)))
        })
    }

    pub fn kv_set(
        &self,
        ns: &str,
        key: &str,
        value: &KvValue,
        ttl_ms: Option<i64>,
        now: i64,
    ) -> Result<(), DataError> {
        let (kind, raw) = value.encode();
        self.with(|c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO integrator_kv (ns, key, kind, value, expires_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![ns, key, kind, raw, ttl_ms.map(|t| now + t), now])?;
            Ok(())
        })
    }

    pub fn kv_del(&self, ns: &str, key: &str, now: i64) -> Result<bool, DataError> {
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
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let cur: Option<(String, Vec<u8>)> = tx
                .query_row(
                    "SELECT kind, value FROM integrator_kv WHERE ns = ?1 AND key = ?2
                     AND (expires_at IS NULL OR expires_at > ?3)",
                    params![ns, key, now],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let cur = cur.map(|(k, v)| KvValue::decode(&k, v));
            if cur.as_ref() != expected {
                return Ok(false);
            }
            match new {
                Some(v) => {
                    let (kind, raw) = v.encode();
                    tx.execute(
                        "INSERT OR REPLACE INTO integrator_kv (ns, key, kind, value, expires_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![ns, key, kind, raw, ttl_ms.map(|t| now + t), now],
                    )?;
                }
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
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT ns, COUNT(*) FROM integrator_kv WHERE expires_at IS NULL OR expires_at > ?1
                 GROUP BY ns ORDER BY ns",
            )?;
            let rows = st.query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Deletes expired keys and locks (reads already ignore them).
    pub fn sweep(&self, now: i64) -> Result<usize, DataError> {
        self.with(|c| {
            let a = c.execute(
                "DELETE FROM integrator_kv WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                params![now],
            )?;
            let b = c.execute(
                "DELETE FROM integrator_locks WHERE expires_at <= ?1",
                params![now],
            )?;
            Ok(a + b)
        })
    }

    // ---- locks --------------------------------------------------------------

    /// Takes (or, for its owner, extends) a lock until `now + ttl_ms`; an
    /// expired holder loses it, so a dead worker cannot block forever.
    pub fn lock_acquire(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<bool, DataError> {
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

    pub fn lock_release(&self, name: &str, owner: &str) -> Result<bool, DataError> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM integrator_locks WHERE name = ?1 AND owner = ?2",
                params![name, owner],
            )? > 0)
        })
    }

    pub fn locks(&self, now: i64) -> Result<Value, DataError> {
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

    // ---- queues: inspection -------------------------------------------------

    pub fn queue_stats(&self) -> Result<Vec<QueueStat>, DataError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT topic, subscriber,
                        SUM(state = 'ready'), SUM(state = 'leased'), SUM(state = 'dlq')
                 FROM integrator_queue GROUP BY topic, subscriber ORDER BY topic, subscriber",
            )?;
            let rows = st.query_map([], |r| {
                Ok(QueueStat {
                    topic: r.get(0)?,
                    subscriber: r.get(1)?,
                    ready: r.get(2)?,
                    in_flight: r.get(3)?,
                    dead: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Messages of one topic (and subscriber), `dlq` true for the dead letters.
    pub fn queue_messages(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        dlq: bool,
        limit: i64,
    ) -> Result<Value, DataError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, msg_id, subscriber, data, attempts, state, last_error, published_at
                 FROM integrator_queue WHERE topic = ?1 AND (?2 IS NULL OR subscriber = ?2)
                 AND ((?3 AND state = 'dlq') OR (NOT ?3 AND state != 'dlq'))
                 ORDER BY id LIMIT ?4",
            )?;
            let rows = st.query_map(params![topic, subscriber, dlq, limit], |r| {
                let data: String = r.get(3)?;
                Ok(json!({
                    "id": r.get::<_, i64>(0)?, "msg_id": r.get::<_, String>(1)?,
                    "subscriber": r.get::<_, String>(2)?,
                    "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::Null),
                    "attempts": r.get::<_, i64>(4)?, "state": r.get::<_, String>(5)?,
                    "last_error": r.get::<_, Option<String>>(6)?,
                    "published_at": r.get::<_, i64>(7)?,
                }))
            })?;
            Ok(Value::Array(rows.collect::<Result<Vec<_>, _>>()?))
        })
    }

    /// Drops the ready (or, `dlq`, the dead) messages of a topic.
    pub fn purge(
        &self,
        topic: &str,
        subscriber: Option<&str>,
        dlq: bool,
    ) -> Result<usize, DataError> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM integrator_queue WHERE topic = ?1 AND (?2 IS NULL OR subscriber = ?2)
                 AND state = ?3",
                params![topic, subscriber, if dlq { "dlq" } else { "ready" }],
            )?)
        })
    }

    // ---- jobs -----------------------------------------------------------------

    pub fn job_rows(&self) -> Result<Vec<JobRow>, DataError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT name, spec, first_seen, next_run, last_run, last_result, last_trigger, last_ms, runs
                 FROM integrator_jobs",
            )?;
            let rows = st.query_map([], |r| {
                Ok(JobRow {
                    name: r.get(0)?,
                    spec: r.get(1)?,
                    first_seen: r.get(2)?,
                    next_run: r.get(3)?,
                    last_run: r.get(4)?,
                    last_result: r.get(5)?,
                    last_trigger: r.get(6)?,
                    last_ms: r.get(7)?,
                    runs: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    pub fn job_upsert(
        &self,
        name: &str,
        spec: &str,
        first_seen: i64,
        next_run: Option<i64>,
    ) -> Result<(), DataError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO integrator_jobs (name, spec, first_seen, next_run) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET spec = ?2, first_seen = ?3, next_run = ?4",
                params![name, spec, first_seen, next_run],
            )?;
            Ok(())
        })
    }

    pub fn job_next(&self, name: &str, next_run: Option<i64>) -> Result<(), DataError> {
        self.with(|c| {
            c.execute(
                "UPDATE integrator_jobs SET next_run = ?2 WHERE name = ?1",
                params![name, next_run],
            )?;
            Ok(())
        })
    }

    pub fn job_result(
        &self,
        name: &str,
        at: i64,
        result: &str,
        trigger: &str,
        ms: f64,
        ran: bool,
    ) -> Result<(), DataError> {
        self.with(|c| {
            c.execute(
                "UPDATE integrator_jobs SET last_run = ?2, last_result = ?3, last_trigger = ?4,
                 last_ms = ?5, runs = runs + ?6 WHERE name = ?1",
                params![name, at, result, trigger, ms, i64::from(ran)],
            )?;
            Ok(())
        })
    }

    pub fn job_forget_others(&self, keep: &[&str]) -> Result<(), DataError> {
        self.with(|c| {
            let names: Vec<String> = {
                let mut st = c.prepare("SELECT name FROM integrator_jobs")?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect::<Result<Vec<String>, _>>()?
            };
            for n in names.iter().filter(|n| !keep.contains(&n.as_str())) {
                c.execute("DELETE FROM integrator_jobs WHERE name = ?1", params![n])?;
            }
            Ok(())
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    pub name: String,
    pub spec: String,
    pub first_seen: i64,
    pub next_run: Option<i64>,
    pub last_run: Option<i64>,
    pub last_result: Option<String>,
    pub last_trigger: Option<String>,
    pub last_ms: Option<f64>,
    pub runs: i64,
}

fn msg_id() -> String {
    alpharen_store::uuid4().replace('-', "")
}

impl Broker for Data {
    fn publish(&self, routes: &[Route], data: &Value, now: i64) -> Result<String, DataError> {
        let id = msg_id();
        let text = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for r in routes {
                let depth: i64 = tx
                    .prepare_cached(
                        "SELECT COUNT(*) FROM integrator_queue WHERE topic = ?1 AND subscriber = ?2
                         AND state != 'dlq'",
                    )?
                    .query_row(params![r.topic, r.subscriber], |row| row.get(0))?;
                if depth as u64 >= r.max_depth {
                    return Err(DataError::Full {
                        topic: r.topic.clone(),
                        subscriber: r.subscriber.clone(),
                        depth: r.max_depth,
                    });
                }
                tx.prepare_cached(
                    "INSERT INTO integrator_queue (msg_id, topic, subscriber, data, published_at,
                     expires_at, max_attempts, backoff_ms, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?5)",
                )?
                .execute(params![
                    id,
                    r.topic,
                    r.subscriber,
                    text,
                    now,
                    r.expiry_ms.map(|e| now + e),
                    r.max_attempts,
                    r.backoff_ms as i64
                ])?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    fn take_due(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, DataError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE integrator_queue SET state = 'dlq', last_error = 'expired before delivery'
                 WHERE state = 'ready' AND expires_at IS NOT NULL AND expires_at <= ?1",
                params![now],
            )?;
            let out = {
                let mut st = tx.prepare_cached(
                    "SELECT id, msg_id, topic, subscriber, data, attempts, max_attempts, backoff_ms
                     FROM integrator_queue WHERE state = 'ready' AND next_at <= ?1
                     ORDER BY next_at, id LIMIT ?2",
                )?;
                let rows = st.query_map(params![now, limit as i64], |r| {
                    let data: String = r.get(4)?;
                    Ok(Delivery {
                        id: r.get(0)?,
                        msg_id: r.get(1)?,
                        topic: r.get(2)?,
                        subscriber: r.get(3)?,
                        data: serde_json::from_str(&data).unwrap_or(Value::Null),
                        attempts: r.get(5)?,
                        max_attempts: r.get(6)?,
                        backoff_ms: r.get::<_, i64>(7)?.max(0) as u64,
                    })
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            for d in &out {
                tx.prepare_cached("UPDATE integrator_queue SET state = 'leased' WHERE id = ?1")?
                    .execute(params![d.id])?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn ack(&self, id: i64) -> Result<(), DataError> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM integrator_queue WHERE id = ?1")?
                .execute(params![id])?;
            Ok(())
        })
    }

    fn nack(&self, id: i64, error: &str, next_at: Option<i64>) -> Result<(), DataError> {
        self.with(|c| {
            match next_at {
                Some(t) => c.execute(
                    "UPDATE integrator_queue SET state = 'ready', attempts = attempts + 1,
                     last_error = ?2, next_at = ?3 WHERE id = ?1",
                    params![id, error, t],
                )?,
                None => c.execute(
                    "UPDATE integrator_queue SET state = 'dlq', attempts = attempts + 1,
                     last_error = ?2 WHERE id = ?1",
                    params![id, error],
                )?,
            };
            Ok(())
        })
    }

    fn release(&self, id: i64, next_at: i64) -> Result<(), DataError> {
        self.with(|c| {
            c.execute(
                "UPDATE integrator_queue SET state = 'ready', next_at = ?2 WHERE id = ?1",
                params![id, next_at],
            )?;
            Ok(())
        })
    }

    fn recover(&self) -> Result<usize, DataError> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE integrator_queue SET state = 'ready' WHERE state = 'leased'",
                [],
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Data) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Store::open(dir.path()).expect("store");
        s.migrate_component("integrator", crate::registry::SCHEMA)
            .expect("schema");
        let d = Data::open(dir.path()).expect("data");
        (dir, d)
    }

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
        assert!(!data.lock_release("l", "a").expect("release"));
        assert!(data.lock_release("l", "b").expect("release"));
        assert!(data.lock_acquire("l", "a", 1000, 1700).expect("lock"));
    }

    #[test]
    fn queue_depth_retry_dlq_expiry_recover() {
        let (_d, data) = open();
        let route = Route {
            topic: "t".into(),
            subscriber: "s".into(),
            max_depth: 2,
            expiry_ms: Some(10_000),
            max_attempts: 2,
            backoff_ms: 100,
        };
        let routes = [route];
        data.publish(&routes, &json!(1), 0).expect("pub");
        data.publish(&routes, &json!(2), 0).expect("pub");
        assert!(matches!(
            data.publish(&routes, &json!(3), 0),
            Err(DataError::Full { .. })
        ));
        let got = data.take_due(0, 10).expect("take");
        assert_eq!(got.len(), 2);
        assert!(
            data.take_due(0, 10).expect("take").is_empty(),
            "leased twice"
        );
        data.ack(got[0].id).expect("ack");
        data.nack(got[1].id, "boom", Some(100)).expect("nack");
        assert!(data.take_due(99, 10).expect("take").is_empty());
        let again = data.take_due(100, 10).expect("take");
        assert_eq!(again[0].attempts, 1);
        data.nack(again[0].id, "boom", None).expect("dlq");
        let stats = data.queue_stats().expect("stats");
        assert_eq!((stats[0].ready, stats[0].dead), (0, 1));
        data.publish(&routes, &json!(4), 0).expect("pub");
        let leased = data.take_due(0, 10).expect("take");
        assert_eq!(leased.len(), 1);
        assert_eq!(data.recover().expect("recover"), 1);
        assert!(
            data.take_due(20_000, 10).expect("take").is_empty(),
            "expired one delivered"
        );
        assert_eq!(data.queue_stats().expect("stats")[0].dead, 2);
        assert_eq!(data.purge("t", None, true).expect("purge"), 2);
    }
}
