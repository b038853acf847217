//! Where a part of an update goes: a slot's partition (or its stand-in
//! file) or a boot file, written front to back through the page cache
//! with the write-out kept going behind the writes.
//!
//! Each write starts the write-out of its bytes at once
//! (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`, which does not wait),
//! so the disk works while the reader checks the next groups. Once the
//! writes are [`WRITE_BEHIND`] ahead of a range, the writer waits for
//! that range to reach the disk and drops it from the page cache
//! (`POSIX_FADV_DONTNEED`): the disk always has that much in flight,
//! and an install never fills the page cache (pushing the node's own
//! files out of it) with a system nobody reads until the next boot.
//! Direct I/O (`O_DIRECT`), which keeps the page cache out too, has one
//! write in flight at a time: on the benchmark's disk, plain 1 MiB writes
//! went about twice as fast this way, and installs 19–40 % faster
//! (docs/update.md). The `fsync`
//! after the last part ([`crate::install::sync_together`]) is still what
//! makes a part durable: it flushes the disk's cache.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::install::{InstallError, io_err};

/// How far behind the writes a range is waited for and dropped from the
/// page cache.
pub(crate) const WRITE_BEHIND: u64 = 16 << 20;

/// Page size the ranges given to the kernel are rounded to.
const PAGE: u64 = 4096;

/// A part's destination, opened.
pub(crate) struct Dest {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
}

impl Dest {
    /// A boot file, made anew.
    pub(crate) fn create(path: PathBuf) -> Result<Dest, InstallError> {
        let file = File::create(&path).map_err(io_err(format!("creating {}", path.display())))?;
        Ok(Dest { path, file })
    }

    /// A rootfs partition (or its stand-in file), written in place.
    pub(crate) fn device(dev: &Path) -> Result<Dest, InstallError> {
        let file = OpenOptions::new()
            .write(true)
            .open(dev)
            .map_err(io_err(format!("opening {}", dev.display())))?;
        Ok(Dest {
            path: dev.to_path_buf(),
            file,
        })
    }
}

/// A destination being written.
pub(crate) struct SlotFile {
    file: File,
    /// Offset of the next write.
    at: u64,
    /// Everything before it is on the disk and out of the page cache.
    settled: u64,
}

impl SlotFile {
    pub(crate) fn new(dest: Dest) -> (PathBuf, SlotFile) {
        let out = SlotFile {
            file: dest.file,
            at: 0,
            settled: 0,
        };
        (dest.path, out)
    }

    /// The descriptor to sync.
    pub(crate) fn into_file(self) -> File {
        self.file
    }
}

impl Write for SlotFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.at)?;
        sync_range(&self.file, self.at, n as u64, libc::SYNC_FILE_RANGE_WRITE)?;
        self.at += n as u64;
        let upto = settle_upto(self.at, self.settled);
        if upto > self.settled {
            let len = upto - self.settled;
            sync_range(
                &self.file,
                self.settled,
                len,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            )?;
            drop_cached(&self.file, self.settled, len);
            self.settled = upto;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where the settled range may end after a write ending at `at`: a page
/// boundary [`WRITE_BEHIND`] behind it, never before `settled`.
fn settle_upto(at: u64, settled: u64) -> u64 {
    (at.saturating_sub(WRITE_BEHIND) / PAGE * PAGE).max(settled)
}

fn sync_range(file: &File, at: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
    let (Ok(at), Ok(len)) = (i64::try_from(at), i64::try_from(len)) else {
        return Ok(());
    };
    // SAFETY: a system call on a descriptor `file` keeps open; no memory
    // is passed to it.
    let r = unsafe { libc::sync_file_range(file.as_raw_fd(), at, len, flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Drops the clean pages of a range from the page cache (`len` 0: to the
/// end). Advice only: a refusal changes nothing that was written.
pub(crate) fn drop_cached(file: &File, at: u64, len: u64) {
    let (Ok(at), Ok(len)) = (i64::try_from(at), i64::try_from(len)) else {
        return;
    };
    // SAFETY: as above.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), at, len, libc::POSIX_FADV_DONTNEED) };
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Nothing settles until the writes are [`WRITE_BEHIND`] ahead; then
    /// the settled range follows them at that distance, on page
    /// boundaries, and never goes back.
    #[test]
    fn the_settled_range_trails_the_writes() {
        assert_eq!(settle_upto(0, 0), 0);
        assert_eq!(settle_upto(WRITE_BEHIND, 0), 0);
        assert_eq!(settle_upto(WRITE_BEHIND + MIB, 0), MIB);
        assert_eq!(settle_upto(WRITE_BEHIND + MIB + 100, 0), MIB);
        assert_eq!(settle_upto(WRITE_BEHIND + MIB + PAGE + 1, 0), MIB + PAGE);
        assert_eq!(settle_upto(WRITE_BEHIND + MIB, 2 * MIB), 2 * MIB);
    }

    /// A part longer than [`WRITE_BEHIND`], written in groups and a short
    /// tail: the file holds every byte in order, and all but the last
    /// [`WRITE_BEHIND`] are settled before the fsync.
    #[test]
    fn every_byte_arrives_in_order_and_all_but_the_tail_settle() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("slot");
        std::fs::write(&path, b"").expect("stand-in");
        let (_, mut out) = SlotFile::new(Dest::device(&path).expect("open"));
        let len = (WRITE_BEHIND + 3 * MIB) as usize + 100;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        for group in data.chunks(MIB as usize) {
            out.write_all(group).expect("write");
        }
        assert_eq!(out.settled, (len as u64 - WRITE_BEHIND) / PAGE * PAGE);
        out.into_file().sync_all().expect("sync");
        assert_eq!(std::fs::read(&path).expect("read"), data);
    }
}
