//! The bundle's bytes and its manifest (docs/update.md has the same
//! layout for people). All integers are big-endian.
//!
//! ```text
//! offset  size  what
//! 0       8     magic "ARBUNDLE"
//! 8       4     format version (2)
//! 12      4     manifest length M (at most MAX_MANIFEST)
//! 16      M     manifest: JSON, UTF-8
//! 16+M    4     signature length S (at most MAX_SIGNATURE)
//! 20+M    S     minisign signature of the M manifest bytes (.minisig text)
//! 20+M+S        the parts, in manifest order; each part is its groups in
//!               order, each group = the SHA-256 of each of its blocks
//!               (32 bytes per block) followed by the group's data
//! ```
//!
//! A block is 4 KiB (the last block of a part may be shorter), a group is
//! 256 blocks (1 MiB). The manifest holds, per part, the SHA-256 of each
//! group's block-hash table, so every table is authenticated by the signed
//! manifest before its blocks are used and every block by its table: a
//! corrupt block is named before it is written, and the reader never holds
//! more than a few groups, whatever the size of the bundle. Every byte of a
//! part is hashed once: the part's identity (`root`) is the SHA-256 of its
//! block hashes, not of its bytes, so checking it needs no second pass.

use serde::{Deserialize, Serialize};

use crate::Error;

/// The first eight bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"ARBUNDLE";
/// The one format version this crate reads and writes. Format 1 (a
/// SHA-256 of each whole part, a second pass over every byte) is refused.
pub const FORMAT_VERSION: u32 = 2;
/// Bytes per hashed block.
pub const BLOCK_SIZE: usize = 4096;
/// Blocks per group (one block-hash table, one hash in the manifest).
pub const GROUP_BLOCKS: usize = 256;
/// Bytes of data per group.
pub const GROUP_SIZE: usize = BLOCK_SIZE * GROUP_BLOCKS;
/// Length of the fixed header (magic, format version, manifest length).
pub const HEADER_LEN: usize = 16;
/// Upper bound of the manifest: one 64-character hash per MiB of parts, so
/// 16 MiB covers far more than any slot; a larger length is not a bundle.
pub const MAX_MANIFEST: u32 = 16 << 20;
/// Upper bound of the minisign signature text (about 300 bytes in practice).
pub const MAX_SIGNATURE: u32 = 4096;

/// What a bundle says about itself; signed, so trusted once the signature
/// verifies, and only parsed after that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must equal the header's format version (the header is not signed).
    pub format: u32,
    /// The board the system in this bundle is built for (`qemu-x86_64`).
    pub board: String,
    /// The version of the system in this bundle (dotted numbers, `0.2.0`).
    pub version: String,
    /// Which build it is (commit, date): for people and logs, not compared.
    pub build_id: String,
    /// The lowest running version that may install this bundle (older
    /// nodes must step through an intermediate release first).
    pub min_from: String,
    /// Always BLOCK_SIZE; stated so a reader of the manifest alone knows.
    pub block_size: u32,
    /// Always GROUP_BLOCKS.
    pub group_blocks: u32,
    /// Minisign public keys (base64 line) the system in this bundle trusts
    /// in addition to the keys in its image, for key rotation
    /// (docs/update.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_keys: Vec<String>,
    /// The slot's contents, in bundle order.
    pub parts: Vec<Part>,
}

/// One file of the slot: the rootfs squashfs or a boot file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// `rootfs`, or the boot file's name on the boot partition
    /// (`vmlinuz`, `initrd.img`, `kernel8.img`, ...).
    pub name: String,
    /// Bytes of data (without the block-hash tables).
    pub size: u64,
    /// The part's identity: the SHA-256 of its block hashes in order (every
    /// group's block-hash table concatenated), lowercase hex.
    pub root: String,
    /// SHA-256 of each group's block-hash table, lowercase hex.
    pub groups: Vec<String>,
}

impl Part {
    /// How many groups a part of `size` bytes has.
    pub fn group_count(size: u64) -> u64 {
        size.div_ceil(GROUP_SIZE as u64)
    }

    /// Blocks in group `group` of a part of `size` bytes.
    pub fn blocks_in_group(size: u64, group: u64) -> usize {
        let start = group * GROUP_SIZE as u64;
        let len = (size - start).min(GROUP_SIZE as u64);
        len.div_ceil(BLOCK_SIZE as u64) as usize
    }

    /// Bytes the part takes in the bundle: data plus its hash tables.
    pub fn stored_len(&self) -> u64 {
        self.size + self.size.div_ceil(BLOCK_SIZE as u64) * 32
    }
}

impl Manifest {
    /// Parses and checks a manifest whose signature has been verified.
    /// Everything the streaming reader relies on is checked here, so it
    /// never meets an inconsistent part.
    pub fn parse(bytes: &[u8], header_format: u32) -> Result<Manifest, Error> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::Manifest(format!("not a manifest: {e}")))?;
        m.check(header_format)?;
        Ok(m)
    }

    /// The consistency rules of a manifest (also run by the builder).
    pub fn check(&self, header_format: u32) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Manifest(what));
        if self.format != header_format {
            return bad(format!(
                "format {} differs from the header's {header_format}",
                self.format
            ));
        }
        if self.block_size as usize != BLOCK_SIZE || self.group_blocks as usize != GROUP_BLOCKS {
            return bad(format!(
                "block size {} x {} per group, expected {BLOCK_SIZE} x {GROUP_BLOCKS}",
                self.block_size, self.group_blocks
            ));
        }
        if !valid_name(&self.board) {
            return bad(format!("board {:?} is not a board name", self.board));
        }
        crate::Version::parse(&self.version)?;
        crate::Version::parse(&self.min_from)?;
        if self.parts.is_empty() {
            return bad("it has no parts".into());
        }
        for (i, p) in self.parts.iter().enumerate() {
            if !valid_name(&p.name) {
                return bad(format!("part {i}: {:?} is not a part name", p.name));
            }
            if self.parts[..i].iter().any(|q| q.name == p.name) {
                return bad(format!("part {:?} appears twice", p.name));
            }
            if !is_hash(&p.root) {
                return bad(format!("part {}: root is not a SHA-256 in hex", p.name));
            }
            if p.groups.len() as u64 != Part::group_count(p.size) {
                return bad(format!(
                    "part {}: {} group hashes for {} bytes, expected {}",
                    p.name,
                    p.groups.len(),
                    p.size,
                    Part::group_count(p.size)
                ));
            }
            if let Some(g) = p.groups.iter().position(|h| !is_hash(h)) {
                return bad(format!(
                    "part {}: group {g} is not a SHA-256 in hex",
                    p.name
                ));
            }
        }
        if !self.parts.iter().any(|p| p.name == "rootfs") {
            return bad("it has no rootfs part".into());
        }
        for (i, k) in self.add_keys.iter().enumerate() {
            crate::keys::TrustedKey::from_base64(k)
                .map_err(|e| Error::Manifest(format!("add_keys[{i}]: {e}")))?;
        }
        Ok(())
    }

    /// The manifest's bytes as the builder writes (and the key signs) them.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and numbers cannot fail.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Board and part names: what may safely become a file name.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
