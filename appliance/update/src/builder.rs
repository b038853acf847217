//! Making a bundle, in two steps so the signing key can stay offline:
//! `describe_part` reads each part once for the manifest; the manifest is
//! signed elsewhere (`minisign -S`, on whichever machine holds the key);
//! `write_bundle` then packs the signed manifest with the parts, reading
//! them again and refusing any that changed in between.

use std::io::{self, Read, Write};

use ring::digest::{Context, SHA256, digest};

use crate::format::{HEADER_LEN, MAGIC, MAX_MANIFEST, MAX_SIGNATURE};
use crate::{BLOCK_SIZE, Error, FORMAT_VERSION, GROUP_SIZE, Manifest, Part, hex};

/// Reads a part once and answers its manifest entry.
pub fn describe_part<R: Read>(name: &str, mut input: R) -> Result<Part, Error> {
    let mut data = vec![0u8; GROUP_SIZE];
    let mut root = Context::new(&SHA256);
    let mut groups = Vec::new();
    let mut size = 0u64;
    loop {
        let len = read_group(&mut input, &mut data, name)?;
        if len == 0 {
            break;
        }
        let table = block_table(&data[..len]);
        root.update(&table);
        groups.push(hex(digest(&SHA256, &table).as_ref()));
        size += len as u64;
        if len < GROUP_SIZE {
            break;
        }
    }
    Ok(Part {
        name: name.to_string(),
        size,
        root: hex(root.finish().as_ref()),
        groups,
    })
}

/// What `write_bundle` wrote.
#[derive(Debug, Clone, Copy)]
pub struct BundleInfo {
    /// Bytes of the whole bundle.
    pub size: u64,
}

/// Writes a bundle: the header, `manifest` exactly as signed, its minisign
/// `signature`, then each part from the reader `open` gives for it. A part
/// that no longer matches the manifest (size or any group) is refused, so
/// a bundle this writes always verifies with the key that signed the
/// manifest. It does not check the signature: verify the result with the
/// matching public key (`BundleReader`).
pub fn write_bundle<W, R, F>(
    mut out: W,
    manifest: &[u8],
    signature: &str,
    mut open: F,
) -> Result<BundleInfo, Error>
where
    W: Write,
    R: Read,
    F: FnMut(&Part) -> io::Result<R>,
{
    let parsed = Manifest::parse(manifest, FORMAT_VERSION)?;
    let too_large = |what, len: usize, max| Error::TooLarge {
        what,
        len: u32::try_from(len).unwrap_or(u32::MAX),
        max,
    };
    let m_len = u32::try_from(manifest.len())
        .ok()
        .filter(|l| *l <= MAX_MANIFEST)
        .ok_or_else(|| too_large("manifest", manifest.len(), MAX_MANIFEST))?;
    let s_len = u32::try_from(signature.len())
        .ok()
        .filter(|l| *l <= MAX_SIGNATURE)
        .ok_or_else(|| too_large("signature", signature.len(), MAX_SIGNATURE))?;
    let mut w = Counting {
        out: &mut out,
        n: 0,
    };
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    header.extend_from_slice(&m_len.to_be_bytes());
    w.put(&header)?;
    w.put(manifest)?;
    w.put(&s_len.to_be_bytes())?;
    w.put(signature.as_bytes())?;
    let mut data = vec![0u8; GROUP_SIZE];
    for part in &parsed.parts {
        let mut input = open(part).map_err(|source| Error::Io {
            what: format!("opening part {}", part.name),
            source,
        })?;
        let changed = |reason: String| Error::PartInput {
            part: part.name.clone(),
            reason: format!("{reason}; it changed since the manifest was made"),
        };
        let mut left = part.size;
        for (g, expected) in part.groups.iter().enumerate() {
            let want = left.min(GROUP_SIZE as u64) as usize;
            let len = read_group(&mut input, &mut data[..want], &part.name)?;
            if len < want {
                return Err(changed(format!("it is shorter than {} bytes", part.size)));
            }
            let table = block_table(&data[..len]);
            if hex(digest(&SHA256, &table).as_ref()) != *expected {
                return Err(changed(format!("group {g} differs")));
            }
            w.put(&table)?;
            w.put(&data[..len])?;
            left -= len as u64;
        }
        if read_group(&mut input, &mut data[..1], &part.name)? != 0 {
            return Err(changed(format!("it is longer than {} bytes", part.size)));
        }
    }
    w.out.flush().map_err(|source| Error::Io {
        what: "writing the bundle".into(),
        source,
    })?;
    Ok(BundleInfo { size: w.n })
}

/// The SHA-256 of each block of one group, concatenated.
fn block_table(group: &[u8]) -> Vec<u8> {
    let mut table = Vec::with_capacity(group.len().div_ceil(BLOCK_SIZE) * 32);
    for block in group.chunks(BLOCK_SIZE) {
        table.extend_from_slice(digest(&SHA256, block).as_ref());
    }
    table
}

/// Fills `buf` as far as the input goes; answers how much it got.
fn read_group<R: Read>(input: &mut R, buf: &mut [u8], part: &str) -> Result<usize, Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Io {
                    what: format!("reading part {part}"),
                    source,
                });
            }
        }
    }
    Ok(filled)
}

struct Counting<'a, W> {
    out: &'a mut W,
    n: u64,
}

impl<W: Write> Counting<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.out.write_all(bytes).map_err(|source| Error::Io {
            what: format!("writing the bundle at byte {}", self.n),
            source,
        })?;
        self.n += bytes.len() as u64;
        Ok(())
    }
}
