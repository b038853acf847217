//! Blocking client for `alpharen ctl` and tests: one request, one answer,
//! or an answer followed by streamed items.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::protocol::{Request, Response, RpcError};
use crate::upload::{MAX_FRAME, frame_header};

fn answer_of(value: Value) -> Result<Value, ClientError> {
    let resp: Response =
        serde_json::from_value(value).map_err(|e| ClientError::Protocol(e.to_string()))?;
    match (resp.result, resp.error) {
        (_, Some(e)) => Err(ClientError::Rpc(RpcError::from_object(&e))),
        (Some(v), None) => Ok(v),
        (None, None) => Err(ClientError::Protocol(
            "answer has neither result nor error".into(),
        )),
    }
}

/// Reads until `buf` is full or the input ends (a pipe gives short reads).
fn fill(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the control socket {path}: {source} (is the supervisor running? try `alpharen run --state-dir DIR` or pass --socket)"
    )]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the supervisor sent something that is not JSON-RPC: {0}")]
    Protocol(String),
    #[error("{0}")]
    Rpc(RpcError),
    /// An upload's own input failed ([`Client::upload`]); the upload was
    /// broken off.
    #[error("{0}")]
    Input(std::io::Error),
}

pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            next_id: 1,
        })
    }

    /// Bounds every later read and write, for callers that must not hang.
    pub fn set_timeout(&mut self, timeout: std::time::Duration) -> Result<(), ClientError> {
        self.writer.set_read_timeout(Some(timeout))?;
        self.writer.set_write_timeout(Some(timeout))?;
        Ok(())
    }

    fn read_value(&mut self) -> Result<Option<Value>, ClientError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.send(method, params)?;
        self.answer()
    }

    /// Sends a request without reading its answer.
    fn send(&mut self, method: &str, params: Value) -> Result<(), ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request::new(json!(id), method, params))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        Ok(())
    }

    /// The answer to the oldest request sent and not answered yet.
    fn answer(&mut self) -> Result<Value, ClientError> {
        let value = self
            .read_value()?
            .ok_or_else(|| ClientError::Protocol("connection closed before the answer".into()))?;
        answer_of(value)
    }

    /// A call that takes an upload ([`crate::upload`]): sends `input` to
    /// its end as frames once the server is ready, then answers what the
    /// server answers. `progress` hears the bytes sent so far. When the
    /// server stops reading early, its answer (the reason) is the error;
    /// when `input` fails, the upload is broken off (the server sees it
    /// truncated) and that failure is the error.
    pub fn upload(
        &mut self,
        method: &str,
        params: Value,
        input: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Value, ClientError> {
        if let Some(answer) = self.request_upload(method, params)? {
            return Ok(answer);
        }
        let mut buf = vec![0u8; 4 + MAX_FRAME];
        let mut sent = 0u64;
        loop {
            let n = match fill(input, &mut buf[4..]) {
                Ok(n) => n,
                Err(e) => {
                    let _closed = self.writer.shutdown(std::net::Shutdown::Write);
                    let _truncated = self.answer();
                    return Err(ClientError::Input(e));
                }
            };
            let mut frames = 4 + n;
            buf[..4].copy_from_slice(&frame_header(n));
            if 0 < n && n < MAX_FRAME {
                // The input ended: the end frame goes out with the last one.
                buf.truncate(4 + n);
                buf.extend_from_slice(&frame_header(0));
                frames += 4;
            }
            if let Err(e) = self.writer.write_all(&buf[..frames]) {
                return Err(self.refused(e));
            }
            sent += n as u64;
            progress(sent);
            if n < MAX_FRAME {
                break;
            }
        }
        self.answer()
    }

    /// [`Client::upload`] of a local file, pipe or socket without sending
    /// its bytes: the server reads them from `file` (a file from its
    /// offset to its end, a pipe or socket until its writer closes it),
    /// which goes to it with the request ([`crate::upload_file`]).
    pub fn upload_file(
        &mut self,
        method: &str,
        params: Value,
        file: &std::fs::File,
    ) -> Result<Value, ClientError> {
        if let Some(answer) = self.request_upload(method, params)? {
            return Ok(answer);
        }
        if let Err(e) = crate::upload_file::send(&self.writer, file) {
            return Err(self.refused(e));
        }
        self.answer()
    }

    /// Sends an upload's request: `None` once the server is ready for the
    /// bytes, else its answer (an error, most likely).
    fn request_upload(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<Option<Value>, ClientError> {
        self.send(method, params)?;
        let first = self
            .read_value()?
            .ok_or_else(|| ClientError::Protocol("connection closed before the answer".into()))?;
        if crate::upload::is_ready(&first) {
            return Ok(None);
        }
        answer_of(first).map(Some)
    }

    /// A write of the upload that failed: the server stopped reading, and
    /// its answer says why.
    fn refused(&mut self, e: std::io::Error) -> ClientError {
        match self.answer() {
            Err(ClientError::Rpc(r)) => ClientError::Rpc(r),
            _ => ClientError::Io(e),
        }
    }

    /// After a streaming call: the next streamed item, `None` at the end.
    pub fn next_item(&mut self) -> Result<Option<Value>, ClientError> {
        Ok(self.read_value()?.and_then(|v| v.get("params").cloned()))
    }
}
