//! `users.*`: the node's users (console, API and ssh logins). Changes take
//! an optional `author`, as in [`crate::config`]. `users.list` takes no
//! params and answers `alpharen_store::User`s; `users.authenticate` is
//! [`crate::auth`].

use serde::{Deserialize, Serialize};

pub use crate::auth::METHOD as AUTHENTICATE;

pub const LIST: &str = "users.list";
pub const ADD: &str = "users.add";
pub const PASSWD: &str = "users.passwd";
pub const DEL: &str = "users.del";

/// The role a user gets unless told otherwise.
pub const DEFAULT_ROLE: &str = "viewer";

fn viewer() -> String {
    DEFAULT_ROLE.into()
}

/// `users.add`: answers the new user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Add {
    pub name: String,
    pub password: String,
    /// `admin`, `operator` or `viewer` (the default).
    #[serde(default = "viewer")]
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// `users.passwd`: answers [`Changed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passwd {
    pub name: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// What `users.passwd` answers: whose password changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub changed: String,
}

/// `users.del` (never the last admin): answers [`Deleted`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Del {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// What `users.del` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn role_defaults_to_viewer() {
        let a: Add = serde_json::from_value(json!({"name": "bob", "password": "x"})).unwrap();
        assert_eq!(a.role, "viewer");
        assert_eq!(
            crate::to_params(&a),
            json!({"name": "bob", "password": "x", "role": "viewer"})
        );
    }
}
