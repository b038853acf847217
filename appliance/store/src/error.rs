use crate::config::Problem;

/// Everything the store can refuse or fail at. `code()` is the stable string
/// the control socket and the API hand to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the configuration is invalid:\n{}", crate::config::render_problems(.0))]
    Invalid(Vec<Problem>),
    #[error("revision {0} does not exist (see `config history`)")]
    NoRevision(i64),
    #[error("no configuration has been applied yet")]
    Empty,
    #[error("nothing is waiting for confirmation")]
    NothingPending,
    #[error("user {0:?} does not exist")]
    NoUser(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("{0}")]
    BadUser(String),
    #[error("the backup cannot be restored: {0}")]
    BadBackup(String),
    #[error("cannot use state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{field} refers to the secret {name:?}, which is not in the secret store")]
    MissingSecret { field: String, name: String },
    #[error(
        "the configuration changed meanwhile: you expected revision {expected}, the current one is {current}; read it again and retry"
    )]
    Conflict { expected: i64, current: i64 },
    #[error("revision {named} is not waiting for confirmation{}", match .pending { Some(p) => format!(" (revision {p} is)"), None => " (nothing is)".to_string() })]
    NotPending { named: i64, pending: Option<i64> },
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error(
        "{path} was written by a newer firmware (schema: {found}; this firmware reads up to {known}); it is not read rather than misread. Boot the slot that wrote it, or restore a backup"
    )]
    NewerSchema {
        path: String,
        found: crate::schema::Schema,
        known: crate::schema::Schema,
    },
    /// A change of the cluster-wide part (`[integrator]`, `[pgha]`) that the
    /// cluster's configuration log did not take; nothing was changed.
    #[error("{0}")]
    ClusterUnavailable(String),
    #[error(
        "the cluster's [integrator] or [pgha] section changed meanwhile on another member (or this member has not applied it yet); nothing was changed: this member applies it within a second or two, then read it again and retry"
    )]
    ClusterBehind,
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Invalid(_) => "invalid_config",
            StoreError::NoRevision(_) => "no_such_revision",
            StoreError::Empty => "no_config",
            StoreError::NothingPending => "nothing_pending",
            StoreError::NoUser(_) => "no_such_user",
            StoreError::UserExists(_) => "user_exists",
            StoreError::BadUser(_) => "invalid_user",
            StoreError::BadBackup(_) => "invalid_backup",
            StoreError::StateDir { .. } => "state_dir",
            StoreError::Db { .. } => "database",
            StoreError::MissingSecret { .. } => "missing_secret",
            StoreError::Conflict { .. } => "conflict",
            StoreError::NotPending { .. } => "not_pending",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::NewerSchema { .. } => "newer_schema",
            StoreError::ClusterUnavailable(_) => "unavailable",
            StoreError::ClusterBehind => "conflict",
        }
    }
}

impl StoreError {
    /// The mapping of SQLite's errors on the database file at `path` to
    /// an error that names it.
    pub(crate) fn db_at(
        path: &std::path::Path,
    ) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
        move |source| StoreError::Db {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Database errors inside the store; the file is always `<state>/alpharen.db`.
impl From<rusqlite::Error> for StoreError {
    fn from(source: rusqlite::Error) -> Self {
        StoreError::Db {
            path: "alpharen.db".into(),
            source,
        }
    }
}
