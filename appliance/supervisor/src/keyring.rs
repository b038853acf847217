//! The update keys a node trusts: the image's (`*.pub` in
//! `/etc/alpharen/update-keys/`, read-only in the squashfs) and the ones
//! installed bundles added with their manifest's `add_keys`, kept on the
//! data partition (`<state>/update/keys/<KEY ID>.pub`) so that key
//! rotation reaches a node whose image does not carry the new key yet,
//! and survives a fall back to the old slot.
//!
//! A bundle's keys are kept only once the whole bundle is verified and
//! written (signature by a trusted key, every block, the end of the
//! bundle), just before its slot is armed: a bundle that fails anywhere
//! adds nothing. Kept keys accumulate; a later bundle does not remove one.

use std::path::{Path, PathBuf};

use alpharen_update::{TrustedKey, TrustedKeys};

use crate::install::InstallError;

/// Where the trusted update keys are in the image.
pub const KEYS_DIR: &str = "/etc/alpharen/update-keys";
/// Overrides [`KEYS_DIR`] (tests, development hosts).
pub const KEYS_ENV: &str = "ALPHAREN_UPDATE_KEYS";
/// Where the keys bundles added are kept, under the state directory.
const KEPT_DIR: &str = "update/keys";

/// The directory of kept keys in a state directory.
pub fn kept_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(KEPT_DIR)
}

fn image_dir() -> PathBuf {
    std::env::var_os(KEYS_ENV).map_or_else(|| PathBuf::from(KEYS_DIR), PathBuf::from)
}

/// The trusted keys: the image's and those kept in `kept`.
pub fn trusted_keys(kept: &Path) -> Result<TrustedKeys, InstallError> {
    trusted_keys_in(&image_dir(), kept)
}

/// Every `*.pub` in `image` (which must exist) and in `kept` (which may
/// not, before a bundle added a key); at least one in all.
pub fn trusted_keys_in(image: &Path, kept: &Path) -> Result<TrustedKeys, InstallError> {
    let mut keys = TrustedKeys::default();
    read_keys(image, &mut keys)?;
    if kept.exists() {
        read_keys(kept, &mut keys)?;
    }
    if keys.keys().is_empty() {
        return Err(InstallError::Unsupported(format!(
            "no update key (*.pub) in {} or {}: this node accepts no bundle",
            image.display(),
            kept.display()
        )));
    }
    Ok(keys)
}

fn read_keys(dir: &Path, keys: &mut TrustedKeys) -> Result<(), InstallError> {
    let io = |what: String| move |source| InstallError::Io { what, source };
    let list = std::fs::read_dir(dir)
        .map_err(io(format!("reading the update keys in {}", dir.display())))?;
    let mut files: Vec<PathBuf> = list
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    files.sort();
    for path in files {
        let text =
            std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        let name = path.display().to_string();
        keys.add(TrustedKey::from_pub_file(&name, &text)?);
    }
    Ok(())
}

/// Keeps the keys a verified bundle adds (`add_keys`) in `kept`, each
/// written durably as a `.pub` file named by its key id; answers the ids
/// that were new. `from` says which bundle added them (the file's
/// comment).
pub fn keep(kept: &Path, add_keys: &[String], from: &str) -> Result<Vec<String>, InstallError> {
    let mut added = Vec::new();
    for line in add_keys {
        let key = TrustedKey::from_base64(line).map_err(|reason| {
            InstallError::Bundle(alpharen_update::Error::Manifest(format!(
                "add_keys: {reason}"
            )))
        })?;
        let path = kept.join(format!("{}.pub", key.id));
        if path.exists() {
            continue;
        }
        std::fs::create_dir_all(kept).map_err(|source| InstallError::Io {
            what: format!("creating {}", kept.display()),
            source,
        })?;
        let text = format!(
            "untrusted comment: minisign public key {}, added by {from}\n{}\n",
            key.id,
            key.base64()
        );
        crate::setup::write_durably(&path, text.as_bytes()).map_err(|source| InstallError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
        added.push(key.id);
    }
    Ok(added)
}
