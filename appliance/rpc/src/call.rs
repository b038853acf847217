//! The async client the web, the services and the supervisor use: one
//! connection per call, bounded by a timeout, so a stuck peer delays an
//! answer, never hangs it; and a streaming call for `logs.read` with
//! `follow`; and uploads ([`Uploader`]).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::protocol::{MAX_LINE, Request, Response, RpcError};

/// The code of every failure to reach the peer or hear its answer; not
/// `unavailable`, which a service that answered may use for what it
/// depends on (the integrator for the cluster's KV).
pub const UNREACHABLE: &str = "unreachable";

fn unavailable(socket: &Path, e: impl std::fmt::Display) -> RpcError {
    RpcError::new(
        UNREACHABLE,
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

/// Connects, sends one request and reads the first line back: the
/// reader, the writer (an upload goes on with it) and that line.
async fn request(
    socket: &Path,
    method: &str,
    params: Value,
    limit: u64,
) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf, Value), RpcError> {
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
    let first = read_line(socket, &mut reader, limit)
        .await?
        .ok_or_else(|| unavailable(socket, "connection closed before the answer"))?;
    Ok((reader, w, first))
}

async fn exchange(
    socket: &Path,
    method: &str,
    params: Value,
    limit: u64,
) -> Result<(BufReader<OwnedReadHalf>, Value), RpcError> {
    let (reader, _, value) = request(socket, method, params, limit).await?;
    answer_of(value).map(|v| (reader, v))
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

/// An upload in progress ([`crate::upload`]): the bytes go out as frames
/// with [`Uploader::send`], and [`Uploader::finish`] ends them and waits
/// for the answer.
pub struct Uploader {
    socket: std::path::PathBuf,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// Starts a call that takes an upload: the `ready` notification's params
/// and the [`Uploader`], or the call's error (refused before any byte),
/// within `timeout`.
pub async fn upload(
    socket: &Path,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<(Value, Uploader), RpcError> {
    let start = async {
        let (reader, w, first) = request(socket, method, params, MAX_LINE as u64).await?;
        if !crate::upload::is_ready(&first) {
            answer_of(first)?;
            return Err(RpcError::new(
                "internal_error",
                format!("{method} answered without taking the upload"),
            ));
        }
        let up = Uploader {
            socket: socket.to_path_buf(),
            reader,
            writer: w,
        };
        Ok((first["params"].clone(), up))
    };
    tokio::time::timeout(timeout, start)
        .await
        .unwrap_or_else(|_| Err(unavailable(socket, format!("no answer within {timeout:?}"))))
}

fn answer_of(value: Value) -> Result<Value, RpcError> {
    let resp: Response = serde_json::from_value(value)
        .map_err(|e| RpcError::new("internal_error", format!("bad answer: {e}")))?;
    match (resp.result, resp.error) {
        (_, Some(e)) => Err(RpcError::from_object(&e)),
        (Some(v), None) => Ok(v),
        (None, None) => Ok(Value::Null),
    }
}

impl Uploader {
    /// Sends `bytes` as frames of at most [`crate::upload::MAX_FRAME`].
    /// When the peer has stopped reading (it refused the upload), its
    /// answer is the error.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), RpcError> {
        for frame in bytes.chunks(crate::upload::MAX_FRAME) {
            let header = crate::upload::frame_header(frame.len());
            let sent = match self.writer.write_all(&header).await {
                Ok(()) => self.writer.write_all(frame).await,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                return Err(match self.answer().await {
                    Err(refused) => refused,
                    Ok(_) => unavailable(&self.socket, e),
                });
            }
        }
        Ok(())
    }

    /// Ends the bytes and waits for the answer.
    pub async fn finish(mut self) -> Result<Value, RpcError> {
        let header = crate::upload::frame_header(0);
        if let Err(e) = self.writer.write_all(&header).await {
            return match self.answer().await {
                Err(refused) => Err(refused),
                Ok(_) => Err(unavailable(&self.socket, e)),
            };
        }
        self.answer().await
    }

    /// Breaks the upload off (no end frame: the peer takes it as
    /// truncated) and answers the peer's answer.
    pub async fn abort(mut self) -> Result<Value, RpcError> {
        let _closed = self.writer.shutdown().await;
        self.answer().await
    }

    async fn answer(&mut self) -> Result<Value, RpcError> {
        let line = read_line(&self.socket, &mut self.reader, MAX_LINE as u64)
            .await?
            .ok_or_else(|| unavailable(&self.socket, "connection closed before the answer"))?;
        answer_of(line)
    }
}
