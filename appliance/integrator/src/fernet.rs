//! Fernet tokens, as Zato's `self.crypto.encrypt`/`decrypt` make them
//! (with `cryptography`'s Fernet): version 0x80, the time in seconds,
//! a random IV, AES-128-CBC with PKCS#7 padding, HMAC-SHA256 over all of
//! it, in URL-safe base64. AES-CBC comes from RustCrypto (ring has none);
//! HMAC and randomness from ring. The key is the node's, kept in the
//! secret store as [`KEY_SECRET`].

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The secret holding the node's Fernet key (URL-safe base64 of 32 bytes).
pub const KEY_SECRET: &str = "integrator.crypto.fernet_key";

type Enc = cbc::Encryptor<aes::Aes128>;
type Dec = cbc::Decryptor<aes::Aes128>;

/// A token that does not decrypt with this key (the `InvalidToken` of
/// `cryptography`): wrong key, tampered, or not a Fernet token at all.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("invalid token: not made with this node's key, altered, or not a Fernet token")]
pub struct InvalidToken;

/// A Fernet key: signing half and encryption half.
pub struct Key {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl Key {
    /// From its URL-safe base64 text (padded or not), as Fernet keys are written.
    pub fn parse(text: &str) -> Option<Key> {
        let text = text.trim().trim_end_matches('=');
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let raw: [u8; 32] = raw.try_into().ok()?;
        let (mut signing, mut encryption) = ([0u8; 16], [0u8; 16]);
        signing.copy_from_slice(&raw[..16]);
        encryption.copy_from_slice(&raw[16..]);
        Some(Key {
            signing,
            encryption,
        })
    }

    /// A new random key, as `Fernet.generate_key()` writes it.
    pub fn generate() -> Option<String> {
        let mut raw = [0u8; 32];
        SystemRandom::new().fill(&mut raw).ok()?;
        Some(URL_SAFE.encode(raw))
    }

    fn mac(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.signing), data)
    }

    /// The token of `plain`, made at `now` (Unix seconds) with a random IV.
    pub fn encrypt(&self, plain: &[u8], now: u64) -> Option<String> {
        let mut iv = [0u8; 16];
        SystemRandom::new().fill(&mut iv).ok()?;
        Some(self.encrypt_with(plain, now, iv))
    }

    fn encrypt_with(&self, plain: &[u8], now: u64, iv: [u8; 16]) -> String {
        let cipher =
            Enc::new(&self.encryption.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain);
        let mut token = Vec::with_capacity(25 + cipher.len() + 32);
        token.push(0x80);
        token.extend_from_slice(&now.to_be_bytes());
        token.extend_from_slice(&iv);
        token.extend_from_slice(&cipher);
        let tag = self.mac(&token);
        token.extend_from_slice(tag.as_ref());
        URL_SAFE.encode(token)
    }

    /// The plain bytes of `token`. No age limit: Zato's decrypt sets none.
    pub fn decrypt(&self, token: &str) -> Result<Vec<u8>, InvalidToken> {
        let raw = URL_SAFE_NO_PAD
            .decode(token.trim().trim_end_matches('='))
            .map_err(|_| InvalidToken)?;
        // version, time, IV, at least one block, HMAC
        if raw.len() < 1 + 8 + 16 + 16 + 32 || raw[0] != 0x80 || (raw.len() - 57) % 16 != 0 {
            return Err(InvalidToken);
        }
        let (body, tag) = raw.split_at(raw.len() - 32);
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &self.signing), body, tag)
            .map_err(|_| InvalidToken)?;
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&body[9..25]);
        Dec::new(&self.encryption.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&body[25..])
            .map_err(|_| InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's test vector (github.com/fernet/spec,
    /// generate.json and verify.json).
    const SECRET: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";

    #[test]
    fn the_specification_vector() {
        let key = Key::parse(SECRET).expect("key");
        let iv: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(key.encrypt_with(b"hello", 499_162_800, iv), TOKEN);
        assert_eq!(key.decrypt(TOKEN), Ok(b"hello".to_vec()));
    }

    #[test]
    fn round_trip_and_refusals() {
        let key = Key::parse(&Key::generate().expect("key")).expect("parse");
        let token = key.encrypt(b"", 1).expect("encrypt");
        assert_eq!(key.decrypt(&token), Ok(Vec::new()));
        let token = key.encrypt("zażółć".as_bytes(), 1).expect("encrypt");
        assert_eq!(key.decrypt(&token), Ok("zażółć".as_bytes().to_vec()));
        let other = Key::parse(&Key::generate().expect("key")).expect("parse");
        assert_eq!(other.decrypt(&token), Err(InvalidToken));
        let mut bent = token.into_bytes();
        bent[30] = if bent[30] == b'A' { b'B' } else { b'A' };
        let bent = String::from_utf8(bent).expect("utf8");
        assert_eq!(key.decrypt(&bent), Err(InvalidToken));
        assert_eq!(key.decrypt("not a token"), Err(InvalidToken));
        assert!(Key::parse("short").is_none());
    }
}
