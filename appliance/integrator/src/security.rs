//! Channel security checks: HTTP basic, API key header, HMAC signatures
//! (RFC 9421 style, hmac-sha256 over method, path, date and content
//! digest), JWT bearer tokens (`jwt`) and TLS client certificates
//! (`tls_client_cert`, in `clientcert`). Pure functions over request parts
//! so every rule is unit-tested; the only state is the replay cache.

use alpharen_httpsig::SigError;
use alpharen_httpsig::same;
pub use alpharen_httpsig::{Parts, ReplayCache};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

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
    ClientCert(crate::clientcert::CertRule),
}

/// What a passed check leaves for the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Passed {
    Plain,
    /// An HMAC signature, for the replay cache.
    Signature(Vec<u8>),
    /// The client certificate accepted, for the service.
    Certificate(crate::clientcert::Identity),
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
    #[error("a client certificate signed by this channel's CA is required")]
    NoCertificate,
    #[error("client certificate refused: {0}")]
    Certificate(String),
    /// A valid certificate whose subject the definition does not allow
    /// (403: the client is known, not allowed).
    #[error("client certificate subject {0} is not allowed on this channel")]
    Subject(String),
}

impl From<SigError> for AuthError {
    fn from(e: SigError) -> Self {
        match e {
            SigError::Missing => AuthError::Missing,
            SigError::Invalid => AuthError::Invalid,
            SigError::Signature(m) => AuthError::Signature(m),
        }
    }
}

/// Checks a request against a rule; `chain` is the certificate chain the
/// client presented on its TLS connection.
pub fn check(
    rule: &Rule,
    req: &Parts<'_>,
    chain: Option<&[rustls::pki_types::CertificateDer<'static>]>,
) -> Result<Passed, AuthError> {
    match rule {
        Rule::Basic { username, password } => {
            let value = (req.header)("authorization").ok_or(AuthError::Missing)?;
            let (user, pass) = parse_basic(&value).ok_or(AuthError::Invalid)?;
            // Both compared, so timing does not tell which one was wrong.
            let ok = same(user.as_bytes(), username.as_bytes())
                & same(pass.as_bytes(), password.as_bytes());
            if ok {
                Ok(Passed::Plain)
            } else {
                Err(AuthError::Invalid)
            }
        }
        Rule::ApiKey { header, key } => {
            let value = (req.header)(&header.to_ascii_lowercase()).ok_or(AuthError::Missing)?;
            if same(value.trim().as_bytes(), key.as_bytes()) {
                Ok(Passed::Plain)
            } else {
                Err(AuthError::Invalid)
            }
        }
        Rule::Hmac { name, key, skew } => Ok(Passed::Signature(alpharen_httpsig::verify(
            req, name, key, *skew,
        )?)),
        Rule::Jwt(jwt) => crate::jwt::check(jwt, (req.header)("authorization").as_deref(), req.now)
            .map(|()| Passed::Plain),
        Rule::ClientCert(c) => crate::clientcert::check(c, chain).map(Passed::Certificate),
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, SystemTime};

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
        alpharen_httpsig::signed_headers("h", key, "POST", "/api/x", body, date)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
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
        assert_eq!(
            check(&rule, &parts(&good, b"", now), None),
            Ok(Passed::Plain)
        );
        let bad =
            |n: &str| (n == "authorization").then(|| format!("Basic {}", B64.encode("cust:px")));
        assert_eq!(
            check(&rule, &parts(&bad, b"", now), None),
            Err(AuthError::Invalid)
        );
        let none = |_: &str| None;
        assert_eq!(
            check(&rule, &parts(&none, b"", now), None),
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
        assert!(check(&rule, &parts(&h, b"", SystemTime::now()), None).is_ok());
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
        assert!(check(&rule, &parts(&h, b"{}", now), None).is_ok());
        let wrong = signed("other", b"{}", now);
        let h = |n: &str| wrong.get(n).cloned();
        assert_eq!(
            check(&rule, &parts(&h, b"{}", now), None),
            Err(AuthError::Invalid)
        );
        let h = |n: &str| hs.get(n).cloned();
        assert!(matches!(
            check(&rule, &parts(&h, b"{\"a\":1}", now), None),
            Err(AuthError::Signature(_))
        ));
        let old = signed("secret", b"{}", now - Duration::from_secs(600));
        let h = |n: &str| old.get(n).cloned();
        assert!(matches!(
            check(&rule, &parts(&h, b"{}", now), None),
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
}
