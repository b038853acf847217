//! The node's single source of truth: the typed configuration document and
//! its revisions, users, secrets and the audit log, kept in one SQLite file
//! (`<state>/alpharen.db`, WAL, `synchronous=FULL`).
//!
//! This crate parses and validates configuration and persists it; it never
//! starts processes, opens sockets or applies configuration to the system.
//! Only the supervisor opens it; services get a [`View`] of it over the
//! control socket and keep their own tables in `<state>/<service>.db`. It also holds the decision logic of the login limiter
//! (`limiter`), which the supervisor keeps for every door that checks a
//! node user's password.

pub mod backup;
pub mod config;
mod db;
pub mod diff;
mod error;
pub mod host;
pub mod limiter;
mod revisions;
pub mod schema;
mod secrets;
mod service_db;
pub mod shared;
mod users;
mod view;

pub use backup::Backup;
pub use config::{Config, Problem, Section};
pub use db::Store;
pub use diff::Change;
pub use error::StoreError;
pub use revisions::{ApplyOutcome, Pending, Revision, RevisionMeta, Write};
pub use schema::{CONFIG_SCHEMA, Schema};
pub use secrets::{uuid_text, uuid4};
pub use service_db::open_service_db;
pub use users::{Credential, Role, User, verify};
pub use view::View;

/// Seconds since the Unix epoch; revisions and deadlines use wall time so
/// they survive restarts.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
