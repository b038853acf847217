//! SSH to the database hosts (russh client): host keys pinned in the store
//! on first use, password or the node's own key, one script per
//! connection (on the channel's stdin, see [`crate::shell`]) with a time
//! limit. A changed host key is an error of its
//! own so the group can stop acting on it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::ssh_key::{LineEnding, private::Ed25519Keypair};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, client};

use crate::pins::Pins;
use crate::shell;

/// Longest a connection and key exchange may take, whatever the
/// command's own limit: an unreachable host is known quickly.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// Secret holding the node's SSH client key (OpenSSH PEM), used for hosts
/// configured without `ssh_pwd`.
pub const CLIENT_KEY_SECRET: &str = "pgha.ssh_client_key";

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "{host}: host key changed (pinned {pinned}, offered {offered}); check the host, then `alpharen ctl pgha unpin {host}` and `alpharen ctl restart pgha`"
    )]
    KeyChanged {
        host: String,
        pinned: String,
        offered: String,
    },
    #[error("{host}: {what}")]
    Failed { host: String, what: String },
    #[error("{host}: no answer within {secs} s")]
    Timeout { host: String, secs: u64 },
}

/// Where and how to log in.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
}

impl Target {
    pub fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: u32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The command's last output lines, for logs and notifications.
    pub fn tail(&self) -> String {
        let text = format!("{}{}", self.stdout, self.stderr);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

struct Pinning {
    host: String,
    pinned: Option<String>,
    offered: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Pinning {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, Self::Error> {
        let offered = key.to_openssh().unwrap_or_default();
        let ok = self.pinned.as_ref().is_none_or(|p| *p == offered);
        if !ok {
            tracing::error!(host = %self.host, "SSH host key differs from the pinned one");
        }
        if let Ok(mut slot) = self.offered.lock() {
            *slot = Some(offered);
        }
        Ok(ok)
    }
}

/// The SSH side of the controller: shared by all groups.
pub struct Remote {
    pins: Pins,
    key: Arc<PrivateKey>,
}

impl Remote {
    pub fn new(pins: Pins, key: PrivateKey) -> Remote {
        Remote {
            pins,
            key: Arc::new(key),
        }
    }

    /// Runs `script` with `sh`, which reads it from stdin (see
    /// [`crate::shell`]: neither the script nor its passwords are ever a
    /// process argument on the host); `limit` covers connecting, logging
    /// in and the script.
    pub async fn run(
        &self,
        to: &Target,
        script: &str,
        limit: Duration,
    ) -> Result<Output, RemoteError> {
        let host = to.name();
        match tokio::time::timeout(limit, self.session(to, Some(script))).await {
            Ok(r) => r.and_then(|o| o.ok_or_else(|| fail(&host, "no command output"))),
            Err(_) => Err(RemoteError::Timeout {
                host,
                secs: limit.as_secs(),
            }),
        }
    }

    /// Logs in and out: the host answers and its key is the pinned one.
    pub async fn probe(&self, to: &Target, limit: Duration) -> Result<(), RemoteError> {
        match tokio::time::timeout(limit, self.session(to, None)).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(RemoteError::Timeout {
                host: to.name(),
                secs: limit.as_secs(),
            }),
        }
    }

    async fn session(
        &self,
        to: &Target,
        script: Option<&str>,
    ) -> Result<Option<Output>, RemoteError> {
        let host = to.name();
        let pinned = self.pins.get(&host);
        let offered = Arc::new(Mutex::new(None));
        let handler = Pinning {
            host: host.clone(),
            pinned: pinned.clone(),
            offered: offered.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(600)),
            ..Default::default()
        });
        let connected = tokio::time::timeout(
            CONNECT_LIMIT,
            client::connect(config, (to.host.as_str(), to.port), handler),
        )
        .await
        .unwrap_or(Err(russh::Error::ConnectionTimeout));
        let seen = offered.lock().ok().and_then(|s| s.clone());
        if let (Some(p), Some(o)) = (&pinned, &seen)
            && p != o
        {
            return Err(RemoteError::KeyChanged {
                host,
                pinned: short(p),
                offered: short(o),
            });
        }
        let mut handle = connected.map_err(|e| fail(&host, &format!("connect: {e}")))?;
        if pinned.is_none()
            && let Some(o) = &seen
        {
            self.pins.pin(&host, o);
            tracing::info!(host = %host, key = %short(o), "pinned the SSH host key on first use");
        }
        let auth = match &to.password {
            Some(p) => handle.authenticate_password(&to.user, p).await,
            None => {
                let hash = handle
                    .best_supported_rsa_hash()
                    .await
                    .ok()
                    .flatten()
                    .flatten();
                handle
                    .authenticate_publickey(
                        &to.user,
                        PrivateKeyWithHashAlg::new(self.key.clone(), hash),
                    )
                    .await
            }
        }
        .map_err(|e| fail(&host, &format!("login: {e}")))?;
        if !auth.success() {
            return Err(fail(
                &host,
                &format!(
                    "login as {} refused (check ssh_user/ssh_pwd or the node's key)",
                    to.user
                ),
            ));
        }
        let out = match script {
            Some(text) => Some(exec(&handle, &host, text).await?),
            None => None,
        };
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok(out)
    }
}

/// `sh` reading `script` from the channel's stdin, until it exits.
async fn exec(
    handle: &client::Handle<Pinning>,
    host: &str,
    script: &str,
) -> Result<Output, RemoteError> {
    let mut ch = handle
        .channel_open_session()
        .await
        .map_err(|e| fail(host, &format!("open channel: {e}")))?;
    ch.exec(true, shell::runner())
        .await
        .map_err(|e| fail(host, &format!("exec: {e}")))?;
    ch.data(script.as_bytes())
        .await
        .map_err(|e| fail(host, &format!("send the script: {e}")))?;
    ch.eof()
        .await
        .map_err(|e| fail(host, &format!("send the script: {e}")))?;
    let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            _ => {}
        }
    }
    Ok(Output {
        status: status.ok_or_else(|| fail(host, "the script ended without an exit status"))?,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

fn fail(host: &str, what: &str) -> RemoteError {
    RemoteError::Failed {
        host: host.to_string(),
        what: what.to_string(),
    }
}

/// `type AAAA…last8` of an OpenSSH key line, enough to compare by eye.
fn short(key: &str) -> String {
    let mut parts = key.split_whitespace();
    let kind = parts.next().unwrap_or_default();
    let blob = parts.next().unwrap_or_default();
    format!("{kind} …{}", &blob[blob.len().saturating_sub(12)..])
}

/// The node's client key from the view; made on first use and kept by
/// the supervisor.
pub async fn client_key(
    state_dir: &std::path::Path,
    view: &alpharen_store::View,
) -> Result<PrivateKey, crate::Error> {
    let bad = |e: russh::keys::ssh_key::Error| crate::Error::Key(e.to_string());
    if let Some(text) = view.secret(CLIENT_KEY_SECRET) {
        return PrivateKey::from_openssh(text).map_err(bad);
    }
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key.to_openssh(LineEnding::LF).map_err(bad)?;
    let kept = alpharen_rpc::view::keep_secret(state_dir, "pgha", CLIENT_KEY_SECRET, &text).await?;
    PrivateKey::from_openssh(kept).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_key_shows_type_and_tail() {
        assert_eq!(
            short("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIabcdefghijkl me"),
            "ssh-ed25519 …abcdefghijkl"
        );
    }
}
