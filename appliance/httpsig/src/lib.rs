//! HMAC request signatures in the style of RFC 9421: hmac-sha256 over the
//! method, path, `Date` and `Content-Digest` (RFC 9530) of a request, with
//! the key named by `keyid`, and the cache that refuses a signature seen
//! twice. Shared by the integrator (its `hmac` channel security) and the
//! reaction engine (every agent call), so both check the same things.
//! Pure functions over request parts; the only state is the replay cache.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Why a signed request was refused; the message goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("authentication required")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    #[error("signature: {0}")]
    Signature(String),
}

/// The parts of a request the checks look at.
pub struct Parts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Header lookup, case-insensitive name.
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: &'a [u8],
    pub now: SystemTime,
}

/// Comparison whose time does not depend on where the inputs differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Components every signature must cover.
pub const COVERED: [&str; 4] = ["@method", "@path", "date", "content-digest"];

/// `sha-256=:BASE64:` of a body (RFC 9530).
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", B64.encode(Sha256::digest(body)))
}

/// The RFC 9421 signature base for our four components.
pub fn signature_base(method: &str, path: &str, date: &str, digest: &str, params: &str) -> String {
    format!(
        "\"@method\": {}\n\"@path\": {path}\n\"date\": {date}\n\"content-digest\": {digest}\n\"@signature-params\": {params}",
        method.to_ascii_uppercase()
    )
}

pub fn sign(key: &str, base: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The four headers that sign a request (with a fresh nonce) as `keyid` (`Date`,
/// `Content-Digest`, `Signature-Input`, `Signature`), lower-case names.
pub fn signed_headers(
    keyid: &str,
    key: &str,
    method: &str,
    path: &str,
    body: &[u8],
    date: SystemTime,
) -> [(&'static str, String); 4] {
    let date = httpdate::fmt_http_date(date);
    let digest = content_digest(body);
    // A nonce (RFC 9421 2.3) so two equal requests within the same second
    // do not carry the same signature, which the replay cache refuses.
    let nonce = format!("{:032x}", rand::random::<u128>());
    let params = format!(
        "(\"@method\" \"@path\" \"date\" \"content-digest\");keyid=\"{keyid}\";alg=\"hmac-sha256\";nonce=\"{nonce}\""
    );
    let sig = sign(key, &signature_base(method, path, &date, &digest, &params));
    [
        ("date", date),
        ("content-digest", digest),
        ("signature-input", format!("sig1={params}")),
        ("signature", format!("sig1=:{}:", B64.encode(sig))),
    ]
}

fn sig_err(m: impl Into<String>) -> SigError {
    SigError::Signature(m.into())
}

/// The `keyid` a request's `Signature-Input` names, to look its key up.
pub fn keyid(req: &Parts<'_>) -> Option<String> {
    let input = (req.header)("signature-input")?;
    let (_, params) = input.split_once(')')?;
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == "keyid").then(|| v.trim_matches('"').to_string())
    })
}

/// Checks a request signed with `key` as `name`, its dates within `skew`
/// seconds of `req.now`; returns the signature for the replay cache.
pub fn verify(req: &Parts<'_>, name: &str, key: &str, skew: u64) -> Result<Vec<u8>, SigError> {
    let input = (req.header)("signature-input").ok_or(SigError::Missing)?;
    let signature = (req.header)("signature").ok_or(SigError::Missing)?;
    let (label, params) = input
        .split_once('=')
        .ok_or_else(|| sig_err("Signature-Input is not label=(...)"))?;
    let label = label.trim();
    let params = params.trim();
    let inner = params
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .ok_or_else(|| sig_err("Signature-Input has no component list"))?;
    let components: Vec<&str> = inner
        .0
        .split_whitespace()
        .map(|c| c.trim_matches('"'))
        .collect();
    for c in COVERED {
        if !components.contains(&c) {
            return Err(sig_err(format!("Signature-Input must cover \"{c}\"")));
        }
    }
    let mut alg_ok = true;
    for p in inner.1.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let v = v.trim_matches('"');
        match k.trim() {
            "keyid" if v != name => return Err(sig_err(format!("unknown keyid {v:?}"))),
            "alg" => alg_ok = v == "hmac-sha256",
            "created" => {
                let created: u64 = v.parse().map_err(|_| sig_err("created is not a number"))?;
                within(
                    req.now,
                    SystemTime::UNIX_EPOCH + Duration::from_secs(created),
                    skew,
                )?;
            }
            _ => {}
        }
    }
    if !alg_ok {
        return Err(sig_err("alg must be hmac-sha256"));
    }
    let date = (req.header)("date").ok_or_else(|| sig_err("Date header missing"))?;
    let when = httpdate::parse_http_date(&date).map_err(|_| sig_err("Date is not an HTTP date"))?;
    within(req.now, when, skew)?;
    let digest =
        (req.header)("content-digest").ok_or_else(|| sig_err("Content-Digest header missing"))?;
    if digest.trim() != content_digest(req.body) {
        return Err(sig_err("Content-Digest does not match the body"));
    }
    let sig_b64 = signature
        .trim()
        .strip_prefix(label)
        .and_then(|r| r.strip_prefix('='))
        .and_then(|r| r.strip_prefix(':'))
        .and_then(|r| r.strip_suffix(':'))
        .ok_or_else(|| sig_err(format!("Signature has no {label}=:...: entry")))?;
    let got = B64
        .decode(sig_b64)
        .map_err(|_| sig_err("Signature is not base64"))?;
    let base = signature_base(req.method, req.path, date.trim(), digest.trim(), params);
    if !same(&got, &sign(key, &base)) {
        return Err(SigError::Invalid);
    }
    Ok(got)
}

fn within(now: SystemTime, when: SystemTime, skew: u64) -> Result<(), SigError> {
    let diff = match now.duration_since(when) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if diff.as_secs() > skew {
        return Err(sig_err(format!(
            "date is {}s away from the server clock (allowed {skew}s)",
            diff.as_secs()
        )));
    }
    Ok(())
}

/// Signatures seen within the skew window; a second use is a replay.
#[derive(Default)]
pub struct ReplayCache {
    seen: HashMap<Vec<u8>, SystemTime>,
}

impl ReplayCache {
    /// Records a signature; false if it was already there and unexpired.
    pub fn admit(&mut self, sig: Vec<u8>, now: SystemTime, skew: u64) -> bool {
        if self.seen.len() > 4096 {
            self.seen.retain(|_, until| *until > now);
        }
        match self.seen.get(&sig) {
            Some(until) if *until > now => false,
            _ => {
                // Twice the skew: a signature dated +skew stays valid that long.
                self.seen.insert(sig, now + Duration::from_secs(2 * skew));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        hs: &[(&'static str, String); 4],
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<u8>, SigError> {
        let h = |n: &str| hs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        let req = Parts {
            method: "POST",
            path: "/api/x",
            header: &h,
            body,
            now,
        };
        assert_eq!(keyid(&req).as_deref(), Some("h"));
        verify(&req, "h", "secret", 300)
    }

    #[test]
    fn valid_wrong_key_changed_body_stale() {
        let now = SystemTime::now();
        let hs = signed_headers("h", "secret", "POST", "/api/x", b"{}", now);
        assert!(check(&hs, b"{}", now).is_ok());
        let wrong = signed_headers("h", "other", "POST", "/api/x", b"{}", now);
        assert_eq!(check(&wrong, b"{}", now), Err(SigError::Invalid));
        assert!(matches!(
            check(&hs, b"{\"a\":1}", now),
            Err(SigError::Signature(_))
        ));
        let old = signed_headers(
            "h",
            "secret",
            "POST",
            "/api/x",
            b"{}",
            now - Duration::from_secs(600),
        );
        assert!(matches!(
            check(&old, b"{}", now),
            Err(SigError::Signature(_))
        ));
        let again = signed_headers("h", "secret", "POST", "/api/x", b"{}", now);
        assert_ne!(again[3], hs[3], "equal requests carry different signatures");
        let path = signed_headers("h", "secret", "POST", "/api/y", b"{}", now);
        assert_eq!(check(&path, b"{}", now), Err(SigError::Invalid));
    }

    #[test]
    fn replay_cache_refuses_second_use_until_expiry() {
        let mut c = ReplayCache::default();
        let now = SystemTime::now();
        assert!(c.admit(vec![1], now, 10));
        assert!(!c.admit(vec![1], now, 10));
        assert!(c.admit(vec![1], now + Duration::from_secs(21), 10));
    }
}
