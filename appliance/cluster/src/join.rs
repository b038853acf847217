//! The join exchange, pure: the joiner's request is authenticated with an
//! HMAC under the join secret; the answer (the cluster CA with its key,
//! the joiner's own certificate and key, the seeds) is sealed with
//! AES-256-GCM under a key derived from the secret and the request's
//! nonce, so only that joiner can open it and an old answer replayed to a
//! new request does not open. Nothing depends on the web certificate of
//! the member asked, which is self-signed on a fresh node.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{aead, hkdf, hmac};
use serde::{Deserialize, Serialize};

use crate::Error;

/// How far a request's time may be from the admitting member's clock.
pub const SKEW_SECS: i64 = 300;

/// What a joining node asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The joiner's node name (its hostname).
    pub node: String,
    /// Addresses its certificate must name.
    pub sans: Vec<String>,
    /// Its route address, `host:port`, which members add to their seeds.
    pub route: String,
    /// 16 random bytes, base64: salts the answer's key.
    pub nonce: String,
    /// Unix seconds when asked.
    pub ts: i64,
}

/// What the joiner gets: everything to run as a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    pub cluster: String,
    pub seeds: Vec<String>,
    pub ca_cert: String,
    pub ca_key: String,
    pub node_cert: String,
    pub node_key: String,
    pub join_secret: String,
}

fn mac_key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

/// The request as sent: its JSON text and the HMAC of that text.
pub fn sign(secret: &str, request: &Request) -> Result<(String, String), Error> {
    let text = serde_json::to_string(request).map_err(|e| Error::Join(e.to_string()))?;
    let tag = hmac::sign(&mac_key(secret), text.as_bytes());
    Ok((text, B64.encode(tag.as_ref())))
}

/// Checks a request's HMAC and age; the request on success.
pub fn check(secret: &str, text: &str, mac: &str, now: i64) -> Result<Request, Error> {
    let tag = B64
        .decode(mac)
        .map_err(|_| Error::Join("the join request's mac is not base64".into()))?;
    hmac::verify(&mac_key(secret), text.as_bytes(), &tag).map_err(|_| {
        Error::Join("the join request is not signed with this cluster's join secret".into())
    })?;
    let r: Request = serde_json::from_str(text)
        .map_err(|e| Error::Join(format!("the join request does not parse: {e}")))?;
    if (now - r.ts).abs() > SKEW_SECS {
        return Err(Error::Join(format!(
            "the join request's time is {} s from this member's clock (at most {SKEW_SECS})",
            (now - r.ts).abs()
        )));
    }
    Ok(r)
}

struct Len;
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        32
    }
}

/// An AES-256-GCM key derived (HKDF-SHA256) from `secret`, `salt` and
/// what it is for (`info`), so keys for different uses never meet.
fn derive(secret: &str, salt: &[u8], info: &[u8]) -> Result<aead::LessSafeKey, Error> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret.as_bytes());
    let mut bytes = [0u8; 32];
    prk.expand(&[info], Len)
        .and_then(|okm| okm.fill(&mut bytes))
        .map_err(|_| Error::Join("cannot derive a key".into()))?;
    let key = aead::UnboundKey::new(&aead::AES_256_GCM, &bytes)
        .map_err(|_| Error::Join("cannot make a key".into()))?;
    Ok(aead::LessSafeKey::new(key))
}

/// `plain` sealed under a key from `secret`, `salt` and `info`: a random
/// 96-bit IV, the ciphertext and its tag, base64.
pub(crate) fn seal_bytes(
    secret: &str,
    salt: &[u8],
    info: &[u8],
    mut plain: Vec<u8>,
) -> Result<String, Error> {
    let key = derive(secret, salt, info)?;
    let iv: [u8; 12] = rand::random();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(iv),
        aead::Aad::empty(),
        &mut plain,
    )
    .map_err(|_| Error::Join("cannot seal".into()))?;
    let mut out = iv.to_vec();
    out.extend(plain);
    Ok(B64.encode(out))
}

/// What [`seal_bytes`] sealed; `None` when it does not open under this
/// secret (or was changed).
pub(crate) fn open_bytes(
    secret: &str,
    salt: &[u8],
    info: &[u8],
    sealed: &str,
) -> Result<Option<Vec<u8>>, Error> {
    let key = derive(secret, salt, info)?;
    let Ok(raw) = B64.decode(sealed.trim()) else {
        return Ok(None);
    };
    if raw.len() < 12 + 16 {
        return Ok(None);
    }
    let (iv, rest) = raw.split_at(12);
    let mut data = rest.to_vec();
    let iv: [u8; 12] = iv.try_into().map_err(|_| Error::Join("iv".into()))?;
    Ok(key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(iv),
            aead::Aad::empty(),
            &mut data,
        )
        .ok()
        .map(|p| p.to_vec()))
}

const JOIN_INFO: &[u8] = b"alpharen cluster join";

fn salt_of(nonce: &str) -> Result<Vec<u8>, Error> {
    B64.decode(nonce)
        .map_err(|_| Error::Join("the join request's nonce is not base64".into()))
}

/// Seals the admission for the request with `nonce`.
pub fn seal(secret: &str, nonce: &str, admission: &Admission) -> Result<String, Error> {
    let data = serde_json::to_vec(admission).map_err(|e| Error::Join(e.to_string()))?;
    seal_bytes(secret, &salt_of(nonce)?, JOIN_INFO, data)
}

/// Opens the answer to the request with `nonce`.
pub fn open(secret: &str, nonce: &str, sealed: &str) -> Result<Admission, Error> {
    let plain = open_bytes(secret, &salt_of(nonce)?, JOIN_INFO, sealed)?.ok_or_else(|| {
        Error::Join(
            "the member's answer does not open with this token's secret (a wrong token, or not that cluster)".into(),
        )
    })?;
    serde_json::from_slice(&plain)
        .map_err(|e| Error::Join(format!("the member's answer does not parse: {e}")))
}

/// A fresh request nonce.
pub fn new_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ts: i64) -> Request {
        Request {
            node: "b".into(),
            sans: vec!["10.0.0.2".into()],
            route: "10.0.0.2:6222".into(),
            nonce: new_nonce(),
            ts,
        }
    }

    fn admission() -> Admission {
        Admission {
            cluster: "lan1".into(),
            seeds: vec!["10.0.0.1:6222".into()],
            ca_cert: "C".into(),
            ca_key: "K".into(),
            node_cert: "NC".into(),
            node_key: "NK".into(),
            join_secret: "S".into(),
        }
    }

    #[test]
    fn a_signed_request_passes_and_its_answer_opens_only_for_it() {
        let r = request(1000);
        let (text, mac) = sign("secret", &r).unwrap();
        assert_eq!(check("secret", &text, &mac, 1100).unwrap(), r);
        let sealed = seal("secret", &r.nonce, &admission()).unwrap();
        assert_eq!(open("secret", &r.nonce, &sealed).unwrap(), admission());
        // Another request's nonce, or another secret: does not open.
        assert!(open("secret", &new_nonce(), &sealed).is_err());
        assert!(open("other", &r.nonce, &sealed).is_err());
        let mut raw = B64.decode(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(open("secret", &r.nonce, &B64.encode(raw)).is_err());
    }

    #[test]
    fn wrong_secret_changed_text_and_old_requests_are_refused() {
        let r = request(1000);
        let (text, mac) = sign("secret", &r).unwrap();
        let e = check("other", &text, &mac, 1000).unwrap_err().to_string();
        assert!(e.contains("join secret"), "{e}");
        let changed = text.replace("\"b\"", "\"c\"");
        assert!(check("secret", &changed, &mac, 1000).is_err());
        let e = check("secret", &text, &mac, 1000 + SKEW_SECS + 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("clock"), "{e}");
        assert!(check("secret", &text, "***", 1000).is_err());
    }
}
