//! An upload of a local file, or of the client's standard input, without
//! its bytes crossing the socket: in place of the first frame the client
//! sends the header [`FILE_FRAME`] with the open descriptor attached
//! (`SCM_RIGHTS`), and the server hands it to the upload's consumer
//! ([`crate::upload::Piece`]), which reads from it straight into its own
//! buffers. That spares three copies of every byte (into the socket, out
//! of it, out of a frame) and the client's own reading and writing (an
//! update bundle of hundreds of MiB from `ctl system update FILE`, or
//! `ssh admin@node system update - < bundle`, whose standard input is a
//! pipe from the ssh door).
//!
//! The server reads only what the client could read: the descriptor is
//! the client's own, opened with its rights. It must be a regular file
//! (read from the client's offset to its end), a pipe or a socket (read
//! until the writer closes it; the consumer bounds the wait for each
//! read, as it does for a frame). Anything else (a terminal, a directory,
//! a device) is refused.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream as StdStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use tokio::io::{BufReader, Interest};
use tokio::net::unix::OwnedReadHalf;

use crate::upload::Piece;

/// The header of the file frame: no socket frame is this long (at most
/// [`crate::upload::MAX_FRAME`]).
pub(crate) const FILE_FRAME: [u8; 4] = u32::MAX.to_be_bytes();

/// Sends the file frame with `file` attached on `stream`.
pub(crate) fn send(stream: &StdStream, file: &File) -> io::Result<()> {
    let fds = [file.as_raw_fd()];
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&FILE_FRAME)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if sent != FILE_FRAME.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the file frame went out cut short",
        ));
    }
    Ok(())
}

/// The first bytes after `ready`, up to one frame header, and the file
/// attached to them if any. With bytes already buffered, no file can come
/// (one is attached only to the header right after `ready`, which the
/// client sends after reading it) and nothing is read.
pub(crate) async fn first(
    reader: &mut BufReader<OwnedReadHalf>,
) -> io::Result<(Vec<u8>, Option<File>)> {
    if !reader.buffer().is_empty() {
        return Ok((Vec::new(), None));
    }
    let stream = reader.get_ref().as_ref();
    stream
        .async_io(Interest::READABLE, || receive(stream.as_raw_fd()))
        .await
}

/// One `recvmsg` of up to a header's bytes and at most one descriptor;
/// any other descriptors sent are closed.
fn receive(socket: RawFd) -> io::Result<(Vec<u8>, Option<File>)> {
    let mut header = [0u8; 4];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut header)];
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = c {
            // SAFETY: the kernel just installed these descriptors in this
            // process for this message; nothing else owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let n = msg.bytes;
    Ok((header[..n].to_vec(), fds.into_iter().next().map(File::from)))
}

/// The piece a passed descriptor is: a regular file, or a pipe or
/// socket to read as a stream; an error for anything else.
pub(crate) fn piece(file: File) -> io::Result<Piece> {
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        Ok(Piece::File(file))
    } else if kind.is_fifo() || kind.is_socket() {
        Ok(Piece::Stream(file))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "what was passed with the upload is neither a regular file, a pipe nor a socket",
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::upload::MAX_FRAME;

    #[tokio::test]
    async fn a_file_frame_carries_its_descriptor_a_file_pipe_or_socket() {
        let (client, server) = StdStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::UnixStream::from_std(server).unwrap();
        let (r, _w) = server.into_split();
        let mut reader = BufReader::new(r);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle");
        let data: Vec<u8> = (0..MAX_FRAME * 2 + 77).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut file = File::open(&path).unwrap();
        // From the client's offset on, as a read of its own would give.
        let mut skip = [0u8; 10];
        file.read_exact(&mut skip).unwrap();
        send(&client, &file).unwrap();
        drop(file);
        let (head, got) = first(&mut reader).await.unwrap();
        assert_eq!(head, FILE_FRAME);
        let Ok(Piece::File(mut got)) = piece(got.expect("a file came with the frame")) else {
            panic!("a regular file is a file piece");
        };
        let mut all = Vec::new();
        got.read_to_end(&mut all).unwrap();
        assert_eq!(all, data[10..]);

        // A plain header: no file, the bytes as they came.
        use std::io::Write;
        (&client).write_all(&[0, 0, 0, 3]).unwrap();
        let (head, got) = first(&mut reader).await.unwrap();
        assert_eq!(head, [0, 0, 0, 3]);
        assert!(got.is_none());

        let (pipe, _keep) = std::io::pipe().unwrap();
        assert!(matches!(
            piece(File::from(OwnedFd::from(pipe))),
            Ok(Piece::Stream(_))
        ));
        let (socket, _peer) = StdStream::pair().unwrap();
        assert!(matches!(
            piece(File::from(OwnedFd::from(socket))),
            Ok(Piece::Stream(_))
        ));
        let e = piece(File::open(dir.path()).unwrap()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
