//! SNMPv3 traps with the User-based Security Model: authPriv messages
//! (RFC 3412 framing, RFC 3414 USM) authenticated with HMAC-SHA-96
//! (RFC 3414) or HMAC-SHA-256-192 (RFC 7860) and encrypted with
//! AES-128-CFB (RFC 3826). The node is the authoritative engine of its
//! own traps: its engine ID, boots and time go in every message, and the
//! manager must know the user with keys localized to that engine ID.
//! Hashes and HMAC from ring; the AES block cipher from RustCrypto's
//! `aes`, in CFB128 mode here (a few lines, checked against NIST vectors).

use aes::Aes128;
use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use alpharen_store::config::AuthProtocol;
use ring::{digest, hmac};

use crate::ber::{integer, tlv};

fn digest_alg(a: AuthProtocol) -> &'static digest::Algorithm {
    match a {
        AuthProtocol::Sha => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        AuthProtocol::Sha256 => &digest::SHA256,
    }
}

fn hmac_alg(a: AuthProtocol) -> hmac::Algorithm {
    match a {
        AuthProtocol::Sha => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        AuthProtocol::Sha256 => hmac::HMAC_SHA256,
    }
}

/// Bytes of the truncated HMAC in msgAuthenticationParameters.
fn mac_len(a: AuthProtocol) -> usize {
    match a {
        AuthProtocol::Sha => 12,
        AuthProtocol::Sha256 => 24,
    }
}

/// RFC 3414 A.2: the passphrase repeated to 1 MiB and hashed (Ku).
/// `password` must not be empty (the caller checks).
pub fn password_to_key(a: AuthProtocol, password: &[u8]) -> Vec<u8> {
    let mut ctx = digest::Context::new(digest_alg(a));
    let mut block = [0u8; 64];
    let mut at = 0;
    for _ in 0..(1_048_576 / 64) {
        for b in block.iter_mut() {
            *b = password[at % password.len()];
            at += 1;
        }
        ctx.update(&block);
    }
    ctx.finish().as_ref().to_vec()
}

/// RFC 3414 A.2: Kul = H(Ku || engineID || Ku).
pub fn localize(a: AuthProtocol, ku: &[u8], engine_id: &[u8]) -> Vec<u8> {
    let mut ctx = digest::Context::new(digest_alg(a));
    ctx.update(ku);
    ctx.update(engine_id);
    ctx.update(ku);
    ctx.finish().as_ref().to_vec()
}

/// AES-128 in CFB mode with 128-bit segments (RFC 3826 section 3.1.3).
pub fn aes_cfb_encrypt(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
    let cipher = Aes128::new(GenericArray::from_slice(key));
    let mut feedback = *iv;
    for chunk in data.chunks_mut(16) {
        let mut block = GenericArray::from(feedback);
        cipher.encrypt_block(&mut block);
        for (b, k) in chunk.iter_mut().zip(block.iter()) {
            *b ^= k;
        }
        feedback[..chunk.len()].copy_from_slice(chunk);
    }
}

/// A v3 user with its keys localized to the node's engine ID.
pub struct User {
    pub name: String,
    auth: AuthProtocol,
    auth_key: hmac::Key,
    priv_key: [u8; 16],
}

impl User {
    /// Both passphrases must be non-empty (the caller requires 8 bytes).
    pub fn new(
        name: &str,
        auth: AuthProtocol,
        auth_pass: &str,
        priv_pass: &str,
        engine_id: &[u8],
    ) -> User {
        let auth_key = localize(
            auth,
            &password_to_key(auth, auth_pass.as_bytes()),
            engine_id,
        );
        // The privacy key is localized with the authentication hash; AES-128
        // takes its first 16 bytes (both hashes give at least 20).
        let priv_full = localize(
            auth,
            &password_to_key(auth, priv_pass.as_bytes()),
            engine_id,
        );
        let mut priv_key = [0u8; 16];
        priv_key.copy_from_slice(&priv_full[..16]);
        User {
            name: name.to_string(),
            auth,
            auth_key: hmac::Key::new(hmac_alg(auth), &auth_key),
            priv_key,
        }
    }
}

/// The node's engine as its traps state it.
pub struct Engine<'a> {
    pub id: &'a [u8],
    pub boots: u32,
    pub time: u32,
}

/// An authPriv SNMPv3 message carrying `pdu` (`ber::trap_pdu`); `salt`
/// must differ for every message of one engine boot.
pub fn v3_message(user: &User, engine: &Engine, msg_id: i32, salt: u64, pdu: &[u8]) -> Vec<u8> {
    // ScopedPDU: contextEngineID (ours), contextName "", the PDU.
    let mut scoped = tlv(0x04, engine.id);
    scoped.extend(tlv(0x04, b""));
    scoped.extend_from_slice(pdu);
    let mut encrypted = tlv(0x30, &scoped);
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&engine.boots.to_be_bytes());
    iv[4..8].copy_from_slice(&engine.time.to_be_bytes());
    iv[8..].copy_from_slice(&salt.to_be_bytes());
    aes_cfb_encrypt(&user.priv_key, &iv, &mut encrypted);

    let mut usm = tlv(0x04, engine.id);
    usm.extend(integer(i64::from(engine.boots)));
    usm.extend(integer(i64::from(engine.time)));
    usm.extend(tlv(0x04, user.name.as_bytes()));
    // The MAC goes after this tag and length byte (it is shorter than 128).
    let mac_in_usm = usm.len() + 2;
    let n = mac_len(user.auth);
    usm.extend(tlv(0x04, &vec![0u8; n]));
    usm.extend(tlv(0x04, &salt.to_be_bytes()));
    let usm_seq = tlv(0x30, &usm);
    let params = tlv(0x04, &usm_seq);

    // msgGlobalData: msgID, msgMaxSize, msgFlags authPriv (not
    // reportable: a trap gets no answer), msgSecurityModel USM (3).
    let mut global = integer(i64::from(msg_id));
    global.extend(integer(65507));
    global.extend(tlv(0x04, &[0x03]));
    global.extend(integer(3));
    let mut body = integer(3);
    body.extend(tlv(0x30, &global));
    let mac_in_body =
        body.len() + (params.len() - usm_seq.len()) + (usm_seq.len() - usm.len()) + mac_in_usm;
    body.extend(params);
    body.extend(tlv(0x04, &encrypted));
    let mut msg = tlv(0x30, &body);
    let at = msg.len() - body.len() + mac_in_body;
    let mac = hmac::sign(&user.auth_key, &msg);
    msg[at..at + n].copy_from_slice(&mac.as_ref()[..n]);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const ENGINE: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    #[test]
    fn password_to_key_matches_rfc_3414_appendix_a() {
        // A.3.2: SHA, "maplesyrup", engine 00..02.
        let ku = password_to_key(AuthProtocol::Sha, b"maplesyrup");
        assert_eq!(ku, hex("9fb5cc0381497b3793528939ff788d5d79145211"));
        assert_eq!(
            localize(AuthProtocol::Sha, &ku, &ENGINE),
            hex("6695febc9288e36282235fc7151f128497b38f3f")
        );
        // The same algorithm with SHA-256 (RFC 7860 section 4.2.2, which
        // gives no vector): the values Python's hashlib computes.
        let ku = password_to_key(AuthProtocol::Sha256, b"maplesyrup");
        assert_eq!(
            ku,
            hex("ab51014d1e077f6017df2b12bee5f5aa72993177e9bb569c4dff5a4ca0b4afac")
        );
        assert_eq!(
            localize(AuthProtocol::Sha256, &ku, &ENGINE),
            hex("8982e0e549e866db361a6b625d84cccc11162d453ee8ce3a6445c2d6776f0f8b")
        );
    }

    #[test]
    fn aes_cfb128_matches_nist_sp800_38a() {
        // F.3.13 CFB128-AES128.Encrypt, blocks 1 and 2, and a short tail.
        let key: [u8; 16] = hex("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap();
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let mut data = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        aes_cfb_encrypt(&key, &iv, &mut data);
        assert_eq!(
            data,
            hex("3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b")
        );
        let mut short = hex("6bc1bee22e");
        aes_cfb_encrypt(&key, &iv, &mut short);
        assert_eq!(short, hex("3b3fd92eb7"));
    }

    #[test]
    fn a_v3_message_is_authenticated_over_all_its_bytes() {
        let engine = Engine {
            id: &ENGINE,
            boots: 3,
            time: 77,
        };
        for auth in [AuthProtocol::Sha, AuthProtocol::Sha256] {
            let user = User::new("ops", auth, "authpass1", "privpass1", &ENGINE);
            let pdu = tlv(0xa7, b"pdu");
            let m = v3_message(&user, &engine, 9, 0x0102_0304_0506_0708, &pdu);
            let n = mac_len(auth);
            // The MAC sits in the auth parameters right after the user name.
            let name = b"\x04\x03ops";
            let at = m.windows(3 + 2).position(|w| w == name).unwrap() + 5;
            assert_eq!(m[at..at + 2], [0x04, n as u8]);
            let mac = m[at + 2..at + 2 + n].to_vec();
            let mut zeroed = m.clone();
            zeroed[at + 2..at + 2 + n].fill(0);
            let key = hmac::Key::new(
                hmac_alg(auth),
                &localize(auth, &password_to_key(auth, b"authpass1"), &ENGINE),
            );
            assert_eq!(mac, hmac::sign(&key, &zeroed).as_ref()[..n]);
            // The salt follows as the privacy parameters; the PDU is not
            // in the clear.
            assert_eq!(
                m[at + 2 + n..at + 2 + n + 10],
                *b"\x04\x08\x01\x02\x03\x04\x05\x06\x07\x08"
            );
            assert!(!m.windows(5).any(|w| w == b"\xa7\x03pdu"));
            // msgVersion 3, msgFlags authPriv, USM.
            assert_eq!(m[2..5], [0x02, 0x01, 0x03]);
            assert!(m.windows(6).any(|w| w == b"\x04\x01\x03\x02\x01\x03"));
        }
    }
}
