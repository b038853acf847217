//! What happens to a part's groups once they are read: SHA-256 of every
//! block, which is most of an install's work, runs on hasher threads (one
//! per core, at most [`MAX_HASHERS`]) while the reading thread reads the
//! next groups and a writer thread writes the verified ones.
//!
//! Group g goes to hasher g mod H and the writer takes the hashers'
//! answers round robin, so it sees the groups in bundle order: it writes
//! a group only after every one of its blocks matched, stops at the first
//! group with a bad block (whose error is the answer) and never writes a
//! group after it. The buffers circulate: the writer hands each written
//! group back to the reader, so a part never holds more than
//! [`buffers`] groups.

use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use ring::digest::{SHA256, digest};

use crate::{BLOCK_SIZE, Error, GROUP_BLOCKS, GROUP_SIZE};

/// Most hasher threads: a Raspberry Pi 4 has four cores (and no SHA
/// instructions, so it needs them all); more would only hold more groups.
const MAX_HASHERS: usize = 4;

/// One group of a part on its way through: its block-hash table (already
/// checked against the manifest), its data, and where it is.
pub(crate) struct Group {
    pub(crate) table: Vec<u8>,
    buf: Vec<u8>,
    /// Its number in the part.
    pub(crate) index: u64,
    /// Offset of its data in the part and in the bundle.
    pub(crate) part_at: u64,
    pub(crate) bundle_at: u64,
}

impl Group {
    pub(crate) fn new() -> Group {
        Group {
            table: Vec::with_capacity(GROUP_BLOCKS * 32),
            // Zeroed by the kernel as it is first touched, not by a memset.
            buf: vec![0; GROUP_SIZE],
            index: 0,
            part_at: 0,
            bundle_at: 0,
        }
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.buf
    }

    /// The group's data, `len` bytes (at most [`GROUP_SIZE`]) from now on.
    pub(crate) fn data_mut(&mut self, len: usize) -> &mut [u8] {
        // Within the capacity: no allocation. Only bytes beyond the
        // group's last length are zeroed (after a part's short last group).
        self.buf.resize(len.min(GROUP_SIZE), 0);
        &mut self.buf
    }
}

/// How many hasher threads check a part's groups on this machine.
pub(crate) fn hashers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(MAX_HASHERS)
}

/// Groups in circulation with `hashers` hashers: one being read, one per
/// hasher, one being written.
pub(crate) fn buffers(hashers: usize) -> usize {
    hashers + 2
}

/// A part's hashers and writer, running in a thread scope.
pub(crate) struct Pipeline<'scope> {
    /// Group g goes to `jobs[g % jobs.len()]`.
    jobs: Vec<SyncSender<Group>>,
    hashers: Vec<ScopedJoinHandle<'scope, ()>>,
    writer: ScopedJoinHandle<'scope, Result<u64, Error>>,
}

impl<'scope> Pipeline<'scope> {
    /// Starts `hashers` hashers and the writer of part `part` into `out`;
    /// written groups go back through `free`.
    pub(crate) fn start<'env, W: Write + Send>(
        scope: &'scope Scope<'scope, 'env>,
        part: &'scope str,
        hashers: usize,
        out: &'scope mut W,
        free: SyncSender<Group>,
    ) -> Pipeline<'scope> {
        let mut jobs = Vec::new();
        let mut checked = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..hashers.max(1) {
            let (job_tx, job_rx) = mpsc::sync_channel(1);
            let (checked_tx, checked_rx) = mpsc::sync_channel(1);
            handles.push(scope.spawn(move || check(part, job_rx, checked_tx)));
            jobs.push(job_tx);
            checked.push(checked_rx);
        }
        let writer = scope.spawn(move || write_in_order(part, out, checked, free));
        Pipeline {
            jobs,
            hashers: handles,
            writer,
        }
    }

    /// Hands a read group on; false when the pipeline has stopped (a bad
    /// block or a failed write: [`Pipeline::finish`] says which).
    pub(crate) fn send(&self, group: Group) -> bool {
        let k = (group.index % self.jobs.len() as u64) as usize;
        self.jobs[k].send(group).is_ok()
    }

    /// After the last group (or when reading stopped): waits for the
    /// groups sent to be checked and written. Answers the bytes written,
    /// or the first bad block or failed write in part order. A panic in
    /// a thread goes on here.
    pub(crate) fn finish(self) -> Result<u64, Error> {
        drop(self.jobs);
        for h in self.hashers {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
        self.writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// A hasher: checks every block of each group it gets against the
/// group's table; stops after a bad one.
fn check(part: &str, jobs: Receiver<Group>, checked: SyncSender<Result<Group, Error>>) {
    for group in jobs {
        let verdict = match first_bad(&group) {
            None => Ok(group),
            Some(i) => Err(mismatch(part, &group, i)),
        };
        let bad = verdict.is_err();
        if checked.send(verdict).is_err() || bad {
            return;
        }
    }
}

/// The first block of the group whose SHA-256 is not its table's entry.
fn first_bad(group: &Group) -> Option<usize> {
    group
        .data()
        .chunks(BLOCK_SIZE)
        .zip(group.table.chunks_exact(32))
        .position(|(block, hash)| digest(&SHA256, block).as_ref() != hash)
}

fn mismatch(part: &str, group: &Group, i: usize) -> Error {
    let start = group.part_at + (i * BLOCK_SIZE) as u64;
    let end = (start + BLOCK_SIZE as u64).min(group.part_at + group.data().len() as u64);
    Error::BlockMismatch {
        part: part.to_string(),
        block: group.index * GROUP_BLOCKS as u64 + i as u64,
        start,
        end,
        at: group.bundle_at + (i * BLOCK_SIZE) as u64,
    }
}

/// The writer: takes the hashers' answers in group order and writes each
/// verified group, until the groups end (a hasher's queue closes) or one
/// is bad; then flushes.
fn write_in_order<W: Write>(
    part: &str,
    out: &mut W,
    checked: Vec<Receiver<Result<Group, Error>>>,
    free: SyncSender<Group>,
) -> Result<u64, Error> {
    let mut written = 0u64;
    let failed = |offset: u64| {
        move |source| Error::Write {
            part: part.to_string(),
            offset,
            source,
        }
    };
    for k in (0..checked.len()).cycle() {
        let Ok(group) = checked[k].recv() else {
            break;
        };
        let group = group?;
        out.write_all(group.data()).map_err(failed(written))?;
        written += group.data().len() as u64;
        // The reader may have finished (or failed) already.
        let _ = free.send(group);
    }
    out.flush().map_err(failed(written))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(index: u64, len: usize) -> Group {
        let data: Vec<u8> = (0..len)
            .map(|i| (i * 7 % 251) as u8 ^ index as u8)
            .collect();
        let mut g = Group::new();
        g.table = data
            .chunks(BLOCK_SIZE)
            .flat_map(|b| digest(&SHA256, b).as_ref().to_vec())
            .collect();
        g.data_mut(len).copy_from_slice(&data);
        g.index = index;
        g.part_at = index * GROUP_SIZE as u64;
        g.bundle_at = 1000 + index * (GROUP_SIZE as u64 + 8192);
        g
    }

    /// Runs `groups` through a pipeline of `hashers`; answers what it
    /// answered and what was written.
    fn run(hashers: usize, groups: Vec<Group>) -> (Result<u64, Error>, Vec<u8>) {
        let mut out = Vec::new();
        let (free_tx, free_rx) = mpsc::sync_channel(groups.len());
        let r = std::thread::scope(|s| {
            let p = Pipeline::start(s, "rootfs", hashers, &mut out, free_tx);
            for g in groups {
                if !p.send(g) {
                    break;
                }
            }
            p.finish()
        });
        drop(free_rx);
        (r, out)
    }

    /// Whatever the number of hashers: the groups are written in order,
    /// and a bad block stops the writing before its group, naming the
    /// first bad block in part order (not the first one found).
    #[test]
    fn groups_are_written_in_order_and_the_first_bad_block_stops_them() {
        for hashers in 1..=MAX_HASHERS {
            let groups: Vec<Group> = (0..7).map(|g| group(g, GROUP_SIZE)).collect();
            let whole: Vec<u8> = groups.iter().flat_map(|g| g.data().to_vec()).collect();
            let (r, out) = run(hashers, groups);
            assert_eq!(r.expect("good"), whole.len() as u64, "{hashers}");
            assert_eq!(out, whole, "{hashers} hashers");

            let mut groups: Vec<Group> = (0..7).map(|g| group(g, GROUP_SIZE)).collect();
            groups[3].data_mut(GROUP_SIZE)[5 * BLOCK_SIZE + 1] ^= 1;
            groups[5].data_mut(GROUP_SIZE)[2] ^= 1;
            let (r, out) = run(hashers, groups);
            match r {
                Err(Error::BlockMismatch {
                    block, start, at, ..
                }) => {
                    assert_eq!(block, 3 * GROUP_BLOCKS as u64 + 5, "{hashers}");
                    assert_eq!(start, (3 * GROUP_SIZE + 5 * BLOCK_SIZE) as u64);
                    assert_eq!(at, 1000 + 3 * (GROUP_SIZE as u64 + 8192) + 5 * 4096);
                }
                other => panic!("{hashers} hashers: {other:?}"),
            }
            assert_eq!(out, whole[..3 * GROUP_SIZE], "{hashers} hashers");
        }
    }

    /// The short last block of a part is checked, and its error gives
    /// the part's end as the block's end.
    #[test]
    fn a_short_last_block_is_checked() {
        let mut last = group(1, 3 * BLOCK_SIZE + 100);
        last.data_mut(3 * BLOCK_SIZE + 100)[3 * BLOCK_SIZE + 99] ^= 1;
        let (r, out) = run(2, vec![group(0, GROUP_SIZE), last]);
        match r {
            Err(Error::BlockMismatch { block, end, .. }) => {
                assert_eq!(block, GROUP_BLOCKS as u64 + 3);
                assert_eq!(end, (GROUP_SIZE + 3 * BLOCK_SIZE + 100) as u64);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.len(), GROUP_SIZE);
    }
}
