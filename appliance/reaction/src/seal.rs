//! Message-level encryption between an agent and the engine, on top of
//! TLS (so a TLS-terminating device on the way sees no commands, output or
//! log lines): AES-256-GCM with a key derived by HKDF-SHA256 from the
//! agent's secret and name. A sealed body is `{"sealed": "aes-256-gcm",
//! "nonce": B64, "data": B64}`; the associated data binds it to its
//! direction, method and path, so a sealed request cannot be replayed as
//! an answer or on another endpoint. The HMAC signature covers the sealed
//! bytes, so a request is authenticated before it is opened.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use serde::{Deserialize, Serialize};

const SALT: &[u8] = b"alpharen reaction message key v1";
const ALG: &str = "aes-256-gcm";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the body is in plaintext, but this agent's messages must be encrypted")]
    Plaintext,
    #[error("the body is encrypted, but encryption is not on for this agent")]
    Unexpected,
    #[error("the encrypted body does not open (wrong key, altered, or meant for another call)")]
    Open,
    #[error("cannot encrypt: {0}")]
    Seal(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    sealed: String,
    nonce: String,
    data: String,
}

/// The key of one agent.
pub struct Key(LessSafeKey);

impl Key {
    pub fn derive(secret: &str, agent: &str) -> Key {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret.as_bytes());
        let info = [agent.as_bytes()];
        // AES_256_GCM's 32-byte length is within HKDF-SHA256's limit.
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .unwrap_or_else(|_| unreachable!("32 bytes from HKDF-SHA256"));
        Key(LessSafeKey::new(UnboundKey::from(okm)))
    }

    pub fn seal(&self, aad: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut data = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .map_err(|e| SealError::Seal(e.to_string()))?;
        let env = Envelope {
            sealed: ALG.into(),
            nonce: B64.encode(nonce),
            data: B64.encode(data),
        };
        serde_json::to_vec(&env).map_err(|e| SealError::Seal(e.to_string()))
    }

    /// The plaintext of a sealed body; a plaintext body is refused.
    pub fn open(&self, aad: &str, body: &[u8]) -> Result<Vec<u8>, SealError> {
        let env = envelope(body).ok_or(SealError::Plaintext)?;
        let nonce: [u8; NONCE_LEN] = B64
            .decode(&env.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError::Open)?;
        let mut data = B64.decode(&env.data).map_err(|_| SealError::Open)?;
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

fn envelope(body: &[u8]) -> Option<Envelope> {
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .filter(|e| e.sealed == ALG)
}

/// Whether a body is a sealed envelope (refused where encryption is off).
pub fn is_sealed(body: &[u8]) -> bool {
    envelope(body).is_some()
}

/// The associated data of a request to `path` and of its answer.
pub fn request_aad(method: &str, path: &str) -> String {
    format!("request {method} {path}")
}

pub fn answer_aad(method: &str, path: &str) -> String {
    format!("answer {method} {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bodies_open_only_with_the_same_key_and_call() {
        let k = Key::derive("s3cret", "host1");
        let aad = request_aad("POST", "/agent/v1/events");
        let sealed = k.seal(&aad, br#"{"line":"ERROR disk"}"#).unwrap();
        assert!(is_sealed(&sealed));
        // The plaintext is not in the sealed bytes.
        assert!(!String::from_utf8_lossy(&sealed).contains("ERROR disk"));
        assert_eq!(k.open(&aad, &sealed).unwrap(), br#"{"line":"ERROR disk"}"#);
        // Another secret, another agent name, another call or direction.
        for (key, aad2) in [
            (Key::derive("other", "host1"), aad.clone()),
            (Key::derive("s3cret", "host2"), aad.clone()),
            (
                Key::derive("s3cret", "host1"),
                request_aad("POST", "/agent/v1/result"),
            ),
            (
                Key::derive("s3cret", "host1"),
                answer_aad("POST", "/agent/v1/events"),
            ),
        ] {
            assert_eq!(key.open(&aad2, &sealed), Err(SealError::Open));
        }
        // Altered.
        let mut env: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
        let mut data = B64.decode(env["data"].as_str().unwrap()).unwrap();
        data[0] ^= 1;
        env["data"] = B64.encode(data).into();
        let altered = serde_json::to_vec(&env).unwrap();
        assert_eq!(k.open(&aad, &altered), Err(SealError::Open));
        // Two seals of the same text differ (a fresh nonce each).
        assert_ne!(k.seal(&aad, b"x").unwrap(), k.seal(&aad, b"x").unwrap());
    }

    #[test]
    fn plaintext_is_refused_where_encryption_is_on() {
        let k = Key::derive("s3cret", "host1");
        assert_eq!(
            k.open("a", br#"{"wait_ms": 25000}"#),
            Err(SealError::Plaintext)
        );
        assert!(!is_sealed(br#"{"wait_ms": 25000}"#));
        assert!(!is_sealed(b""));
    }
}
