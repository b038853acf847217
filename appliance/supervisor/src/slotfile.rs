//! Where a part of an update goes: a slot's partition (or its stand-in
//! file) or a boot file, written front to back.
//!
//! A rootfs partition is also opened for direct I/O (`O_DIRECT`): its
//! blocks go from the verified group buffers to the disk without a copy
//! into the page cache, which the install would otherwise fill (and push
//! the node's own files out of) with a system nobody reads until the next
//! boot. The file systems and devices that refuse it (tmpfs, some FUSE and
//! network ones) are written through the page cache as before, and so is
//! anything not aligned to [`ALIGN`] (a part's last bytes), through a
//! second descriptor without the flag.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::install::{InstallError, io_err};

/// Alignment of memory, length and offset that direct I/O takes on every
/// Linux block device and file system (logical blocks of 512 or 4096).
pub(crate) const ALIGN: usize = 4096;

/// A part's destination, opened.
pub(crate) struct Dest {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    direct: Option<File>,
}

impl Dest {
    /// A boot file, made anew and written through the page cache.
    pub(crate) fn create(path: PathBuf) -> Result<Dest, InstallError> {
        let file = File::create(&path).map_err(io_err(format!("creating {}", path.display())))?;
        Ok(Dest {
            path,
            file,
            direct: None,
        })
    }

    /// A rootfs partition (or its stand-in file), written in place, with
    /// direct I/O where the device takes it.
    pub(crate) fn device(dev: &Path) -> Result<Dest, InstallError> {
        let file = OpenOptions::new()
            .write(true)
            .open(dev)
            .map_err(io_err(format!("opening {}", dev.display())))?;
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(dev)
            .ok();
        Ok(Dest {
            path: dev.to_path_buf(),
            file,
            direct,
        })
    }
}

/// A destination being written. Each write through the page cache also
/// starts the write-out of its bytes (`sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`, which does not wait for the disk), so the disk
/// works while the reader checks the next groups, and the `fsync` after
/// the last part has little left to wait for (it is still what makes the
/// part durable, direct writes included: it flushes the disk's cache).
pub(crate) struct SlotFile {
    file: File,
    direct: Option<File>,
    /// Offset of the next write.
    at: u64,
    /// Bytes written with direct I/O.
    pub(crate) direct_bytes: u64,
}

impl SlotFile {
    pub(crate) fn new(dest: Dest) -> (PathBuf, SlotFile) {
        let out = SlotFile {
            file: dest.file,
            direct: dest.direct,
            at: 0,
            direct_bytes: 0,
        };
        (dest.path, out)
    }

    /// The descriptor to sync (the direct one is closed here).
    pub(crate) fn into_file(self) -> File {
        self.file
    }

    /// Writes what it can of `buf` with direct I/O: the longest prefix of
    /// whole [`ALIGN`] blocks, when `buf` and the offset are aligned.
    /// `None` when nothing of it can go that way (or the device refused,
    /// after which everything goes through the page cache).
    fn write_direct(&mut self, buf: &[u8]) -> Option<io::Result<usize>> {
        let d = self.direct.as_ref()?;
        let whole = buf.len() / ALIGN * ALIGN;
        if whole == 0
            || !buf.as_ptr().addr().is_multiple_of(ALIGN)
            || !self.at.is_multiple_of(ALIGN as u64)
        {
            return None;
        }
        match d.write_at(&buf[..whole], self.at) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.direct = None;
                None
            }
            r => Some(r),
        }
    }
}

impl Write for SlotFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(r) = self.write_direct(buf) {
            let n = r?;
            self.at += n as u64;
            self.direct_bytes += n as u64;
            return Ok(n);
        }
        let n = self.file.write_at(buf, self.at)?;
        start_writeout(&self.file, self.at, n)?;
        self.at += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn start_writeout(file: &File, at: u64, len: usize) -> io::Result<()> {
    let (Ok(at), Ok(len)) = (i64::try_from(at), i64::try_from(len)) else {
        return Ok(());
    };
    // SAFETY: a system call on a descriptor `file` keeps open; no memory
    // is passed to it.
    let r =
        unsafe { libc::sync_file_range(file.as_raw_fd(), at, len, libc::SYNC_FILE_RANGE_WRITE) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned(len: usize) -> (Vec<u8>, usize) {
        let v = vec![7u8; len + ALIGN];
        let start = (ALIGN - v.as_ptr().addr() % ALIGN) % ALIGN;
        (v, start)
    }

    /// An empty stand-in disk file, opened as a rootfs partition.
    fn standin() -> (tempfile::TempDir, PathBuf, SlotFile) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("slot");
        std::fs::write(&path, b"").expect("stand-in");
        let (_, out) = SlotFile::new(Dest::device(&path).expect("open"));
        (dir, path, out)
    }

    /// Aligned blocks go with direct I/O where the file system takes it,
    /// the unaligned tail through the page cache; the file holds every
    /// byte in order either way.
    #[test]
    fn aligned_blocks_go_direct_and_the_tail_through_the_page_cache() {
        let (_dir, path, mut out) = standin();
        let could = out.direct.is_some();
        let data: Vec<u8> = (0..3 * ALIGN + 100).map(|i| (i % 251) as u8).collect();
        let (mut v, s) = aligned(data.len());
        v[s..s + data.len()].copy_from_slice(&data);
        out.write_all(&v[s..s + data.len()]).expect("write");
        let direct = out.direct_bytes;
        out.into_file().sync_all().expect("sync");
        assert_eq!(std::fs::read(&path).expect("read"), data);
        // tmpfs refuses O_DIRECT: then nothing went that way.
        assert_eq!(direct, if could { 3 * ALIGN as u64 } else { 0 });
    }

    /// A buffer that does not start on a block boundary goes through the
    /// page cache whole.
    #[test]
    fn an_unaligned_buffer_goes_through_the_page_cache() {
        let (_dir, path, mut out) = standin();
        let (v, s) = aligned(2 * ALIGN + 1);
        out.write_all(&v[s + 1..s + 1 + 2 * ALIGN]).expect("write");
        assert_eq!(out.direct_bytes, 0);
        out.into_file().sync_all().expect("sync");
        assert_eq!(std::fs::read(&path).expect("read").len(), 2 * ALIGN);
    }
}
