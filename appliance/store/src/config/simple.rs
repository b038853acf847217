//! Small sections: `web` and `ssh` (their services own them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[web]`: the HTTPS front. Ports left out take the mode's default
/// (443/80 on a node, 8443/8080 with `--dev`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Web {
    pub https_port: Option<u16>,
    pub http_port: Option<u16>,
    /// Serve the plain-HTTP redirect to HTTPS.
    pub http_redirect: bool,
    /// PEM certificate chain of the operator's own certificate (absolute
    /// path); without it a self-signed one in `<state>/tls/` is used.
    pub cert: Option<String>,
    /// PEM private key matching `cert`.
    pub key: Option<String>,
    /// Minutes a console session lives without use.
    pub session_idle_minutes: u32,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            https_port: None,
            http_port: None,
            http_redirect: true,
            cert: None,
            key: None,
            session_idle_minutes: 60,
        }
    }
}

impl Web {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        for (key, port) in [
            ("https_port", self.https_port),
            ("http_port", self.http_port),
        ] {
            if port == Some(0) {
                check::push(out, &path.key(key), "must be a port number from 1 to 65535");
            }
        }
        if self.https_port.is_some() && self.https_port == self.http_port {
            check::push(
                out,
                &path.key("http_port"),
                "must differ from web.https_port",
            );
        }
        for (key, value) in [("cert", &self.cert), ("key", &self.key)] {
            if let Some(v) = value
                && !v.starts_with('/')
            {
                check::push(
                    out,
                    &path.key(key),
                    format!("{v:?} must be an absolute path"),
                );
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => check::push(out, &path.key("key"), "is needed when web.cert is set"),
            (None, Some(_)) => check::push(out, &path.key("cert"), "is needed when web.key is set"),
            _ => {}
        }
        if !(5..=7 * 24 * 60).contains(&self.session_idle_minutes) {
            check::push(
                out,
                &path.key("session_idle_minutes"),
                "must be between 5 and 10080 (one week)",
            );
        }
    }
}

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
        if self.port == Some(0) {
            check::push(
                out,
                &path.key("port"),
                "must be a port number from 1 to 65535",
            );
        }
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
