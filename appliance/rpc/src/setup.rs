//! `setup.*`: first-boot setup, which creates the admin user and the
//! first configured revision. `setup.status` takes no params and answers
//! [`Status`]; `setup.complete` takes [`Setup`] and answers as a config
//! change does (see [`crate::config`]).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const STATUS: &str = "setup.status";
pub const COMPLETE: &str = "setup.complete";

/// What `setup.status` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// No admin user exists yet.
    pub required: bool,
    /// While setup is required: the file the setup code is in on this
    /// node (`/data/setup-code` on an image), so the wizard names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_file: Option<String>,
}

/// `setup.complete`'s params. Errors: `wrong_setup_code`, `setup_done`,
/// `rate_limited` (`details.retry_after`), `invalid_config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// The one-time code from the node's console or `<state>/setup-code`.
    pub code: String,
    pub admin_password: String,
    pub hostname: String,
    /// The `network` section, replacing the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The `mail` section, replacing the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<Value>,
    /// The admin's ssh keys.
    #[serde(default)]
    pub ssh_authorized_keys: Vec<String>,
    /// The caller's address (the web passes its client's): wrong codes
    /// lock out only that client's network; `None` for local callers.
    #[serde(default)]
    pub client: Option<IpAddr>,
}
