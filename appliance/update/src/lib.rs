//! Signed update bundles (`alpharen-<board>-<version>.aru`): their format,
//! the signature check, the decision whether a node may install one, and a
//! streaming reader that copies each verified part into a writer.
//!
//! This crate does no I/O of its own: it reads the `Read` and writes the
//! `Write` it is given, so the supervisor can point it at the inactive
//! slot's partitions, and tests at vectors. It never holds more than
//! H + 2 groups (1 MiB of data each, with their hash tables), H being its
//! hasher threads (one per core, at most four), whatever the size of the
//! bundle. Slot state, trial boot and commit belong to the
//! supervisor; web, ctl and ssh only feed it bytes (docs/update.md).

mod builder;
mod format;
mod keys;
mod pipeline;
mod reader;
mod version;

#[cfg(test)]
mod tests;

use std::io;

pub use builder::{BundleInfo, describe_part, write_bundle};
pub use format::{
    BLOCK_SIZE, FORMAT_VERSION, GROUP_BLOCKS, GROUP_SIZE, MAGIC, MAX_MANIFEST, MAX_SIGNATURE,
    Manifest, Part, hex,
};
pub use keys::{TrustedKey, TrustedKeys, key_id_string};
pub use reader::{BundleReader, Installed, install};
pub use version::{Accept, Running, Version, decide};

/// Every way a bundle is refused or an install fails. Each message says
/// what was wrong and where (part, block, byte offset in the bundle), for
/// the operator who reads it in the console or `ctl`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an update bundle: it does not start with \"ARBUNDLE\"")]
    NotABundle,
    #[error("bundle format {0} is not one this firmware reads (it reads format {FORMAT_VERSION})")]
    UnknownFormat(u32),
    #[error(
        "bundle format {0} is older than this firmware reads (format {FORMAT_VERSION}): make the bundle again with this release's tools (make bundle)"
    )]
    OldFormat(u32),
    #[error("the bundle's {what} would be {len} bytes, more than {max}: not a bundle")]
    TooLarge {
        what: &'static str,
        len: u32,
        max: u32,
    },
    #[error("the bundle is truncated: it ends at byte {at}, inside {what}")]
    Truncated { what: String, at: u64 },
    #[error("reading the bundle at byte {at}: {source}")]
    Read { at: u64, source: io::Error },
    #[error("writing part {part} at byte {offset} of the part: {source}")]
    Write {
        part: String,
        offset: u64,
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("the bundle's signature is unreadable: {0}")]
    SignatureFormat(String),
    #[error("the bundle is signed by key {key_id}, which this node does not trust")]
    UntrustedKey { key_id: String },
    #[error("bad signature: the manifest does not verify with {key}: {reason}")]
    BadSignature { key: String, reason: String },
    #[error("trusted key {name}: {reason}")]
    Key { name: String, reason: String },
    #[error("bad manifest: {0}")]
    Manifest(String),
    #[error("{0:?} is not a version (one to four dotted numbers, such as 0.2.0)")]
    Version(String),
    #[error("the bundle is for board {bundle}, this node is a {node}")]
    WrongBoard { bundle: String, node: String },
    #[error("this node runs {node}; bundle {bundle} installs only from {min_from} or later")]
    TooOld {
        node: String,
        min_from: String,
        bundle: String,
    },
    #[error("downgrade refused: the bundle is version {bundle}, this node runs {node}")]
    Downgrade { bundle: String, node: String },
    #[error(
        "part {part}: the block-hash table of group {group} (bundle byte {at}) does not match the manifest"
    )]
    GroupMismatch { part: String, group: u64, at: u64 },
    #[error(
        "part {part}: block {block} (part bytes {start}..{end}, bundle byte {at}) is corrupt: its SHA-256 does not match"
    )]
    BlockMismatch {
        part: String,
        block: u64,
        start: u64,
        end: u64,
        at: u64,
    },
    #[error("part {part}: the root of its block hashes does not match the manifest")]
    PartMismatch { part: String },
    #[error("the bundle goes on after its last part, at byte {at}")]
    TrailingData { at: u64 },
    #[error("every part has been read already")]
    NoMoreParts,
    #[error("part {part}: {reason}")]
    PartInput { part: String, reason: String },
}
