//! Trusted update keys and the manifest's signature check. Keys are
//! minisign public keys (`minisign -G` writes them; the image carries them
//! in `/etc/alpharen/update-keys/*.pub`). The caller reads the files and
//! hands their text over: this crate opens nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minisign_verify::{PublicKey, Signature};

use crate::Error;

/// A minisign key id as minisign prints it (`minisign -G`, the `.pub`
/// file's comment): the eight id bytes as a little-endian number in hex,
/// without leading zeros (minisign prints it with `PRIX64`), so the id in
/// a message is the one the user sees in their key file.
pub fn key_id_string(id: &[u8; 8]) -> String {
    format!("{:X}", u64::from_le_bytes(*id))
}

/// One public key the node accepts bundles from.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// Where it came from (a file name), for messages.
    pub name: String,
    /// Its key id as minisign prints it.
    pub id: String,
    base64: String,
    key: PublicKey,
}

impl TrustedKey {
    /// The base64 line of a key (the second line of a `.pub` file, or an
    /// entry of the manifest's `add_keys`).
    pub fn from_base64(line: &str) -> Result<TrustedKey, String> {
        let line = line.trim();
        let key = PublicKey::from_base64(line).map_err(|e| format!("not a minisign key: {e}"))?;
        let raw = STANDARD
            .decode(line)
            .map_err(|e| format!("not a minisign key: {e}"))?;
        let id: [u8; 8] = raw
            .get(2..10)
            .and_then(|s| s.try_into().ok())
            .ok_or("not a minisign key: too short")?;
        Ok(TrustedKey {
            name: format!("key {}", key_id_string(&id)),
            id: key_id_string(&id),
            base64: line.to_string(),
            key,
        })
    }

    /// The key's base64 line, as `add_keys` holds it.
    pub fn base64(&self) -> &str {
        &self.base64
    }

    /// A `.pub` file's text: an `untrusted comment:` line, then the key.
    pub fn from_pub_file(name: &str, text: &str) -> Result<TrustedKey, Error> {
        let bad = |reason: String| Error::Key {
            name: name.to_string(),
            reason,
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| bad("no key line".into()))?;
        let mut k = TrustedKey::from_base64(line).map_err(bad)?;
        k.name = name.to_string();
        Ok(k)
    }
}

/// The keys a node accepts bundles from.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<TrustedKey>,
}

impl TrustedKeys {
    pub fn new(keys: Vec<TrustedKey>) -> TrustedKeys {
        TrustedKeys { keys }
    }

    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// Adds a key unless one with the same id is there already.
    pub fn add(&mut self, key: TrustedKey) {
        if !self.keys.iter().any(|k| k.id == key.id) {
            self.keys.push(key);
        }
    }

    /// Checks `signature` (minisign `.minisig` text) over `manifest` and
    /// answers the key that made it. Only pre-hashed signatures (what
    /// minisign makes by default since 0.8) are accepted: legacy ones sign
    /// the raw message and are refused, as minisign itself does by default.
    pub fn verify(&self, manifest: &[u8], signature: &str) -> Result<&TrustedKey, Error> {
        let sig = Signature::decode(signature)
            .map_err(|e| Error::SignatureFormat(format!("not a minisign signature: {e}")))?;
        let signer = signature_key_id(signature)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == signer)
            .ok_or_else(|| Error::UntrustedKey {
                key_id: signer.clone(),
            })?;
        key.key
            .verify(manifest, &sig, false)
            .map_err(|e| Error::BadSignature {
                key: key.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(key)
    }
}

/// The key id a signature names (bytes 2..10 of its second line), so an
/// unknown signer is told apart from a bad signature.
fn signature_key_id(signature: &str) -> Result<String, Error> {
    let line = signature
        .lines()
        .nth(1)
        .ok_or_else(|| Error::SignatureFormat("no signature line".into()))?;
    let raw = STANDARD
        .decode(line.trim())
        .map_err(|e| Error::SignatureFormat(format!("signature line is not base64: {e}")))?;
    let id: [u8; 8] = raw
        .get(2..10)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| Error::SignatureFormat("signature line too short".into()))?;
    Ok(key_id_string(&id))
}
