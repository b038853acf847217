//! Channel security checks: HTTP basic, API key header, HMAC signatures
//! (RFC 9421 style, hmac-sha256 over method, path, date and content
//! digest) and JWT bearer tokens (`jwt`). Pure functions over request parts so every rule is unit-tested;
//! the only state is the replay cache.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// One security definition with its secret resolved.
#[derive(Debug, Clone)]
pub enum Rule {
    Basic {
        username: String,
        password: String,
    },
    ApiKey {
        header: String,
        key: String,
    },
    Hmac {
        name: String,
        key: String,
        skew: u64,
    },
    Jwt(crate::jwt::JwtRule),
}

/// Why a request was refused; the message goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    #[error("signature: {0}")]
    Signature(String),
    #[error("signature already used (replay)")]
    Replay,
    /// A bearer token refused; the text becomes its `error_description`.
    #[error("invalid token: {0}")]
    Token(String),
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

/// Checks a request against a rule. For HMAC, returns the signature so the
/// caller can enter it in the replay cache.
pub fn check(rule: &Rule, req: &Parts<'_>) -> Result<Option<Vec<u8>>, AuthError> {
    match rule {
        Rule::Basic { username, password } => {
            let value = (req.header)("authorization").ok_or(AuthError::Missing)?;
            let (user, pass) = parse_basic(&value).ok_or(AuthError::Invalid)?;
            // Both compared, so timing does not tell which one was wrong.
            let ok = same(user.as_bytes(), username.as_bytes())
                & same(pass.as_bytes(), password.as_bytes());
            if ok {
                Ok(None)
            } else {
                Err(AuthError::Invalid)
            }
        }
        Rule::ApiKey { header, key } => {
            let value = (req.header)(&header.to_ascii_lowercase()).ok_or(AuthError::Missing)?;
            if same(value.trim().as_bytes(), key.as_bytes()) {
                Ok(None)
            } else {
                Err(AuthError::Invalid)
            }
        }
        Rule::Hmac { name, key, skew } => verify_hmac(req, name, key, *skew).map(Some),
        Rule::Jwt(jwt) => {
            crate::jwt::check(jwt, (req.header)("authorization").as_deref(), req.now).map(|()| None)
        }
    }
}

/// The `WWW-Authenticate` of a refusal, for the schemes that have one
/// (RFC 7617 basic, RFC 6750 bearer: no error code when no token came).
pub fn challenge(rule: &Rule, e: &AuthError) -> Option<String> {
    match (rule, e) {
        (Rule::Basic { .. }, _) => Some("Basic realm=\"alpharen\"".into()),
        (Rule::Jwt(_), AuthError::Token(why)) => Some(format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            why.replace(['"', '\\'], "'")
        )),
        (Rule::Jwt(_), _) => Some("Bearer realm=\"alpharen\"".into()),
        _ => None,
    }
}

fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = B64.decode(token.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
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

fn sig_err(m: impl Into<String>) -> AuthError {
    AuthError::Signature(m.into())
}

fn verify_hmac(req: &Parts<'_>, name: &str, key: &str, skew: u64) -> Result<Vec<u8>, AuthError> {
    let input = (req.header)("signature-input").ok_or(AuthError::Missing)?;
    let signature = (req.header)("signature").ok_or(AuthError::Missing)?;
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
        return Err(AuthError::Invalid);
    }
    Ok(got)
}

fn within(now: SystemTime, when: SystemTime, skew: u64) -> Result<(), AuthError> {
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

    fn parts<'a>(
        h: &'a dyn Fn(&str) -> Option<String>,
        body: &'a [u8],
        now: SystemTime,
    ) -> Parts<'a> {
        Parts {
            method: "POST",
            path: "/api/x",
            header: h,
            body,
            now,
        }
    }

    fn signed(key: &str, body: &[u8], date: SystemTime) -> HashMap<String, String> {
        let date = httpdate::fmt_http_date(date);
        let digest = content_digest(body);
        let params =
            "(\"@method\" \"@path\" \"date\" \"content-digest\");keyid=\"h\";alg=\"hmac-sha256\"";
        let sig = sign(
            key,
            &signature_base("POST", "/api/x", &date, &digest, params),
        );
        HashMap::from([
            ("date".to_string(), date),
            ("content-digest".to_string(), digest),
            ("signature-input".to_string(), format!("sig1={params}")),
            (
                "signature".to_string(),
                format!("sig1=:{}:", B64.encode(sig)),
            ),
        ])
    }

    #[test]
    fn basic_accepts_only_the_right_pair() {
        let rule = Rule::Basic {
            username: "cust".into(),
            password: "pw".into(),
        };
        let now = SystemTime::now();
        let good =
            |n: &str| (n == "authorization").then(|| format!("Basic {}", B64.encode("cust:pw")));
        assert_eq!(check(&rule, &parts(&good, b"", now)), Ok(None));
        let bad =
            |n: &str| (n == "authorization").then(|| format!("Basic {}", B64.encode("cust:px")));
        assert_eq!(
            check(&rule, &parts(&bad, b"", now)),
            Err(AuthError::Invalid)
        );
        let none = |_: &str| None;
        assert_eq!(
            check(&rule, &parts(&none, b"", now)),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn apikey_reads_its_header() {
        let rule = Rule::ApiKey {
            header: "X-API-Key".into(),
            key: "k1".into(),
        };
        let h = |n: &str| (n == "x-api-key").then(|| "k1".to_string());
        assert!(check(&rule, &parts(&h, b"", SystemTime::now())).is_ok());
    }

    #[test]
    fn hmac_valid_wrong_key_changed_body_stale() {
        let now = SystemTime::now();
        let rule = Rule::Hmac {
            name: "h".into(),
            key: "secret".into(),
            skew: 300,
        };
        let hs = signed("secret", b"{}", now);
        let h = |n: &str| hs.get(n).cloned();
        assert!(check(&rule, &parts(&h, b"{}", now)).is_ok());
        let wrong = signed("other", b"{}", now);
        let h = |n: &str| wrong.get(n).cloned();
        assert_eq!(
            check(&rule, &parts(&h, b"{}", now)),
            Err(AuthError::Invalid)
        );
        let h = |n: &str| hs.get(n).cloned();
        assert!(matches!(
            check(&rule, &parts(&h, b"{\"a\":1}", now)),
            Err(AuthError::Signature(_))
        ));
        let old = signed("secret", b"{}", now - Duration::from_secs(600));
        let h = |n: &str| old.get(n).cloned();
        assert!(matches!(
            check(&rule, &parts(&h, b"{}", now)),
            Err(AuthError::Signature(_))
        ));
    }

    #[test]
    fn challenges_name_the_scheme_and_the_token_error() {
        let jwt = Rule::Jwt(crate::jwt::JwtRule {
            keys: crate::jwt::hs256("k"),
            issuer: None,
            audience: None,
            leeway: 30,
        });
        assert_eq!(
            challenge(&jwt, &AuthError::Token("the \"token\" has expired".into())).as_deref(),
            Some("Bearer error=\"invalid_token\", error_description=\"the 'token' has expired\"")
        );
        assert_eq!(
            challenge(&jwt, &AuthError::Missing).as_deref(),
            Some("Bearer realm=\"alpharen\"")
        );
        let key = Rule::ApiKey {
            header: "X-API-Key".into(),
            key: "k".into(),
        };
        assert_eq!(challenge(&key, &AuthError::Invalid), None);
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
