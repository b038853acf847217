//! `system.slots` and the bundle upload `system.update.upload`.
//!
//! Why bytes over the control socket rather than a path or a file in
//! `run/`: the ssh door's `ctl` runs as the unprivileged ssh user, so it
//! can neither hand the supervisor a root-only path nor be trusted to name
//! one. So the caller sends the bundle as a raw upload on its connection
//! (`alpharen_rpc::upload`: length-prefixed frames after the request), and
//! the supervisor feeds the frames through a small bounded channel straight
//! into the installer thread, which verifies and writes as they arrive.
//! `ctl system update FILE` on the node passes its open file instead, and
//! `ctl system update -` its standard input (over ssh a pipe from the ssh
//! door), which the installer thread reads itself.
//! Memory stays bounded whatever the bundle's size, nothing is staged on
//! disk, and a refused bundle is answered at most the channel's few frames
//! after the bad bytes.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use alpharen_rpc::system::{self, Installed, UpdateStatus, Upload as UploadReady};
use alpharen_rpc::upload::{Chunk, Piece, Upload as RawUpload};
use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_update::{GROUP_SIZE, Running, TrustedKeys};
use nix::errno::Errno;
use nix::fcntl::FcntlArg;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::json;
use tokio::sync::mpsc;

use super::unknown;
use crate::install::{self, InstallError};
use crate::keyring;
use crate::state::NodeState;

/// An upload that sends nothing for this long is abandoned (the caller
/// died or the network did): the install fails and the slot stays invalid.
const STALL: Duration = Duration::from_secs(120);
/// Frames (up to 1 MiB each) buffered between the socket and the installer.
const QUEUE: usize = 4;
/// Frame buffers in circulation (`Upload::spent`): the queued ones, one
/// being read from the socket and one the installer reads from.
const FRAMES: usize = QUEUE + 2;

/// The install in progress: its id, the bytes received so far and
/// whether its installer has returned.
pub(crate) struct Upload {
    id: String,
    received: Arc<AtomicU64>,
    finished: Arc<AtomicBool>,
}

/// Sets its flag when dropped: the installer thread is over, however it
/// ended (a panic included), so a new install may begin.
struct Finished(Arc<AtomicBool>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

pub async fn call(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let value = match call.method.as_str() {
        system::SLOTS => {
            let slots = tokio::task::spawn_blocking(install::slots_here)
                .await
                .map_err(|e| RpcError::new("internal_error", e.to_string()))?
                .map_err(|e| failed("slots_unavailable", e))?;
            json!(slots)
        }
        system::UPDATE_UPLOAD => return Ok(Reply::Upload(upload(node).await?)),
        system::UPDATE_STATUS => json!(status(node).await),
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
        Some(u) if !u.finished.load(Ordering::Acquire) => UpdateStatus {
            installing: true,
            upload: Some(u.id.clone()),
            received: Some(u.received.load(Ordering::Relaxed)),
        },
        _ => UpdateStatus {
            installing: false,
            upload: None,
            received: None,
        },
    }
}

async fn upload(node: &Arc<NodeState>) -> Result<RawUpload, RpcError> {
    let mut slot = node.update.lock().await;
    if let Some(u) = slot.as_ref()
        && !u.finished.load(Ordering::Acquire)
    {
        return Err(RpcError::new(
            "busy",
            format!(
                "an update is being installed already (upload {}, {} bytes so far)",
                u.id,
                u.received.load(Ordering::Relaxed)
            ),
        ));
    }
    // What the node needs before it can take any bundle, checked before
    // the caller sends a byte: any failure here (no key directory
    // included) means this node cannot install.
    let kept = keyring::kept_dir(&node.opts.state_dir);
    let keys = keyring::trusted_keys(&kept).map_err(|e| failed("update_unavailable", e))?;
    let running = install::running().map_err(|e| failed("update_unavailable", e))?;
    let id = format!("{:016x}", rand::random::<u64>());
    let (sink, rx) = mpsc::channel(QUEUE);
    let (spend, spent) = mpsc::channel(FRAMES);
    for _ in 0..FRAMES {
        // The channel holds FRAMES and nothing else sends yet.
        let _ = spend.try_send(Vec::new());
    }
    let received = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let reader = ChannelReader::new(rx, spend, received.clone());
    let me = node.clone();
    let over = Finished(finished.clone());
    let task = tokio::task::spawn_blocking(move || {
        let _over = over;
        let log = |line: &str| me.logs.event(line);
        let result = install_from(reader, &keys, &kept, &running, &log);
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
        received,
        finished,
    });
    let done = async move {
        let installed = task
            .await
            .map_err(|e| RpcError::new("internal_error", format!("the installer died: {e}")))?
            .map_err(|e| failed(e.code(), e))?;
        Ok(json!(installed))
    };
    Ok(RawUpload {
        ready: json!(UploadReady { upload: id }),
        sink,
        spent: Some(spent),
        done: Box::pin(done),
    })
}

fn install_from(
    reader: ChannelReader,
    keys: &TrustedKeys,
    kept: &Path,
    running: &Running,
    log: &dyn Fn(&str),
) -> Result<Installed, InstallError> {
    let done = install::install_here(reader, keys, kept, running, log)?;
    Ok(Installed {
        slot: done.slot.to_string(),
        version: done.record.version,
        build_id: done.record.build_id,
        accept: format!("{:?}", done.accept).to_ascii_lowercase(),
        bytes: done.bytes,
    })
}

/// The installer's input: frames from the channel, end of input when the
/// sender is dropped after the end frame, an error when the upload broke
/// off or nothing comes for [`STALL`]. Each frame read goes back through
/// `spend` to be read into again. A passed file or stream, once it comes,
/// is read directly to its end.
struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    spend: mpsc::Sender<Vec<u8>>,
    passed: Option<Passed>,
    chunk: Vec<u8>,
    at: usize,
    received: Arc<AtomicU64>,
    rt: tokio::runtime::Handle,
}

impl ChannelReader {
    /// Reads what `rx` brings, handing spent frames to `spend` and
    /// counting the bytes in `received`; on a thread of the runtime's
    /// blocking pool.
    fn new(
        rx: mpsc::Receiver<Chunk>,
        spend: mpsc::Sender<Vec<u8>>,
        received: Arc<AtomicU64>,
    ) -> ChannelReader {
        ChannelReader {
            rx,
            spend,
            passed: None,
            chunk: Vec::new(),
            at: 0,
            received,
            rt: tokio::runtime::Handle::current(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(passed) = &mut self.passed {
            let n = passed.read(buf)?;
            self.received.fetch_add(n as u64, Ordering::Relaxed);
            return Ok(n);
        }
        while self.at >= self.chunk.len() {
            let next = self
                .rt
                .block_on(tokio::time::timeout(STALL, self.rx.recv()))
                .map_err(|_| stalled(STALL))?;
            match next.transpose()? {
                Some(Piece::File(file)) => {
                    self.passed = Some(Passed::file(file));
                    return self.read(buf);
                }
                Some(Piece::Stream(file)) => {
                    self.passed = Some(Passed::stream(file, STALL));
                    return self.read(buf);
                }
                Some(Piece::Frame(c)) => {
                    let spent = std::mem::replace(&mut self.chunk, c);
                    if spent.capacity() > 0 {
                        // Never full: FRAMES buffers in all.
                        let _ = self.spend.try_send(spent);
                    }
                    self.at = 0;
                    self.received
                        .fetch_add(self.chunk.len() as u64, Ordering::Relaxed);
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

fn stalled(stall: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the upload sent nothing for {} s", stall.as_secs_f32()),
    )
}

/// What the client passed instead of frames: a regular file, or a pipe
/// or socket, whose writer may stall as a sender of frames can: each
/// read of a stream waits at most `stall`.
struct Passed {
    file: File,
    stall: Option<Duration>,
}

impl Passed {
    fn file(file: File) -> Passed {
        Passed { file, stall: None }
    }

    /// A pipe is widened to a group's megabyte where the kernel lets it,
    /// so each read can take a whole group, not 64 KiB of it.
    fn stream(file: File, stall: Duration) -> Passed {
        let _narrow = nix::fcntl::fcntl(&file, FcntlArg::F_SETPIPE_SZ(GROUP_SIZE as i32));
        Passed {
            file,
            stall: Some(stall),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(stall) = self.stall {
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            let within = PollTimeout::try_from(stall).unwrap_or(PollTimeout::MAX);
            loop {
                match poll(&mut fds, within) {
                    Ok(0) => return Err(stalled(stall)),
                    Ok(_) => break,
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.file.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything `reader` gives, read on a blocking thread.
    fn read_all(mut reader: ChannelReader) -> tokio::task::JoinHandle<io::Result<Vec<u8>>> {
        tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).map(|_| all)
        })
    }

    #[tokio::test]
    async fn chunks_become_one_stream_that_ends_with_the_sender() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (spend, mut spent) = mpsc::channel(FRAMES);
        let read = read_all(ChannelReader::new(rx, spend, Arc::default()));
        for c in [&b"ARB"[..], b"UNDLE", b"!"] {
            tx.send(Ok(Piece::Frame(c.to_vec()))).await.expect("send");
        }
        drop(tx);
        let all = read.await.expect("join").expect("read");
        assert_eq!(all, b"ARBUNDLE!");
        // Every frame read to its end came back to be read into again
        // (the last one is the reader's until it is dropped).
        let mut back = Vec::new();
        while let Ok(f) = spent.try_recv() {
            back.push(f);
        }
        assert_eq!(back, [&b"ARB"[..], b"UNDLE"]);
    }

    #[tokio::test]
    async fn a_broken_upload_is_a_read_error_not_the_end() {
        let (tx, rx) = mpsc::channel(QUEUE);
        let received = Arc::new(AtomicU64::new(0));
        let reader = ChannelReader::new(rx, mpsc::channel(FRAMES).0, received.clone());
        tx.send(Ok(Piece::Frame(b"ARB".to_vec())))
            .await
            .expect("send");
        let broke = io::Error::new(io::ErrorKind::UnexpectedEof, "the upload broke off");
        tx.send(Err(broke)).await.expect("send");
        drop(tx);
        let e = read_all(reader).await.expect("join").expect_err("broken");
        assert_eq!(e.to_string(), "the upload broke off");
        assert_eq!(received.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_passed_file_is_read_to_its_end_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bundle");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let (tx, rx) = mpsc::channel(QUEUE);
        let received = Arc::new(AtomicU64::new(0));
        let reader = ChannelReader::new(rx, mpsc::channel(FRAMES).0, received.clone());
        let file = File::open(&path).expect("open");
        tx.send(Ok(Piece::File(file))).await.expect("send");
        drop(tx);
        let all = read_all(reader).await.expect("join").expect("read");
        assert!(all == data, "the file's bytes, in order");
        assert_eq!(received.load(Ordering::Relaxed), data.len() as u64);
    }

    #[tokio::test]
    async fn a_passed_pipe_is_read_until_its_writer_closes_it() {
        let (pipe, mut writer) = std::io::pipe().expect("pipe");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 249) as u8).collect();
        let feed = data.clone();
        let feeder = std::thread::spawn(move || {
            use std::io::Write;
            writer.write_all(&feed).expect("write");
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let received = Arc::new(AtomicU64::new(0));
        let reader = ChannelReader::new(rx, mpsc::channel(FRAMES).0, received.clone());
        let pipe = File::from(std::os::fd::OwnedFd::from(pipe));
        tx.send(Ok(Piece::Stream(pipe))).await.expect("send");
        drop(tx);
        let all = read_all(reader).await.expect("join").expect("read");
        feeder.join().expect("feeder");
        assert!(all == data, "the pipe's bytes, in order");
        assert_eq!(received.load(Ordering::Relaxed), data.len() as u64);
    }

    #[test]
    fn a_stream_whose_writer_stalls_times_out() {
        let (pipe, mut writer) = std::io::pipe().expect("pipe");
        use std::io::Write;
        writer.write_all(b"ARB").expect("write");
        let pipe = File::from(std::os::fd::OwnedFd::from(pipe));
        let mut passed = Passed::stream(pipe, Duration::from_millis(50));
        let mut buf = [0u8; 16];
        assert_eq!(passed.read(&mut buf).expect("read"), 3);
        let e = passed.read(&mut buf).expect_err("stalled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("sent nothing for 0.05 s"), "{e}");
        drop(writer);
    }
}
