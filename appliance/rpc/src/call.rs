//! The async client services use: one connection per call, bounded by a
//! timeout, so a stuck supervisor delays a login, never hangs it.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::protocol::{MAX_LINE, Response, RpcError};

fn unavailable(e: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        "unavailable",
        format!("the node's supervisor cannot be reached: {e}"),
    )
}

async fn exchange(socket: &Path, method: &str, params: Value) -> Result<Value, RpcError> {
    let stream = UnixStream::connect(socket).await.map_err(unavailable)?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_vec(&json!({
        "jsonrpc": "2.0", "id": 1, "method": method, "params": params
    }))
    .map_err(|e| RpcError::new("internal_error", e.to_string()))?;
    line.push(b'\n');
    w.write_all(&line).await.map_err(unavailable)?;
    let mut buf = Vec::new();
    BufReader::new(r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(unavailable)?;
    if buf.is_empty() {
        return Err(unavailable("connection closed before the answer"));
    }
    let resp: Response = serde_json::from_slice(&buf)
        .map_err(|e| RpcError::new("internal_error", format!("bad answer: {e}")))?;
    match (resp.result, resp.error) {
        (_, Some(e)) => Err(RpcError::from_object(&e)),
        (Some(v), None) => Ok(v),
        (None, None) => Ok(Value::Null),
    }
}

/// One call on `socket`, one answer; `unavailable` if none within `timeout`.
pub async fn call(
    socket: &Path,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, RpcError> {
    tokio::time::timeout(timeout, exchange(socket, method, params))
        .await
        .unwrap_or_else(|_| Err(unavailable(format!("no answer within {timeout:?}"))))
}
