//! Durable state of the async features in SQLite: the KV store (ARKVD),
//! the pub/sub and `invoke_async` queues (ARPuSuB), locks and the
//! scheduler's job table, with the deployed service versions
//! (`registry.rs`), in the integrator's own `<state>/integrator.db` (so
//! this traffic never waits on the config store's write lock), with
//! `synchronous = FULL`: a KV write or a publish is acknowledged only after
//! its commit is fsynced to the write-ahead log, so neither a crash nor a
//! power cut loses what a caller was told is stored.
//!
//! One file per feature: `kv.rs` (with `redis.rs`, the Redis data types
//! of `self.kvdb.conn` on the same rows), `locks.rs`, `queues.rs` (with the
//! `Broker` trait delivery uses) and `jobs.rs`; this file opens the
//! connection and holds the schema and the error type. In a cluster the
//! KV, the queues (`cluster_queues.rs`) and the locks are the cluster's
//! JetStream buckets and streams instead (`cluster.rs` holds the link);
//! the job table stays per node (a fire is claimed in the cluster).

mod cluster;
mod cluster_queues;
mod jobs;
mod kv;
mod locks;
mod queues;
mod redis;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, params};

pub use jobs::JobRow;
pub use kv::KvValue;
pub use queues::{Broker, Delivery, QueueStat, Route};

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
    #[error("{0}")]
    Cluster(String),
    /// A `self.kvdb.conn` command refused (wrong type, bad arguments).
    #[error("{message}")]
    Command { code: &'static str, message: String },
}

impl From<alpharen_cluster::Error> for DataError {
    fn from(e: alpharen_cluster::Error) -> DataError {
        DataError::Cluster(e.to_string())
    }
}

impl DataError {
    pub fn code(&self) -> &'static str {
        match self {
            DataError::Full { .. } => "queue_full",
            DataError::NotFound(_) => "not_found",
            DataError::Cluster(_) => "unavailable",
            DataError::Command { code, .. } => code,
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

pub struct Data {
    conn: Mutex<Connection>,
    /// In a cluster, the KV is the cluster's (`cluster.rs`).
    pub cluster: cluster::Link,
}

impl Data {
    pub fn open(state_dir: &Path) -> Result<Data, DataError> {
        let conn =
            alpharen_store::open_service_db(state_dir, "integrator", crate::registry::SCHEMA)?;
        Ok(Data {
            conn: Mutex::new(conn),
            cluster: cluster::Link::default(),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DataError>,
    ) -> Result<T, DataError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The deployed versions (`registry.rs`) live in the same file.
    pub fn registry<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E>) -> Result<T, E> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
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
}

/// A fresh state directory with the integrator's schema, for the tests of
/// each feature.
#[cfg(test)]
fn test_data() -> (tempfile::TempDir, Data) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = Data::open(dir.path()).expect("data");
    (dir, d)
}
