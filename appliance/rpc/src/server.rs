//! Accept loop, line framing and peer-credential checks.

use std::future::Future;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::protocol::{Call, MAX_LINE, Reply, Request, Response, RpcError};

/// Who is on the other end of the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// The `alpharen` group's id, fixed by the firmware (the image's
/// /etc/group names it): the built-in services' supplementary group, which
/// may use every control socket. Numeric, so it works where /etc/group
/// does not name it (a development host).
pub const ALPHAREN_GID: u32 = 900;

/// The web service's user id (`ar-web`), fixed by the firmware like the
/// group: the supervisor runs web as it, and dpx answers `dpx.acme_txt`
/// (DNS-01 answers for web's ACME client) to it and to no other service.
pub const WEB_UID: u32 = 904;

/// The pgha service's user id (`ar-pgha`): dpx answers `dpx.pg_master`
/// (a PostgreSQL group's master in the zone) to it and to no other service.
pub const PGHA_UID: u32 = 907;

impl Peer {
    /// May send requests at all: root, our own user, or a member of the
    /// `alpharen` group (checked against the peer's supplementary groups).
    fn allowed(&self) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if self.uid == 0 || self.uid == me {
            return true;
        }
        self.gid == ALPHAREN_GID
            || self
                .pid
                .is_some_and(|pid| supplementary_groups(pid).contains(&ALPHAREN_GID))
    }

    /// May have this request answered: root always; anyone else only with
    /// the services' token where this process has one ([`crate::token`]).
    fn authorized(&self, presented: Option<&str>) -> bool {
        match crate::token::get() {
            Some(expected) if self.uid != 0 => crate::token::matches(expected, presented),
            _ => true,
        }
    }
}

fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Where a service serves its own methods (`<state>/run/<service>.sock`);
/// the supervisor forwards `<service>.*` calls there.
pub fn service_socket(state_dir: &std::path::Path, service: &str) -> std::path::PathBuf {
    state_dir.join("run").join(format!("{service}.sock"))
}

/// Binds a control socket: creates its directory, replaces a socket left
/// by a killed predecessor (bind would fail on it), and opens it to root
/// and the `alpharen` group only (0660). Every service's socket is made
/// here so they all get the same access rules.
pub fn bind(path: &std::path::Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let _ = std::os::unix::fs::chown(path, None, Some(ALPHAREN_GID));
    Ok(listener)
}

/// A service's own socket (`<state>/run/<service>.sock`) bound and served
/// by a new task. The error names the socket.
pub fn spawn_service<H: Handler>(
    state_dir: &std::path::Path,
    service: &str,
    handler: H,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = service_socket(state_dir, service);
    let listener = bind(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind {}: {e}", path.display())))?;
    Ok(tokio::spawn(serve(listener, Arc::new(handler))))
}

/// What answers the methods.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, call: Call) -> impl Future<Output = Result<Reply, RpcError>> + Send;
}

/// Serves connections until the listener fails; each connection is its own
/// task so a slow client blocks nobody.
pub async fn serve<H: Handler>(listener: UnixListener, handler: Arc<H>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let h = handler.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, h).await {
                        tracing::debug!(error = %e, "control connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

pub(crate) async fn write_line(
    w: &mut (impl AsyncWriteExt + Unpin),
    value: &impl serde::Serialize,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}

async fn connection<H: Handler>(stream: UnixStream, handler: Arc<H>) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let peer = Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    };
    let (r, mut w) = stream.into_split();
    if !peer.allowed() {
        let e = RpcError::new(
            "forbidden",
            "access to the control socket needs root or membership of the alpharen group",
        );
        return write_line(&mut w, &Response::err(Value::Null, &e)).await;
    }
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if buf.len() > MAX_LINE {
            let e = RpcError::new(
                "invalid_request",
                format!("request line longer than {MAX_LINE} bytes; connection closed"),
            );
            return write_line(&mut w, &Response::err(Value::Null, &e)).await;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let req: Request = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(e) => {
                let e = RpcError::new("parse_error", format!("not a JSON-RPC request: {e}"));
                write_line(&mut w, &Response::err(Value::Null, &e)).await?;
                continue;
            }
        };
        if !peer.authorized(req.token.as_deref()) {
            let e = RpcError::new(
                "forbidden",
                "this socket answers root and the node's services only (the request has no valid service token)",
            );
            return write_line(&mut w, &Response::err(req.id, &e)).await;
        }
        if req.jsonrpc != "2.0" {
            let e = RpcError::new("invalid_request", "\"jsonrpc\" must be \"2.0\"");
            write_line(&mut w, &Response::err(req.id, &e)).await?;
            continue;
        }
        let call = Call {
            method: req.method.clone(),
            params: req.params,
            peer,
        };
        match handler.call(call).await {
            Ok(Reply::Value(v)) => write_line(&mut w, &Response::ok(req.id, v)).await?,
            Ok(Reply::Stream { first, mut rest }) => {
                write_line(&mut w, &Response::ok(req.id, first)).await?;
                let method = format!("{}.item", req.method);
                while let Some(item) = rest.recv().await {
                    let note = json!({"jsonrpc": "2.0", "method": method, "params": item});
                    write_line(&mut w, &note).await?;
                }
                return Ok(());
            }
            Ok(Reply::Upload(up)) => {
                return crate::upload::receive(&mut reader, &mut w, req.id, &req.method, up).await;
            }
            Err(e) => write_line(&mut w, &Response::err(req.id, &e)).await?,
        }
    }
}
