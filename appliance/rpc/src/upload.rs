//! Raw-bytes uploads on a control connection, for what is too large for a
//! request line (an update bundle). After a JSON request whose method
//! takes an upload, the server answers either with the request's error
//! (refused before any byte: busy, unavailable) or with a notification
//! `{"method": "<method>.ready", "params": …}`. The client then sends the
//! bytes as frames, each a 4-byte big-endian length N (1 ≤ N ≤
//! [`MAX_FRAME`]) and N bytes, and ends them with a frame of length 0; the
//! server answers the request and closes the connection. Or, for a local
//! file or its standard input, it sends one header with the descriptor
//! attached instead of any frame ([`crate::upload_file`]), and the
//! consumer reads from it itself.
//!
//! No base64 and no JSON per chunk, and no answer per frame: the socket's
//! own flow control paces the client. The server holds one frame being read plus the
//! consumer's bounded queue ([`Upload::sink`]), so memory stays bounded
//! whatever the length. When the consumer stops early (it refused the
//! bytes), the server answers at once and closes: the client's next write
//! fails, and it reads the reason from the answer. A connection that ends
//! or fails before the end frame, or a frame longer than [`MAX_FRAME`],
//! reaches the consumer as an error naming the bytes received, so it
//! cannot take a cut-off upload for a complete one.

use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::mpsc;

use crate::protocol::{Response, RpcError};
use crate::server::write_line;
use crate::upload_file::{self, FILE_FRAME};

/// Largest frame; a client sends frames of at most this.
pub const MAX_FRAME: usize = 1 << 20;

/// What the consumer of an upload receives, in order: each piece, or why
/// the upload broke off. The end is the sender being dropped after the
/// end frame (or after the passed file or stream).
pub type Chunk = Result<Piece, io::Error>;

/// A piece of an upload.
#[derive(Debug)]
pub enum Piece {
    /// A frame's bytes, never empty.
    Frame(Vec<u8>),
    /// The regular file the client passed instead of frames, at the
    /// client's offset: the only piece, the rest of the upload from that
    /// offset to the file's end. The consumer reads it straight into its
    /// own buffers, so no byte goes through a frame.
    File(File),
    /// The pipe or socket the client passed instead of frames (its
    /// standard input, over ssh a pipe from the ssh door): the only
    /// piece, the rest of the upload until its writer closes it. As with
    /// frames, a writer can stall: the consumer waits for each read only
    /// as long as it waits for a frame.
    Stream(File),
}

/// A handler's answer to a request that takes an upload
/// ([`crate::Reply::Upload`]).
pub struct Upload {
    /// The `ready` notification's params.
    pub ready: Value,
    /// Where the frames go; its capacity bounds what is buffered.
    pub sink: mpsc::Sender<Chunk>,
    /// Frames the consumer is done with, handed back: when set, each
    /// frame is read into one of them (waiting for one), so a fixed set of
    /// buffers circulates. A fresh megabyte per frame costs the kernel a
    /// page fault and a zeroed page for every 4 KiB of it (the allocator
    /// gives freed megabytes back to the kernel). `None`: a new buffer per
    /// frame.
    pub spent: Option<mpsc::Receiver<Vec<u8>>>,
    /// The request's answer, once the consumer is done (after the end of
    /// the bytes, or early when it stops reading them).
    pub done: Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>,
}

/// The notification that says the server is ready for the bytes.
pub(crate) fn ready_note(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": format!("{method}.ready"), "params": params})
}

/// Whether a line read after an upload request is its `ready` notification
/// (otherwise it is the request's answer).
pub(crate) fn is_ready(line: &Value) -> bool {
    line.get("method")
        .and_then(Value::as_str)
        .is_some_and(|m| m.ends_with(".ready"))
}

/// The length prefix of a frame of `n` bytes (0: the end frame).
pub(crate) fn frame_header(n: usize) -> [u8; 4] {
    // A frame never exceeds MAX_FRAME, far below u32::MAX.
    (n as u32).to_be_bytes()
}

fn broke_off(received: u64, inside: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the upload broke off after {received} bytes{inside}, before its end frame"),
    )
}

/// The next frame's bytes, read into `buf` (a spent frame, or empty);
/// empty at the end frame.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    received: u64,
    mut buf: Vec<u8>,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => broke_off(received, ""),
        _ => e,
    })?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("an upload frame of {n} bytes after {received} bytes; at most {MAX_FRAME}"),
        ));
    }
    // Read into the vector's spare room: not zeroing 1 MiB first, and
    // never past the frame (`take`).
    buf.clear();
    buf.reserve_exact(n);
    while buf.len() < n {
        let want = (n - buf.len()) as u64;
        if (&mut *r).take(want).read_buf(&mut buf).await? == 0 {
            return Err(broke_off(
                received,
                &format!(" inside a frame of {n} bytes"),
            ));
        }
    }
    Ok(buf)
}

/// Serves one upload on a connection: `ready`, the frames (or the passed
/// file) into the sink, then the answer. The connection is closed
/// afterwards.
pub(crate) async fn receive<W>(
    reader: &mut BufReader<OwnedReadHalf>,
    w: &mut W,
    id: Value,
    method: &str,
    up: Upload,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let Upload {
        ready,
        sink,
        mut spent,
        mut done,
    } = up;
    let answer = |r: Result<Value, RpcError>| match r {
        Ok(v) => Response::ok(id.clone(), v),
        Err(e) => Response::err(id.clone(), &e),
    };
    write_line(w, &ready_note(method, ready)).await?;
    let (head, file) = tokio::select! {
        r = &mut done => return write_line(w, &answer(r)).await,
        f = upload_file::first(reader) => f?,
    };
    if let Some(file) = file
        && head == FILE_FRAME
    {
        // A consumer that stopped already answers through `done`.
        let _stopped = sink.send(upload_file::piece(file)).await;
        drop(sink);
        return write_line(w, &answer(done.await)).await;
    }
    let mut source = AsyncReadExt::chain(&head[..], reader);
    let mut received = 0u64;
    loop {
        let buf = match spent.as_mut() {
            Some(spent) => tokio::select! {
                r = &mut done => return write_line(w, &answer(r)).await,
                // The consumer gone without an answer yet: `done` says why.
                b = spent.recv() => b.unwrap_or_default(),
            },
            None => Vec::new(),
        };
        let frame = tokio::select! {
            r = &mut done => return write_line(w, &answer(r)).await,
            f = read_frame(&mut source, received, buf) => f,
        };
        match frame {
            Ok(bytes) if bytes.is_empty() => break,
            Ok(bytes) => {
                received += bytes.len() as u64;
                tokio::select! {
                    r = &mut done => return write_line(w, &answer(r)).await,
                    sent = sink.send(Ok(Piece::Frame(bytes))) => if sent.is_err() {
                        // The consumer stopped: its answer says why.
                        return write_line(w, &answer(done.await)).await;
                    }
                }
            }
            Err(e) => {
                let _stopped = sink.send(Err(e)).await;
                break;
            }
        }
    }
    drop(sink);
    write_line(w, &answer(done.await)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_truncation_and_oversize() {
        let mut wire = Vec::new();
        for part in [&b"ARB"[..], b"UNDLE"] {
            wire.extend_from_slice(&frame_header(part.len()));
            wire.extend_from_slice(part);
        }
        let mut r = &wire[..];
        assert_eq!(read_frame(&mut r, 0, Vec::new()).await.unwrap(), b"ARB");
        // A spent frame, longer than the next: only the frame's bytes.
        let spent = vec![9u8; 64];
        assert_eq!(read_frame(&mut r, 3, spent).await.unwrap(), b"UNDLE");
        let e = read_frame(&mut r, 8, Vec::new()).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("after 8 bytes"), "{e}");

        let mut cut = frame_header(10).to_vec();
        cut.extend_from_slice(b"abc");
        let e = read_frame(&mut &cut[..], 5, Vec::new()).await.unwrap_err();
        assert!(
            e.to_string().contains("after 5 bytes inside a frame of 10"),
            "{e}"
        );

        let big = frame_header(MAX_FRAME + 1);
        let e = read_frame(&mut &big[..], 0, Vec::new()).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}

#[cfg(test)]
mod round_trip {
    use std::io::Read;
    use std::sync::Arc;

    use super::*;
    use crate::{Call, Client, ClientError, Handler, Reply};

    /// Takes an upload and answers its length; with `refuse_after`, stops
    /// reading once it has that many bytes and answers an error. Hands
    /// its frames back (`Upload::spent`): three buffers circulate.
    struct Counter {
        refuse_after: Option<usize>,
    }

    impl Handler for Counter {
        async fn call(&self, _call: Call) -> Result<Reply, RpcError> {
            let (sink, mut rx) = mpsc::channel::<Chunk>(2);
            let (spend, spent) = mpsc::channel(3);
            for _ in 0..3 {
                spend.try_send(Vec::new()).unwrap();
            }
            let limit = self.refuse_after;
            let done = async move {
                let mut n = 0usize;
                while let Some(c) = rx.recv().await {
                    match c.map_err(|e| RpcError::new("truncated", e.to_string()))? {
                        Piece::Frame(c) => {
                            n += c.len();
                            spend.try_send(c).unwrap();
                        }
                        Piece::File(mut f) | Piece::Stream(mut f) => {
                            n += std::io::copy(&mut f, &mut std::io::sink()).unwrap() as usize;
                        }
                    }
                    if limit.is_some_and(|l| n >= l) {
                        return Err(RpcError::new("refused", format!("enough at {n}")));
                    }
                }
                Ok(json!({"bytes": n}))
            };
            Ok(Reply::Upload(Upload {
                ready: json!({"id": "x"}),
                sink,
                spent: Some(spent),
                done: Box::pin(done),
            }))
        }
    }

    fn serve(refuse_after: Option<usize>) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = crate::bind(&path).unwrap();
        tokio::spawn(crate::serve(listener, Arc::new(Counter { refuse_after })));
        (dir, path)
    }

    /// A reader that fails after giving `n` bytes.
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("disk gone"));
            }
            let k = buf.len().min(self.0);
            self.0 -= k;
            Ok(k)
        }
    }

    #[tokio::test]
    async fn blocking_client_sends_everything_and_hears_refusals() {
        let (_d, ok) = serve(None);
        let (_d2, no) = serve(Some(3 * MAX_FRAME));
        tokio::task::spawn_blocking(move || {
            let data = vec![7u8; 5 * MAX_FRAME + 123];
            let mut last = 0;
            let mut c = Client::connect(&ok).unwrap();
            let v = c
                .upload("x.upload", json!({}), &mut &data[..], &mut |n| last = n)
                .unwrap();
            assert_eq!(v["bytes"], data.len());
            assert_eq!(last, data.len() as u64);
            // Exactly a frame's worth: the end frame follows a full frame.
            let mut c = Client::connect(&ok).unwrap();
            let v = c
                .upload("x", json!({}), &mut &data[..MAX_FRAME], &mut |_| {})
                .unwrap();
            assert_eq!(v["bytes"], MAX_FRAME);
            let mut c = Client::connect(&ok).unwrap();
            let v = c.upload("x", json!({}), &mut &[][..], &mut |_| {}).unwrap();
            assert_eq!(v["bytes"], 0);

            let big = vec![1u8; 64 * MAX_FRAME];
            let mut c = Client::connect(&no).unwrap();
            match c.upload("x", json!({}), &mut &big[..], &mut |_| {}) {
                Err(ClientError::Rpc(e)) => assert_eq!(e.code, "refused"),
                other => panic!("{other:?}"),
            }

            let mut c = Client::connect(&ok).unwrap();
            match c.upload("x", json!({}), &mut Failing(MAX_FRAME + 5), &mut |_| {}) {
                Err(ClientError::Input(e)) => assert_eq!(e.to_string(), "disk gone"),
                other => panic!("{other:?}"),
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_passed_file_or_pipe_is_read_by_the_server_and_nothing_else() {
        let (_d, ok) = serve(None);
        let (_d2, no) = serve(Some(2 * MAX_FRAME));
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("bundle");
            std::fs::write(&path, vec![7u8; 3 * MAX_FRAME + 5]).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let mut c = Client::connect(&ok).unwrap();
            let v = c.upload_file("x", json!({}), &file).unwrap();
            assert_eq!(v["bytes"], 3 * MAX_FRAME + 5);

            let file = std::fs::File::open(&path).unwrap();
            let mut c = Client::connect(&no).unwrap();
            match c.upload_file("x", json!({}), &file) {
                Err(ClientError::Rpc(e)) => assert_eq!(e.code, "refused"),
                other => panic!("{other:?}"),
            }

            // Standard input: a pipe, read until its writer closes it.
            let (pipe, mut writer) = std::io::pipe().unwrap();
            let pipe = std::fs::File::from(std::os::fd::OwnedFd::from(pipe));
            let feeder = std::thread::spawn(move || {
                use std::io::Write;
                writer.write_all(&vec![5u8; 2 * MAX_FRAME + 9]).unwrap();
            });
            let mut c = Client::connect(&ok).unwrap();
            let v = c.upload_file("x", json!({}), &pipe).unwrap();
            feeder.join().unwrap();
            assert_eq!(v["bytes"], 2 * MAX_FRAME + 9);

            let directory = std::fs::File::open(dir.path()).unwrap();
            let mut c = Client::connect(&ok).unwrap();
            match c.upload_file("x", json!({}), &directory) {
                Err(ClientError::Rpc(e)) => {
                    assert!(e.message.contains("neither a regular file"), "{e}")
                }
                other => panic!("{other:?}"),
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn async_uploader_finishes_aborts_and_hears_refusals() {
        let (_d, ok) = serve(None);
        let t = std::time::Duration::from_secs(5);
        let (ready, mut up) = crate::upload(&ok, "x", json!({}), t).await.unwrap();
        assert_eq!(ready, json!({"id": "x"}));
        up.send(&vec![0u8; 2 * MAX_FRAME + 1]).await.unwrap();
        up.send(b"abc").await.unwrap();
        assert_eq!(up.finish().await.unwrap()["bytes"], 2 * MAX_FRAME + 4);

        let (_, mut up) = crate::upload(&ok, "x", json!({}), t).await.unwrap();
        up.send(b"abc").await.unwrap();
        let e = up.abort().await.unwrap_err();
        assert_eq!(e.code, "truncated");
        assert!(e.message.contains("broke off after 3 bytes"), "{e}");

        let (_d2, no) = serve(Some(MAX_FRAME));
        let (_, mut up) = crate::upload(&no, "x", json!({}), t).await.unwrap();
        let big = vec![1u8; MAX_FRAME];
        let mut refused = None;
        for _ in 0..64 {
            if let Err(e) = up.send(&big).await {
                refused = Some(e);
                break;
            }
        }
        assert_eq!(refused.map(|e| e.code), Some("refused".to_string()));
    }
}
