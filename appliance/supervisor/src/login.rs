//! `users.authenticate`: the one place a node user's password is checked
//! for every door (web login, SMTP AUTH, ssh), behind the one login
//! limiter they share, so failures at one door count at all of them.
//!
//! At most `PARALLEL` argon2 checks run at once. A caller waits for a slot
//! before the limiter is asked, so parallel guesses cannot all pass the
//! check before any of them is recorded, and a flood of logins cannot take
//! every CPU.

use std::time::Instant;

use alpharen_rpc::RpcError;
use alpharen_rpc::auth::{self, AuthOk, AuthParams};
use alpharen_store::limiter::LoginLimiter;
use tokio::sync::Semaphore;

use crate::methods::with_store;
use crate::state::NodeState;

/// Password checks running at once.
const PARALLEL: usize = 2;

pub(crate) struct Logins {
    limiter: std::sync::Mutex<LoginLimiter>,
    slots: Semaphore,
}

impl Default for Logins {
    fn default() -> Logins {
        Logins {
            limiter: std::sync::Mutex::new(LoginLimiter::default()),
            slots: Semaphore::new(PARALLEL),
        }
    }
}

fn poisoned() -> RpcError {
    RpcError::new("internal_error", "login limiter lock poisoned")
}

fn refusal(what: &str, p: &AuthParams) -> String {
    let client = p
        .client
        .map_or_else(|| "local".to_string(), |c| c.to_string());
    format!(
        "login {what}: user={:?} client={client} service={}",
        p.username, p.service
    )
}

pub(crate) async fn authenticate(node: &NodeState, mut p: AuthParams) -> Result<AuthOk, RpcError> {
    let logins = &node.logins;
    let _slot = logins
        .slots
        .acquire()
        .await
        .map_err(|_| RpcError::new("unavailable", "the supervisor is stopping"))?;
    let checked =
        logins
            .limiter
            .lock()
            .map_err(|_| poisoned())?
            .check(&p.username, p.client, Instant::now());
    if let Err(wait) = checked {
        node.logs.event(&refusal("refused (rate limited)", &p));
        return Err(auth::rate_limited(wait));
    }
    // The hash is read under the store lock; the slow check runs without it.
    let cred = with_store(node, |s| s.credential(&p.username))?;
    let password = std::mem::take(&mut p.password);
    let user =
        tokio::task::spawn_blocking(move || alpharen_store::verify(cred.as_ref(), &password))
            .await
            .map_err(|e| RpcError::new("internal_error", format!("password check failed: {e}")))?
            .map_err(crate::methods::store_err)?;
    logins.limiter.lock().map_err(|_| poisoned())?.record(
        &p.username,
        p.client,
        user.is_some(),
        Instant::now(),
    );
    match user {
        Some(u) => Ok(AuthOk {
            user: u.name,
            role: u.role.as_str().into(),
        }),
        None => {
            node.logs.event(&refusal("failed", &p));
            Err(RpcError::new(
                "bad_credentials",
                "wrong user name or password",
            ))
        }
    }
}
