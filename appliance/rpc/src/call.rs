//! The async client the web, the services and the supervisor use: one
//! connection per call, bounded by a timeout, so a stuck peer delays an
//! answer, never hangs it; and a streaming call for `logs.read` with
//! `follow`.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

use crate::protocol::{MAX_LINE, Request, Response, RpcError};

/// The code of every failure to reach the peer or hear its answer.
pub const UNAVAILABLE: &str = "unavailable";

fn unavailable(socket: &Path, e: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        UNAVAILABLE,
        format!("{} cannot be reached: {e}", socket.display()),
    )
}

/// Reads one JSON line of at most `limit` bytes; `None` at the end.
async fn read_line(
    socket: &Path,
    reader: &mut BufReader<OwnedReadHalf>,
    limit: u64,
) -> Result<Option<Value>, RpcError> {
    let mut buf = Vec::new();
    let n = reader
        .take(limit)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| unavailable(socket, e))?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| RpcError::new("internal_error", format!("bad answer: {e}")))
}

async fn exchange(
    socket: &Path,
    method: &str,
    params: Value,
    limit: u64,
) -> Result<(BufReader<OwnedReadHalf>, Value), RpcError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| unavailable(socket, e))?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_vec(&Request::new(json!(1), method, params))
        .map_err(|e| RpcError::new("internal_error", e.to_string()))?;
    line.push(b'\n');
    w.write_all(&line)
        .await
        .map_err(|e| unavailable(socket, e))?;
    let mut reader = BufReader::new(r);
    let value = read_line(socket, &mut reader, limit)
        .await?
        .ok_or_else(|| unavailable(socket, "connection closed before the answer"))?;
    let resp: Response = serde_json::from_value(value)
        .map_err(|e| RpcError::new("internal_error", format!("bad answer: {e}")))?;
    match (resp.result, resp.error) {
        (_, Some(e)) => Err(RpcError::from_object(&e)),
        (Some(v), None) => Ok((reader, v)),
        (None, None) => Ok((reader, Value::Null)),
    }
}

/// One call on `socket`, one answer; `unavailable` if none within `timeout`.
pub async fn call(
    socket: &Path,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, RpcError> {
    call_limited(socket, method, params, timeout, MAX_LINE as u64).await
}

/// [`call`] for an answer that may be longer than one line ([`MAX_LINE`]):
/// up to `limit` bytes.
pub(crate) async fn call_limited(
    socket: &Path,
    method: &str,
    params: Value,
    timeout: Duration,
    limit: u64,
) -> Result<Value, RpcError> {
    tokio::time::timeout(timeout, exchange(socket, method, params, limit))
        .await
        .unwrap_or_else(|_| Err(unavailable(socket, format!("no answer within {timeout:?}"))))
        .map(|(_, v)| v)
}

/// A streaming call's items after its first answer.
pub struct Stream {
    socket: std::path::PathBuf,
    reader: BufReader<OwnedReadHalf>,
}

impl Stream {
    /// The next streamed item; `None` when the peer ends the stream.
    pub async fn next(&mut self) -> Option<Value> {
        match read_line(&self.socket, &mut self.reader, MAX_LINE as u64).await {
            Ok(Some(v)) => v.get("params").cloned(),
            _ => None,
        }
    }
}

/// A streaming call (`logs.read` with `follow`): the first answer within
/// `timeout`, then a reader of the items that follow.
pub async fn call_stream(
    socket: &Path,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<(Value, Stream), RpcError> {
    // A log backlog may come in one answer: larger than one line.
    let limit = 64 << 20;
    let (reader, first) = tokio::time::timeout(timeout, exchange(socket, method, params, limit))
        .await
        .unwrap_or_else(|_| Err(unavailable(socket, format!("no answer within {timeout:?}"))))?;
    let stream = Stream {
        socket: socket.to_path_buf(),
        reader,
    };
    Ok((first, stream))
}

/// The supervisor's socket in a state directory.
pub fn control_socket(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("run").join("control.sock")
}
