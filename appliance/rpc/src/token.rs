//! The services' token. Under privilege separation the supervisor makes
//! one per boot and hands it to every service in [`TOKEN_ENV`]; on every
//! socket of the node a peer that is not root must present it with each
//! request. A process that merely shares a service's user — a Python
//! worker, started with a clean environment and unable to read its
//! non-dumpable parent's memory — so gets no say on the control socket.
//!
//! Where nothing set a token (the supervisor runs unprivileged and every
//! service as its user), sockets fall back to root, the same user and the
//! `alpharen` group.

use std::sync::OnceLock;

/// The environment variable a service finds its token in.
pub const TOKEN_ENV: &str = "ALPHAREN_RPC_TOKEN";

static TOKEN: OnceLock<Option<String>> = OnceLock::new();

/// This process's token: the one [`set`] gave, else the one in the
/// environment at the first use.
pub fn get() -> Option<&'static str> {
    TOKEN
        .get_or_init(|| std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()))
        .as_deref()
}

/// Makes a new token this process's (the supervisor, before it serves or
/// spawns anything); returns it, or `None` when one was already in use.
pub fn set_new() -> Option<&'static str> {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    TOKEN.set(Some(token)).ok()?;
    get()
}

/// Whether `presented` is this process's token; compared in constant
/// time, so a wrong guess says nothing of how close it came.
pub(crate) fn matches(expected: &str, presented: Option<&str>) -> bool {
    let Some(p) = presented else { return false };
    if p.len() != expected.len() {
        return false;
    }
    p.bytes()
        .zip(expected.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        assert!(matches("abcd", Some("abcd")));
        assert!(!matches("abcd", Some("abce")));
        assert!(!matches("abcd", Some("abc")));
        assert!(!matches("abcd", None));
    }
}
