//! `system.slots` and the bundle upload `system.update.{begin,data,end}`.
//!
//! Why chunks over the control socket rather than a path or a file in
//! `run/`: the ssh door's `ctl` runs as the unprivileged ssh user, so it
//! can neither hand the supervisor a root-only path nor be trusted to name
//! one; and a request is one line of at most 1 MiB. So the caller sends
//! the bundle as base64 chunks on one connection, and the supervisor feeds
//! them through a small bounded channel (a few chunks) straight into the
//! installer thread, which verifies and writes as they arrive. Memory stays
//! bounded whatever the bundle's size, nothing is staged on disk, and a
//! refused bundle fails a call at most the channel's few chunks after the
//! bad bytes (or `end`).

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use alpharen_rpc::system::{
    self, Installed, UPDATE_CHUNK, UpdateData, UpdateStatus, Upload as UploadReply, UploadId,
};
use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_update::{Running, TrustedKeys};
use base64::Engine;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::unknown;
use crate::install::{self, InstallError};
use crate::state::NodeState;

/// An upload that sends nothing for this long is abandoned (the caller
/// died or the network did): the install fails and the slot stays invalid.
const STALL: Duration = Duration::from_secs(120);
/// Chunks buffered between the socket and the installer.
const QUEUE: usize = 4;

/// The install in progress: its id, the sending end of its bytes and the
/// thread that installs them.
pub(crate) struct Upload {
    id: String,
    tx: mpsc::Sender<Vec<u8>>,
    received: u64,
    task: JoinHandle<Result<Installed, InstallError>>,
}

pub async fn call(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let value = match call.method.as_str() {
        system::SLOTS => {
            let slots = tokio::task::spawn_blocking(|| install::with_target(install::slots))
                .await
                .map_err(|e| RpcError::new("internal_error", e.to_string()))?
                .map_err(|e| failed("slots_unavailable", e))?;
            json!(slots)
        }
        system::UPDATE_BEGIN => json!(begin(node).await?),
        system::UPDATE_STATUS => json!(status(node).await),
        system::UPDATE_DATA => {
            let p: UpdateData = call.params()?;
            data(node, p).await?
        }
        system::UPDATE_END => {
            let p: UploadId = call.params()?;
            json!(end(node, &p.upload).await?)
        }
        _ => return Err(unknown(&call)),
    };
    Ok(Reply::Value(value))
}

fn failed(code: &str, e: InstallError) -> RpcError {
    RpcError::new(code, e.to_string())
}

/// The upload in progress, if any: what `system.update.status` answers.
async fn status(node: &NodeState) -> UpdateStatus {
    match node.update.lock().await.as_ref() {
        Some(u) if !u.task.is_finished() => UpdateStatus {
            installing: true,
            upload: Some(u.id.clone()),
            received: Some(u.received),
        },
        _ => UpdateStatus {
            installing: false,
            upload: None,
            received: None,
        },
    }
}

async fn begin(node: &Arc<NodeState>) -> Result<UploadReply, RpcError> {
    let mut slot = node.update.lock().await;
    if let Some(u) = slot.as_ref()
        && !u.task.is_finished()
    {
        return Err(RpcError::new(
            "busy",
            format!(
                "an update is being installed already (upload {}, {} bytes so far)",
                u.id, u.received
            ),
        ));
    }
    // What the node needs before it can take any bundle, checked before
    // the caller sends a byte: any failure here (no key directory
    // included) means this node cannot install.
    let keys = install::trusted_keys().map_err(|e| failed("update_unavailable", e))?;
    let running = install::running().map_err(|e| failed("update_unavailable", e))?;
    let id = format!("{:016x}", rand::random::<u64>());
    let (tx, rx) = mpsc::channel(QUEUE);
    let reader = ChannelReader {
        rx,
        chunk: Vec::new(),
        at: 0,
        rt: tokio::runtime::Handle::current(),
    };
    let me = node.clone();
    let task = tokio::task::spawn_blocking(move || {
        let log = |line: &str| me.logs.event(line);
        let result = install_from(reader, &keys, &running, &log);
        match &result {
            // The blocking pool runs in the runtime's context, so the
            // notification's mail task can be spawned from here.
            Ok(i) => me.notify(
                "update installed",
                &format!(
                    "update: version {} ({}) installed into slot {}; a reboot tries it",
                    i.version, i.build_id, i.slot
                ),
            ),
            Err(e) => log(&format!("update refused or failed: {e}")),
        }
        result
    });
    node.logs.event(&format!("update: upload {id} started"));
    *slot = Some(Upload {
        id: id.clone(),
        tx,
        received: 0,
        task,
    });
    Ok(UploadReply { upload: id })
}

fn install_from(
    reader: ChannelReader,
    keys: &TrustedKeys,
    running: &Running,
    log: &dyn Fn(&str),
) -> Result<Installed, InstallError> {
    install::with_target(|target| {
        let done = install::install(reader, keys, running, target, log)?;
        Ok(Installed {
            slot: done.slot.to_string(),
            version: done.record.version,
            build_id: done.record.build_id,
            accept: format!("{:?}", done.accept).to_ascii_lowercase(),
            bytes: done.bytes,
        })
    })
}

/// The finished install's error, the session cleared.
async fn outcome(node: &NodeState, id: &str) -> Result<Installed, RpcError> {
    let upload = node
        .update
        .lock()
        .await
        .take_if(|u| u.id == id)
        .ok_or_else(|| no_upload(id))?;
    let Upload { tx, task, .. } = upload;
    drop(tx);
    task.await
        .map_err(|e| RpcError::new("internal_error", format!("the installer died: {e}")))?
        .map_err(|e| failed(e.code(), e))
}

fn no_upload(id: &str) -> RpcError {
    RpcError::invalid_params(format!(
        "there is no upload {id}: start one with system.update.begin"
    ))
}

async fn data(node: &NodeState, p: UpdateData) -> Result<serde_json::Value, RpcError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(p.data.as_bytes())
        .map_err(|e| RpcError::invalid_params(format!("data is not base64: {e}")))?;
    if bytes.len() > UPDATE_CHUNK {
        return Err(RpcError::invalid_params(format!(
            "{} bytes in one chunk; at most {UPDATE_CHUNK}",
            bytes.len()
        )));
    }
    let (tx, finished) = {
        let mut slot = node.update.lock().await;
        let u = slot
            .as_mut()
            .filter(|u| u.id == p.upload)
            .ok_or_else(|| no_upload(&p.upload))?;
        u.received += bytes.len() as u64;
        (u.tx.clone(), u.task.is_finished())
    };
    if finished || tx.send(bytes).await.is_err() {
        // The installer stopped before the bytes ran out: it refused the
        // bundle (or, if it succeeded, the input goes on after its end).
        return match outcome(node, &p.upload).await {
            Err(e) => Err(e),
            Ok(_) => Err(RpcError::new(
                "update_refused",
                "the bundle goes on after its last part",
            )),
        };
    }
    let received = node.update.lock().await.as_ref().map_or(0, |u| u.received);
    Ok(json!({ "received": received }))
}

async fn end(node: &NodeState, id: &str) -> Result<Installed, RpcError> {
    outcome(node, id).await
}

/// The installer's input: chunks from the channel, end of input when the
/// sender is dropped (`system.update.end`), an error when none comes for
/// [`STALL`].
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
    rt: tokio::runtime::Handle,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.chunk.len() {
            let next = self
                .rt
                .block_on(tokio::time::timeout(STALL, self.rx.recv()))
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the upload sent nothing for {} s", STALL.as_secs()),
                    )
                })?;
            match next {
                Some(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_become_one_stream_that_ends_with_the_sender() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let reader = ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
            rt: tokio::runtime::Handle::current(),
        };
        let read = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            let mut reader = reader;
            reader.read_to_end(&mut all).map(|_| all)
        });
        for c in [&b"ARB"[..], b"", b"UNDLE", b"!"] {
            tx.send(c.to_vec()).await.expect("send");
        }
        drop(tx);
        let all = read.await.expect("join").expect("read");
        assert_eq!(all, b"ARBUNDLE!");
    }
}
