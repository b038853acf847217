//! The streaming reader: header, manifest and signature first (nothing of
//! a part is looked at before the signature verifies), then each part one
//! group at a time, every block checked before the group is written.

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver};

use ring::digest::{Context, SHA256, digest};

use crate::format::{self, HEADER_LEN, MAGIC, MAX_MANIFEST, MAX_SIGNATURE};
use crate::pipeline::{self, Group, Pipeline};
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
    /// Group buffers kept from one part to the next (`crate::pipeline`).
    pool: Vec<Group>,
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
            pool: Vec::new(),
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
    /// hashed once, on hasher threads (`crate::pipeline`), while this
    /// thread reads the next groups and a writer thread writes the
    /// verified ones, so reading, checking and writing overlap. On an
    /// error `out` may hold the verified groups before it; the caller
    /// marks the slot invalid. Answers the part's size.
    pub fn copy_part<W: Write + Send>(&mut self, out: &mut W) -> Result<u64, Error> {
        let part = self.next_part().ok_or(Error::NoMoreParts)?.clone();
        let hashers = pipeline::hashers();
        let count = pipeline::buffers(hashers);
        let (free_tx, free_rx) = mpsc::sync_channel::<Group>(count);
        let mut pool = std::mem::take(&mut self.pool);
        pool.resize_with(count, Group::new);
        for group in pool {
            // The channel holds `count` and nothing else sends yet.
            let _ = free_tx.send(group);
        }
        let (read, wrote) = std::thread::scope(|s| {
            let pipe = Pipeline::start(s, &part.name, hashers, out, free_tx);
            let read = self.read_groups(&part, &pipe, &free_rx);
            (read, pipe.finish())
        });
        // The groups written come back for the next part.
        self.pool = free_rx.try_iter().collect();
        // A bad block or failed write comes before anything the reader
        // met after it: its group was read first.
        let written = wrote?;
        read?;
        self.next += 1;
        Ok(written)
    }

    /// Reads the groups of `part`, checks each one's block-hash table and
    /// hands the group to the pipeline. Stops early, answering Ok, when
    /// the pipeline has stopped (its error is the one to report).
    fn read_groups(
        &mut self,
        part: &Part,
        pipe: &Pipeline<'_>,
        free: &Receiver<Group>,
    ) -> Result<(), Error> {
        let name = &part.name;
        let mut root = Context::new(&SHA256);
        let mut done = 0u64;
        for (g, expected) in part.groups.iter().enumerate() {
            let g = g as u64;
            let Ok(mut group) = free.recv() else {
                return Ok(());
            };
            let blocks = Part::blocks_in_group(part.size, g);
            let table_at = self.offset;
            group.table.resize(blocks * 32, 0);
            self.read_full(&mut group.table, || {
                format!("the block-hash table of group {g} of part {name}")
            })?;
            if hex(digest(&SHA256, &group.table).as_ref()) != *expected {
                return Err(Error::GroupMismatch {
                    part: name.clone(),
                    group: g,
                    at: table_at,
                });
            }
            root.update(&group.table);
            let len = (part.size - done).min(GROUP_SIZE as u64) as usize;
            let data_at = self.offset;
            let read = self.read_full(group.data_mut(len), || name.clone());
            if let Err(Error::Truncated { at, .. }) = read {
                let block = g * GROUP_BLOCKS as u64 + (at - data_at) / BLOCK_SIZE as u64;
                return Err(Error::Truncated {
                    what: format!("block {block} of part {name}"),
                    at,
                });
            }
            read?;
            group.index = g;
            group.part_at = done;
            group.bundle_at = data_at;
            done += len as u64;
            if !pipe.send(group) {
                return Ok(());
            }
        }
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
