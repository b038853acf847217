//! Curve25519 key pairs in WireGuard's base64 form.

use base64::Engine;
use boringtun::x25519::{PublicKey, StaticSecret};

pub type Key = [u8; 32];

/// A fresh key pair: (private, public).
pub fn generate() -> (Key, Key) {
    let secret: Key = rand::random();
    let public = public_of(&secret);
    (secret, public)
}

/// The public key of a private key (clamping is done by x25519).
pub fn public_of(secret: &Key) -> Key {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

pub fn to_base64(key: &Key) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

pub fn from_base64(text: &str) -> Option<Key> {
    alpharen_store::config::decode_key(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn to_hex(key: &Key) -> String {
        key.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Key> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(out)
    }

    #[test]
    fn round_trips() {
        let (s, p) = generate();
        assert_eq!(public_of(&s), p);
        assert_eq!(from_base64(&to_base64(&p)), Some(p));
        assert_eq!(from_hex(&to_hex(&p)), Some(p));
        assert_eq!(to_base64(&p).len(), 44);
    }

    #[test]
    fn known_vector() {
        // RFC 7748 §6.1, Alice.
        let secret = from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let public = from_hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(secret.map(|s| public_of(&s)), public);
    }
}
