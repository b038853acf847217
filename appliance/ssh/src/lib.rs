//! Maintenance SSH: an authenticated admin lands in the same CLI as
//! `alpharen ctl`. `ssh admin@node status` runs `alpharen ctl status`
//! (this very binary, as a child) and pipes its stdout, stderr and exit code
//! into the channel; without a command there is a small line-edited prompt.
//!
//! Host key: ed25519, made at first start in `<state>/ssh/`, kept. Users:
//! node users with the admin role, by public key from
//! `ssh.authorized_keys` (password only if `ssh.password_auth`; only the
//! enabled methods are advertised, see [`policy`]). Failed logins are
//! limited per client network ([`limit`]); logged commands never show a
//! secret ([`redact`]). No forwarding of any kind, no agent, no X11. It
//! reads the store, writes nothing but its host key, and depends on no
//! other service's crate.

mod cli;
mod limit;
mod line;
mod policy;
mod redact;

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use alpharen_store::config::Ssh;
use alpharen_store::{Role, User, View};
use russh::keys::ssh_key::{LineEnding, private::Ed25519Keypair};
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, Msg, Server as _, Session};
use russh::{Channel, ChannelId, CryptoVec};
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

pub use line::{Action, LineEditor, split_command};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration from the supervisor: {0}")]
    View(#[from] alpharen_rpc::RpcError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("host key {0}: {1}")]
    HostKey(String, String),
}

/// The host key in `<state>/ssh/host_ed25519`, made on first start.
pub fn host_key(state_dir: &Path) -> Result<PrivateKey, Error> {
    let dir = state_dir.join("ssh");
    let path = dir.join("host_ed25519");
    let shown = path.display().to_string();
    if let Ok(text) = std::fs::read_to_string(&path) {
        return PrivateKey::from_openssh(text).map_err(|e| Error::HostKey(shown, e.to_string()));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.display().to_string(), e))?;
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::HostKey(shown.clone(), e.to_string()))?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| Error::Io(shown.clone(), e))?;
    if let Ok(public) = key.public_key().to_openssh() {
        let _ = std::fs::write(dir.join("host_ed25519.pub"), format!("{public}\n"));
    }
    tracing::info!(path = %shown, "made the SSH host key");
    Ok(key)
}

/// Whether `offered` is one of the user's authorized key lines.
pub fn key_allowed(lines: &[String], offered: &PublicKey) -> bool {
    lines.iter().any(|l| {
        PublicKey::from_openssh(l.trim()).is_ok_and(|k| k.key_data() == offered.key_data())
    })
}

struct Shared {
    state_dir: PathBuf,
    exe: PathBuf,
    config: RwLock<Ssh>,
    failures: Mutex<limit::FailureLimit>,
}

impl Shared {
    fn ssh(&self) -> Ssh {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Whether `ip` has failed too often to try again now.
    fn blocked(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| {
            self.failures
                .lock()
                .is_ok_and(|f| f.blocked(ip, Instant::now()))
        })
    }

    /// Counts a login's outcome for its client network.
    fn login_result(&self, ip: Option<IpAddr>, ok: bool) {
        if let (Some(ip), Ok(mut f)) = (ip, self.failures.lock()) {
            if ok {
                f.succeeded(ip);
            } else {
                f.failed(ip, Instant::now());
            }
        }
    }

    /// Only admins get the CLI: it acts with the supervisor's full rights.
    async fn is_admin(&self, user: &str) -> bool {
        let socket = alpharen_rpc::control_socket(&self.state_dir);
        let users = alpharen_rpc::call(
            &socket,
            alpharen_rpc::users::LIST,
            json!({}),
            Duration::from_secs(10),
        )
        .await
        .ok()
        .and_then(|v| serde_json::from_value::<Vec<User>>(v).ok())
        .unwrap_or_default();
        users
            .iter()
            .any(|u| u.name == user && u.role == Role::Admin)
    }
}

#[derive(Clone)]
struct Server {
    shared: Arc<Shared>,
}

impl russh::server::Server for Server {
    type Handler = Conn;
    fn new_client(&mut self, peer: Option<std::net::SocketAddr>) -> Conn {
        Conn {
            shared: self.shared.clone(),
            peer: peer.map_or_else(|| "?".into(), |p| p.to_string()),
            ip: peer.map(|p| p.ip()),
            user: String::new(),
            channels: HashMap::new(),
        }
    }
}

/// Per channel: a pty, the running command's stdin, the prompt's line.
#[derive(Default)]
struct Chan {
    pty: bool,
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    shell: Option<LineEditor>,
    /// Finished prompt lines, run one after another by the shell worker
    /// (so typed-ahead lines wait their turn).
    lines: Option<mpsc::Sender<Action>>,
}

struct Conn {
    shared: Arc<Shared>,
    peer: String,
    ip: Option<IpAddr>,
    user: String,
    channels: HashMap<ChannelId, Chan>,
}

impl Conn {
    /// A refusal that names the methods enabled now (the config may have
    /// been reloaded since the server started).
    fn reject(&self) -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(policy::methods(&self.shared.ssh())),
            partial_success: false,
        }
    }

    /// Refuses a client network over its failure limit, with a log line.
    /// The public keys `ssh.authorized_keys` lists for `user`.
    fn keys_of(&self, user: &str) -> Vec<String> {
        self.shared
            .ssh()
            .authorized_keys
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    fn over_limit(&self, user: &str) -> bool {
        let blocked = self.shared.blocked(self.ip);
        if blocked {
            tracing::warn!(user, peer = %self.peer, "ssh login refused: too many failed logins from this address");
        }
        blocked
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(self.reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        key: &PublicKey,
    ) -> Result<Auth, Self::Error> {
        if self.over_limit(user) {
            return Ok(self.reject());
        }
        let keys = self.keys_of(user);
        Ok(if key_allowed(&keys, key) {
            Auth::Accept
        } else {
            self.reject()
        })
    }

    async fn auth_publickey(&mut self, user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        if self.over_limit(user) {
            return Ok(self.reject());
        }
        let keys = self.keys_of(user);
        let ok = key_allowed(&keys, key) && self.shared.is_admin(user).await;
        self.shared.login_result(self.ip, ok);
        if ok {
            tracing::info!(user, peer = %self.peer, key = %key.fingerprint(HashAlg::Sha256), "ssh login");
            self.user = user.to_string();
            return Ok(Auth::Accept);
        }
        tracing::warn!(user, peer = %self.peer, "ssh key refused");
        Ok(self.reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if !self.shared.ssh().password_auth || self.over_limit(user) {
            return Ok(self.reject());
        }
        // The supervisor checks it behind the login limiter every door shares.
        let params = alpharen_rpc::auth::AuthParams {
            username: user.to_string(),
            password: password.to_string(),
            client: self
                .peer
                .parse::<std::net::SocketAddr>()
                .ok()
                .map(|a| a.ip()),
            service: "ssh".into(),
        };
        let outcome = alpharen_rpc::auth::authenticate(&self.shared.state_dir, &params).await;
        let ok = matches!(&outcome, alpharen_rpc::auth::AuthOutcome::Ok(u) if u.role == Role::Admin.as_str());
        self.shared.login_result(self.ip, ok);
        if ok {
            tracing::info!(user, peer = %self.peer, "ssh login (password)");
            self.user = user.to_string();
            return Ok(Auth::Accept);
        }
        tracing::warn!(user, peer = %self.peer, ?outcome, "ssh password refused");
        Ok(self.reject())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        _s: &mut Session,
    ) -> Result<bool, Self::Error> {
        if self.channels.len() >= 4 {
            return Ok(false);
        }
        self.channels.insert(channel.id(), Chan::default());
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _w: u32,
        _h: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.channels.get_mut(&channel) {
            c.pty = true;
        }
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).to_string();
        let args = match split_command(&command) {
            Ok(a) => a,
            Err(e) => {
                session.channel_success(channel)?;
                cli::finish(session.handle(), channel, format!("{e}\n").into_bytes(), 2).await;
                return Ok(());
            }
        };
        session.channel_success(channel)?;
        let (tx, rx) = mpsc::channel(16);
        let pty = self.channels.get(&channel).is_some_and(|c| c.pty);
        if let Some(c) = self.channels.get_mut(&channel) {
            c.stdin = Some(tx);
        }
        tracing::info!(user = %self.user, command = %redact::loggable(&args), "ssh exec");
        let shared = self.shared.clone();
        let handle = session.handle();
        let user = self.user.clone();
        tokio::spawn(async move {
            let code = cli::run(&shared, &handle, channel, &user, args, Some(rx), pty).await;
            let _ = handle.exit_status_request(channel, code).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.shared.ssh().allow_shell {
            session.channel_failure(channel)?;
            return Ok(());
        }
        session.channel_success(channel)?;
        let (tx, rx) = mpsc::channel(64);
        if let Some(c) = self.channels.get_mut(&channel) {
            c.shell = Some(LineEditor::default());
            c.lines = Some(tx);
        }
        tokio::spawn(cli::shell_worker(
            self.shared.clone(),
            session.handle(),
            channel,
            self.user.clone(),
            rx,
        ));
        let hello = format!(
            "ALPHA-REN node shell for {}. Type `help` for commands, `exit` to leave.\r\n{}",
            self.user,
            line::PROMPT
        );
        session.data(channel, CryptoVec::from(hello))?;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(chan) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        if let Some(tx) = &chan.stdin
            && chan.shell.is_none()
        {
            let _ = tx.send(data.to_vec()).await;
            return Ok(());
        }
        let Some(editor) = chan.shell.as_mut() else {
            return Ok(());
        };
        for action in editor.feed(data) {
            match action {
                Action::Echo(bytes) => session.data(channel, CryptoVec::from(bytes))?,
                other => {
                    if let Some(tx) = &chan.lines
                        && tx.try_send(other).is_err()
                    {
                        session
                            .data(channel, CryptoVec::from(&b"(busy: input dropped)\r\n"[..]))?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _s: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.channels.get_mut(&channel) {
            c.stdin = None;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _s: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}

fn port(ssh: &Ssh, dev: bool) -> (std::net::IpAddr, u16) {
    let ip = if dev {
        std::net::Ipv4Addr::LOCALHOST.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    (ip, ssh.port.unwrap_or(if dev { 2222 } else { 22 }))
}

pub fn serve(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("tokio runtime".into(), e))?;
    rt.block_on(run_server(state_dir, dev))
}

async fn run_server(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let key = host_key(state_dir)?;
    tracing::info!(fingerprint = %key.public_key().fingerprint(HashAlg::Sha256), "SSH host key");
    let exe = std::env::current_exe().map_err(|e| Error::Io("current executable".into(), e))?;
    let ssh = alpharen_rpc::view::view::<View>(state_dir, "ssh")
        .await?
        .config
        .ssh;
    let shared = Arc::new(Shared {
        state_dir: state_dir.to_path_buf(),
        exe,
        config: RwLock::new(ssh.clone()),
        failures: Mutex::new(limit::FailureLimit::default()),
    });
    let config = Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-alpharen".into()),
        methods: policy::methods(&ssh),
        preferred: policy::algorithms(),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::from_millis(0)),
        max_auth_attempts: 6,
        inactivity_timeout: Some(Duration::from_secs(1800)),
        keepalive_interval: Some(Duration::from_secs(60)),
        keys: vec![key],
        nodelay: true,
        ..Default::default()
    });
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Io("SIGTERM".into(), e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::Io("SIGHUP".into(), e))?;
    let mut addr = port(&ssh, dev);
    let mut announced = false;
    loop {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Io(format!("listen on {}:{}", addr.0, addr.1), e))?;
        tracing::info!(addr = %format!("{}:{}", addr.0, addr.1), "SSH listening");
        let mut server = Server {
            shared: shared.clone(),
        };
        let running = server.run_on_socket(config.clone(), &listener);
        let stop = running.handle();
        if !announced {
            alpharen_rpc::view::ready(state_dir, "ssh").await;
            announced = true;
        }
        tokio::pin!(running);
        loop {
            tokio::select! {
                r = &mut running => {
                    if let Err(e) = r {
                        tracing::error!(error = %e, "SSH server stopped");
                    }
                    return Ok(());
                }
                _ = term.recv() => {
                    stop.shutdown("the node's SSH service is stopping".into());
                    return Ok(());
                }
                _ = hup.recv() => {
                    match alpharen_rpc::view::view::<View>(state_dir, "ssh").await.map(|v| v.config) {
                        Ok(c) => {
                            let new = port(&c.ssh, dev);
                            if let Ok(mut g) = shared.config.write() {
                                *g = c.ssh;
                            }
                            tracing::info!("reloaded [ssh]");
                            if new != addr {
                                addr = new;
                                stop.shutdown("the SSH port changed".into());
                                break;
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "cannot re-read [ssh]"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = host_key(dir.path()).unwrap();
        let b = host_key(dir.path()).unwrap();
        assert_eq!(a.public_key().key_data(), b.public_key().key_data());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ssh/host_ed25519"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn only_listed_keys_are_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let k = host_key(dir.path()).unwrap();
        let line = k.public_key().to_openssh().unwrap();
        let other = PrivateKey::from(Ed25519Keypair::from_seed(&[7u8; 32]));
        assert!(key_allowed(std::slice::from_ref(&line), k.public_key()));
        assert!(!key_allowed(&[line], other.public_key()));
        assert!(!key_allowed(&["garbage".into()], other.public_key()));
    }
}
