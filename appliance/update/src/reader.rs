//! The streaming reader: header, manifest and signature first (nothing of
//! a part is looked at before the signature verifies), then each part one
//! group at a time, every block checked before the group is written.

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};

use ring::digest::{Context, SHA256, digest};

use crate::format::{self, HEADER_LEN, MAGIC, MAX_MANIFEST, MAX_SIGNATURE};
use crate::{
    Accept, BLOCK_SIZE, Error, FORMAT_VERSION, GROUP_BLOCKS, GROUP_SIZE, Manifest, Part, Running,
    TrustedKeys, decide, hex,
};

/// A bundle whose manifest is signed by a trusted key, positioned at its
/// next part.
pub struct BundleReader<R> {
    input: R,
    /// Bundle offset of the next byte `input` gives.
    offset: u64,
    manifest: Manifest,
    signer: String,
    next: usize,
    table: Vec<u8>,
}

impl<R: Read> BundleReader<R> {
    /// Reads the header, the manifest and its signature, and verifies the
    /// signature against `keys` before parsing the manifest: an unsigned
    /// manifest is never interpreted.
    pub fn open(input: R, keys: &TrustedKeys) -> Result<BundleReader<R>, Error> {
        let mut r = BundleReader {
            input,
            offset: 0,
            manifest: empty_manifest(),
            signer: String::new(),
            next: 0,
            table: Vec::new(),
        };
        let mut header = [0u8; HEADER_LEN];
        r.read_full(&mut header, || "the header".into())?;
        if &header[..8] != MAGIC {
            return Err(Error::NotABundle);
        }
        let format = be32(&header[8..12]);
        if format < FORMAT_VERSION {
            return Err(Error::OldFormat(format));
        }
        if format != FORMAT_VERSION {
            return Err(Error::UnknownFormat(format));
        }
        let manifest = r.read_sized(be32(&header[12..16]), "manifest", MAX_MANIFEST)?;
        let mut len = [0u8; 4];
        r.read_full(&mut len, || "the signature length".into())?;
        let sig = r.read_sized(be32(&len), "signature", MAX_SIGNATURE)?;
        let sig = String::from_utf8(sig)
            .map_err(|_| Error::SignatureFormat("the signature is not text".into()))?;
        r.signer = keys.verify(&manifest, &sig)?.name.clone();
        r.manifest = Manifest::parse(&manifest, format)?;
        Ok(r)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The name of the trusted key that signed the manifest.
    pub fn signer(&self) -> &str {
        &self.signer
    }

    /// The part `copy_part` copies next, if any.
    pub fn next_part(&self) -> Option<&Part> {
        self.manifest.parts.get(self.next)
    }

    /// Copies the next part into `out`, one verified group at a time: a
    /// group's block-hash table must match the manifest and each block its
    /// hash before any byte of the group is handed to `out`. Every byte is
    /// hashed once. A thread of its own writes the verified groups, so
    /// writing group N overlaps checking group N+1 (at most [`BUFFERS`]
    /// groups in memory). On an error `out` may hold the verified groups
    /// before it; the caller marks the slot invalid. Answers the part's
    /// size.
    pub fn copy_part<W: Write + Send>(&mut self, out: &mut W) -> Result<u64, Error> {
        let part = self.next_part().ok_or(Error::NoMoreParts)?.clone();
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 0..BUFFERS {
            // The channel holds BUFFERS and nothing else sends yet.
            let _ = free_tx.send(vec![0u8; GROUP_SIZE]);
        }
        let (checked, wrote) = std::thread::scope(|s| {
            let writer = s.spawn(move || write_groups(out, full_rx, free_tx));
            let checked = self.check_groups(&part, full_tx, free_rx);
            (checked, writer.join())
        });
        let wrote = wrote.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        checked?;
        let written = wrote.map_err(|(offset, source)| Error::Write {
            part: part.name.clone(),
            offset,
            source,
        })?;
        self.next += 1;
        Ok(written)
    }

    /// Reads and checks the groups of `part`, sending each verified group
    /// to the writer. Stops early, answering Ok, when the writer has gone
    /// (its error is the one to report).
    fn check_groups(
        &mut self,
        part: &Part,
        full: SyncSender<Vec<u8>>,
        free: Receiver<Vec<u8>>,
    ) -> Result<(), Error> {
        let name = &part.name;
        let mut root = Context::new(&SHA256);
        let mut done = 0u64;
        let mut table = std::mem::take(&mut self.table);
        for (g, expected) in part.groups.iter().enumerate() {
            let g = g as u64;
            let blocks = Part::blocks_in_group(part.size, g);
            let table_at = self.offset;
            table.resize(blocks * 32, 0);
            self.read_full(&mut table, || {
                format!("the block-hash table of group {g} of part {name}")
            })?;
            if hex(digest(&SHA256, &table).as_ref()) != *expected {
                return Err(Error::GroupMismatch {
                    part: name.clone(),
                    group: g,
                    at: table_at,
                });
            }
            root.update(&table);
            let Ok(mut data) = free.recv() else {
                return Ok(());
            };
            let len = (part.size - done).min(GROUP_SIZE as u64) as usize;
            data.resize(len, 0);
            let data_at = self.offset;
            let first_block = g * GROUP_BLOCKS as u64;
            let read = self.read_full(&mut data, || name.clone());
            if let Err(Error::Truncated { at, .. }) = read {
                let block = first_block + (at - data_at) / BLOCK_SIZE as u64;
                return Err(Error::Truncated {
                    what: format!("block {block} of part {name}"),
                    at,
                });
            }
            read?;
            if let Some((i, block)) = data
                .chunks(BLOCK_SIZE)
                .enumerate()
                .find(|(i, block)| digest(&SHA256, block).as_ref() != &table[i * 32..i * 32 + 32])
            {
                let start = done + (i * BLOCK_SIZE) as u64;
                return Err(Error::BlockMismatch {
                    part: name.clone(),
                    block: first_block + i as u64,
                    start,
                    end: start + block.len() as u64,
                    at: data_at + (i * BLOCK_SIZE) as u64,
                });
            }
            done += len as u64;
            if full.send(data).is_err() {
                return Ok(());
            }
        }
        self.table = table;
        if hex(root.finish().as_ref()) != part.root {
            return Err(Error::PartMismatch { part: name.clone() });
        }
        Ok(())
    }

    /// After the last part: the bundle must end there, so a bundle with
    /// something appended is not taken for a good one.
    pub fn finish(mut self) -> Result<(), Error> {
        if self.next < self.manifest.parts.len() {
            let part = self.manifest.parts[self.next].name.clone();
            return Err(Error::PartInput {
                part,
                reason: "not read yet; the bundle was not installed whole".into(),
            });
        }
        let mut byte = [0u8; 1];
        let at = self.offset;
        match self.read_some(&mut byte)? {
            0 => Ok(()),
            _ => Err(Error::TrailingData { at }),
        }
    }

    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            match self.input.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Read {
                        at: self.offset,
                        source,
                    });
                }
            }
        }
    }

    /// Fills `buf`; the input ending first is `Truncated` at the offset
    /// where it ended, inside `what`.
    /// The `len` bytes of `what` (whose length the bundle says), refused
    /// above `max` before anything is allocated.
    fn read_sized(&mut self, len: u32, what: &'static str, max: u32) -> Result<Vec<u8>, Error> {
        if len > max {
            return Err(Error::TooLarge { what, len, max });
        }
        let mut buf = vec![0u8; len as usize];
        self.read_full(&mut buf, || format!("the {what}"))?;
        Ok(buf)
    }

    fn read_full(&mut self, buf: &mut [u8], what: impl Fn() -> String) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.read_some(&mut buf[filled..])? {
                0 => {
                    return Err(Error::Truncated {
                        what: what(),
                        at: self.offset,
                    });
                }
                n => filled += n,
            }
        }
        Ok(())
    }
}

/// Group buffers of one part's copy: one being read and checked, one
/// queued, one being written.
const BUFFERS: usize = 3;

/// The writer thread of `copy_part`: writes each verified group it
/// receives and hands the buffer back, until the checker hangs up; then
/// flushes. Answers the bytes written, or where writing failed.
fn write_groups<W: Write>(
    out: &mut W,
    full: Receiver<Vec<u8>>,
    free: SyncSender<Vec<u8>>,
) -> Result<u64, (u64, io::Error)> {
    let mut written = 0u64;
    for data in full {
        out.write_all(&data).map_err(|e| (written, e))?;
        written += data.len() as u64;
        // The checker may have finished (or failed) already.
        let _ = free.send(data);
    }
    out.flush().map_err(|e| (written, e))?;
    Ok(written)
}

/// What `install` did.
#[derive(Debug, Clone)]
pub struct Installed {
    pub manifest: Manifest,
    pub accept: Accept,
    /// The trusted key that signed it.
    pub signer: String,
}

/// The whole install of one bundle, in order: signature, decision against
/// what the node runs, then every part into the writer `sink` gives for it
/// (the inactive slot's partition, a boot file), then the end of the
/// bundle. Nothing is asked of `sink` before the bundle is accepted.
pub fn install<R, W, F>(
    input: R,
    keys: &TrustedKeys,
    running: &Running,
    mut sink: F,
) -> Result<Installed, Error>
where
    R: Read,
    W: Write + Send,
    F: FnMut(&Part) -> io::Result<W>,
{
    let mut reader = BundleReader::open(input, keys)?;
    let accept = decide(reader.manifest(), running)?;
    while let Some(part) = reader.next_part().cloned() {
        let mut out = sink(&part).map_err(|source| Error::Io {
            what: format!("opening the destination of part {}", part.name),
            source,
        })?;
        reader.copy_part(&mut out)?;
    }
    let manifest = reader.manifest().clone();
    let signer = reader.signer().to_string();
    reader.finish()?;
    Ok(Installed {
        manifest,
        accept,
        signer,
    })
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A placeholder until the signed manifest is parsed.
fn empty_manifest() -> Manifest {
    Manifest {
        format: format::FORMAT_VERSION,
        board: String::new(),
        version: String::new(),
        build_id: String::new(),
        min_from: String::new(),
        block_size: BLOCK_SIZE as u32,
        group_blocks: GROUP_BLOCKS as u32,
        add_keys: Vec::new(),
        parts: Vec::new(),
    }
}
