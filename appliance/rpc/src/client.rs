//! Blocking client for `alpharen ctl` and tests: one request, one answer,
//! or an answer followed by streamed items.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::protocol::{Request, Response, RpcError};

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

    /// Sends a request without reading its answer; [`Client::answer`]
    /// reads the answers in the order the requests went out. A caller
    /// that keeps a few requests in flight (the update upload) overlaps
    /// its own work with the supervisor's.
    pub fn send(&mut self, method: &str, params: Value) -> Result<(), ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request::new(json!(id), method, params))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        Ok(())
    }

    /// The answer to the oldest request sent and not answered yet.
    pub fn answer(&mut self) -> Result<Value, ClientError> {
        let value = self
            .read_value()?
            .ok_or_else(|| ClientError::Protocol("connection closed before the answer".into()))?;
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

    /// After a streaming call: the next streamed item, `None` at the end.
    pub fn next_item(&mut self) -> Result<Option<Value>, ClientError> {
        Ok(self.read_value()?.and_then(|v| v.get("params").cloned()))
    }
}
