//! `users.authenticate`: every door that checks a node user's password
//! (web login, SMTP AUTH, ssh) asks the supervisor, which keeps the one
//! login limiter they share and verifies the argon2 hash.
//!
//! Params `{username, password, client, service}` (`client` is the peer's
//! IP address or null); result `{user, role}`; errors `bad_credentials`,
//! or `rate_limited` with `details.retry_after` in seconds.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::protocol::RpcError;

pub const METHOD: &str = "users.authenticate";
/// Argon2 takes a fraction of a second; a busy supervisor gets some slack.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthParams {
    pub username: String,
    pub password: String,
    pub client: Option<IpAddr>,
    /// The door (`web`, `smtp`, `ssh`), for the supervisor's log.
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthOk {
    pub user: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok(AuthOk),
    /// Wrong user name or password (not told apart).
    Refused,
    /// Too many failures for this user or client network.
    RateLimited {
        retry_after: u64,
    },
    /// The supervisor could not answer; the door refuses the login.
    Unavailable(String),
}

impl AuthOutcome {
    /// The decision for an error answer of `users.authenticate`.
    pub fn from_error(e: &RpcError) -> AuthOutcome {
        match e.code.as_str() {
            "bad_credentials" => AuthOutcome::Refused,
            "rate_limited" => AuthOutcome::RateLimited {
                retry_after: e.details["retry_after"].as_u64().unwrap_or(60),
            },
            _ => AuthOutcome::Unavailable(e.message.clone()),
        }
    }
}

/// The error `users.authenticate` answers for a locked-out caller.
pub fn rate_limited(retry_after: Duration) -> RpcError {
    let secs = retry_after.as_secs() + 1;
    RpcError::new(
        "rate_limited",
        format!("too many failed logins; try again in {secs} s"),
    )
    .with_details(json!({ "retry_after": secs }))
}

/// Asks the supervisor at `<state>/run/control.sock`.
pub async fn authenticate(state_dir: &Path, params: &AuthParams) -> AuthOutcome {
    let socket = crate::control_socket(state_dir);
    let value = match serde_json::to_value(params) {
        Ok(v) => v,
        Err(e) => return AuthOutcome::Unavailable(e.to_string()),
    };
    match crate::call(&socket, METHOD, value, TIMEOUT).await {
        Ok(v) => match serde_json::from_value(v) {
            Ok(ok) => AuthOutcome::Ok(ok),
            Err(e) => AuthOutcome::Unavailable(format!("bad answer: {e}")),
        },
        Err(e) => AuthOutcome::from_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_outcomes() {
        let limited = rate_limited(Duration::from_millis(41_500));
        assert_eq!(
            AuthOutcome::from_error(&limited),
            AuthOutcome::RateLimited { retry_after: 42 }
        );
        let bad = RpcError::new("bad_credentials", "no");
        assert_eq!(AuthOutcome::from_error(&bad), AuthOutcome::Refused);
        let other = RpcError::new("unavailable", "down");
        assert!(matches!(
            AuthOutcome::from_error(&other),
            AuthOutcome::Unavailable(_)
        ));
    }
}
