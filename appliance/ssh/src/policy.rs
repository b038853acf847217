//! What the server offers: the authentication methods the `[ssh]` section
//! enables, and only key exchange, cipher, MAC and host key algorithms
//! that `ssh-audit` does not flag (no SHA-1, no encrypt-and-MAC MACs, no
//! 2048-bit or group-exchange Diffie-Hellman).

use std::borrow::Cow;

use alpharen_store::config::Ssh;
use russh::keys::Algorithm;
use russh::{MethodKind, MethodSet, Preferred, cipher, kex, mac};

/// Public key always; password only with `ssh.password_auth`.
pub fn methods(ssh: &Ssh) -> MethodSet {
    let mut set = MethodSet::from(&[MethodKind::PublicKey][..]);
    if ssh.password_auth {
        set.push(MethodKind::Password);
    }
    set
}

const KEX: &[kex::Name] = &[
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::DH_G18_SHA512,
    kex::DH_G16_SHA512,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// Encrypt-then-MAC with SHA-2 only.
const MACS: &[mac::Name] = &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM];

/// The host key is ed25519 (see [`crate::host_key`]).
const HOST_KEYS: &[Algorithm] = &[Algorithm::Ed25519];

pub fn algorithms() -> Preferred {
    Preferred {
        kex: Cow::Borrowed(KEX),
        key: Cow::Borrowed(HOST_KEYS),
        cipher: Cow::Borrowed(CIPHERS),
        mac: Cow::Borrowed(MACS),
        ..Preferred::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_offered_only_when_enabled() {
        let mut ssh = Ssh {
            password_auth: false,
            ..Ssh::default()
        };
        assert_eq!(&*methods(&ssh), &[MethodKind::PublicKey]);
        ssh.password_auth = true;
        assert_eq!(
            &*methods(&ssh),
            &[MethodKind::PublicKey, MethodKind::Password]
        );
    }

    #[test]
    fn no_sha1_and_no_encrypt_and_mac() {
        let p = algorithms();
        for m in p.mac.iter() {
            let name = m.as_ref();
            assert!(
                name.ends_with("-etm@openssh.com") && !name.contains("sha1"),
                "{name}"
            );
        }
        assert!(
            !p.kex
                .iter()
                .any(|k| k.as_ref().contains("sha1") || *k == kex::DH_G14_SHA256)
        );
    }
}
