//! `backup.*`: one file with configuration, users and secrets.
//! `backup.create` takes no params and answers the backup (JSON);
//! `backup.restore` takes [`Restore`] and answers as a config change does
//! (see [`crate::config`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const CREATE: &str = "backup.create";
pub const RESTORE: &str = "backup.restore";

/// `backup.restore`: checked completely before anything changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    /// What `backup.create` answered.
    pub backup: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}
