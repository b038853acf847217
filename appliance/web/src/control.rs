//! A small async client for the supervisor's control socket: one
//! connection per call (calls are rare and cheap next to TLS), plus a
//! streaming variant for `logs.read` with `follow`.

use std::path::Path;
use std::time::Duration;

use alpharen_rpc::{MAX_LINE, Response, RpcError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

/// Longest a single call may take (a config apply reconciles services).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

fn unavailable(e: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        "unavailable",
        format!("the node's supervisor cannot be reached: {e}"),
    )
}

/// Reads one JSON line, refusing lines longer than the protocol allows.
async fn read_line(reader: &mut BufReader<OwnedReadHalf>) -> Result<Option<Value>, RpcError> {
    let mut buf = Vec::new();
    let n = reader
        .take(MAX_LINE as u64 * 64)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(unavailable)?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_slice(&buf)
        .map(Some)
        .map_err(|e| RpcError::new("internal_error", format!("bad answer from supervisor: {e}")))
}

async fn send(
    socket: &Path,
    method: &str,
    params: Value,
) -> Result<(BufReader<OwnedReadHalf>, Value), RpcError> {
    let stream = UnixStream::connect(socket).await.map_err(unavailable)?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_vec(&json!({
        "jsonrpc": "2.0", "id": 1, "method": method, "params": params
    }))
    .map_err(|e| RpcError::new("internal_error", e.to_string()))?;
    line.push(b'\n');
    w.write_all(&line).await.map_err(unavailable)?;
    let mut reader = BufReader::new(r);
    let value = read_line(&mut reader)
        .await?
        .ok_or_else(|| unavailable("connection closed before the answer"))?;
    let resp: Response = serde_json::from_value(value)
        .map_err(|e| RpcError::new("internal_error", format!("bad answer: {e}")))?;
    match (resp.result, resp.error) {
        (_, Some(e)) => Err(RpcError::from_object(&e)),
        (Some(v), None) => Ok((reader, v)),
        (None, None) => Err(RpcError::new("internal_error", "empty answer")),
    }
}

/// One call, one answer.
pub async fn call(socket: &Path, method: &str, params: Value) -> Result<Value, RpcError> {
    match tokio::time::timeout(CALL_TIMEOUT, send(socket, method, params)).await {
        Ok(r) => r.map(|(_, v)| v),
        Err(_) => Err(unavailable("no answer within 60 s")),
    }
}

/// A streaming call: the first answer and a reader of the items that follow.
pub struct Stream {
    reader: BufReader<OwnedReadHalf>,
}

impl Stream {
    /// The next streamed item; `None` when the supervisor ends the stream.
    pub async fn next(&mut self) -> Option<Value> {
        match read_line(&mut self.reader).await {
            Ok(Some(v)) => v.get("params").cloned(),
            _ => None,
        }
    }
}

pub async fn call_stream(
    socket: &Path,
    method: &str,
    params: Value,
) -> Result<(Value, Stream), RpcError> {
    let (reader, first) = tokio::time::timeout(CALL_TIMEOUT, send(socket, method, params))
        .await
        .map_err(|_| unavailable("no answer within 60 s"))??;
    Ok((first, Stream { reader }))
}
