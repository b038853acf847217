//! `[ssh]`: maintenance SSH (the ssh service owns it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[ssh]`: maintenance SSH. Key-only unless `password_auth` is turned on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Ssh {
    /// Port; left out: 22 on a node, 2222 with `--dev`.
    pub port: Option<u16>,
    pub password_auth: bool,
    /// An interactive admin prompt when no command is given.
    pub allow_shell: bool,
    /// OpenSSH public key lines per node user:
    /// `admin = ["ssh-ed25519 AAAA... me@laptop"]`.
    pub authorized_keys: BTreeMap<String, Vec<String>>,
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh {
            port: None,
            password_auth: false,
            allow_shell: true,
            authorized_keys: BTreeMap::new(),
        }
    }
}

/// Key types the ssh service accepts.
pub const SSH_KEY_TYPES: [&str; 6] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
];

/// Checks the shape of one `authorized_keys` line: a known type and a
/// base64 blob. The ssh service does the full parse when it loads keys.
pub fn check_ssh_key(line: &str) -> Result<(), String> {
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("not an OpenSSH public key line (\"ssh-ed25519 AAAA... comment\")".into());
    };
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(format!(
            "{kind:?} is not a supported key type ({})",
            SSH_KEY_TYPES.join(", ")
        ));
    }
    let base64 = blob
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !base64 || blob.len() % 4 != 0 || blob.len() < 24 {
        return Err("the key data is not base64".into());
    }
    Ok(())
}

impl Ssh {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        check::port(out, &path.key("port"), self.port);
        let keys = path.key("authorized_keys");
        for (user, lines) in &self.authorized_keys {
            let at = keys.key(user);
            if crate::users::check_name(user).is_err() {
                check::push(out, &at, format!("{user:?} is not a user name"));
            }
            for (i, line) in lines.iter().enumerate() {
                if let Err(e) = check_ssh_key(line) {
                    check::push(out, &at.index(i), e);
                }
            }
        }
    }
}
