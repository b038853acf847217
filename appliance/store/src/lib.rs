//! The node's single source of truth: the typed configuration document and
//! its revisions, users, secrets and the audit log, kept in one SQLite file
//! (`<state>/alpharen.db`, WAL, `synchronous=FULL`).
//!
//! This crate parses and validates configuration and persists it; it never
//! starts processes, opens sockets or applies configuration to the system.
//! Only the supervisor writes through it; services open it to read their
//! section.

pub mod backup;
pub mod config;
mod db;
pub mod diff;
mod error;
mod revisions;
mod secrets;
mod service_db;
mod users;

pub use backup::Backup;
pub use config::{Config, Problem, Section};
pub use db::Store;
pub use diff::Change;
pub use error::StoreError;
pub use revisions::{ApplyOutcome, Pending, Revision, RevisionMeta, Write};
pub use secrets::uuid4;
pub use service_db::open_service_db;
pub use users::{Role, User};

/// Seconds since the Unix epoch; revisions and deadlines use wall time so
/// they survive restarts.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
