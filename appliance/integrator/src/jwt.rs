//! JWT bearer tokens for `kind = "jwt"` channels: HS256 with the
//! definition's secret, or RS256/ES256 with the public keys of an issuer's
//! JWKS file. The signature is checked by `jsonwebtoken` (on ring); the
//! claims (`exp` required, `nbf`, `iss`, `aud`) here against the caller's
//! clock, so every decision is unit-tested.

use std::time::SystemTime;

use alpharen_store::config::SecurityDef;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::security::AuthError;

/// One key tokens may be signed with.
#[derive(Clone)]
pub struct JwtKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// A `jwt` definition ready to check tokens.
#[derive(Clone)]
pub struct JwtRule {
    pub keys: Vec<JwtKey>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Seconds of clock difference allowed on `exp` and `nbf`.
    pub leeway: u64,
}

impl std::fmt::Debug for JwtRule {
    // Keys left out: the HS256 one is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtRule")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl JwtRule {
    /// A `jwt` definition's rule: HS256 with the secret, or the keys of
    /// its JWKS file. A file that cannot be used leaves the rule without
    /// keys, so its channels refuse every token (and the log says why)
    /// rather than the whole configuration failing to load.
    pub fn for_def(def: &SecurityDef, secret: &str) -> JwtRule {
        let keys = match &def.jwks_file {
            None => hs256(secret),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| jwks(&text))
                .unwrap_or_else(|e| {
                    tracing::warn!(security = %def.name, jwks_file = %path, error = %e, "JWKS file not usable; the definition refuses every token");
                    Vec::new()
                }),
        };
        JwtRule {
            keys,
            issuer: def.issuer.clone(),
            audience: def.audience.clone(),
            leeway: def.skew.unwrap_or(30),
        }
    }
}

/// The HS256 key of a secret.
pub fn hs256(secret: &str) -> Vec<JwtKey> {
    vec![JwtKey {
        kid: None,
        alg: Algorithm::HS256,
        key: DecodingKey::from_secret(secret.as_bytes()),
    }]
}

/// The RS256 and ES256 (P-256) keys of a JWKS document. A key whose `alg`
/// is another algorithm, or a symmetric key, is an error: the file should
/// say only what is accepted.
pub fn jwks(text: &str) -> Result<Vec<JwtKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut out = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let natural = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Some(Algorithm::ES256)
            }
            _ => None,
        };
        let declared = match jwk.common.key_algorithm {
            None => natural,
            Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
            Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
            Some(_) => None,
        };
        let alg = match (declared, natural) {
            (Some(d), Some(n)) if d == n => d,
            _ => {
                return Err(format!(
                    "key {i}: only RSA keys for RS256 and P-256 keys for ES256 are accepted"
                ));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {i}: {e}"))?;
        out.push(JwtKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if out.is_empty() {
        return Err("the key set has no keys".into());
    }
    Ok(out)
}

fn token_err(why: impl Into<String>) -> AuthError {
    AuthError::Token(why.into())
}

/// Checks `Authorization: Bearer TOKEN` against a rule at time `now`.
pub fn check(
    rule: &JwtRule,
    authorization: Option<&str>,
    now: SystemTime,
) -> Result<(), AuthError> {
    let value = authorization.ok_or(AuthError::Missing)?;
    let token = match value.trim().split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Err(AuthError::Missing),
    };
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| token_err("the token is malformed"))?;
    let candidates: Vec<&JwtKey> = rule
        .keys
        .iter()
        .filter(|k| k.alg == header.alg)
        .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        .collect();
    if candidates.is_empty() {
        return Err(token_err(format!(
            "no key for algorithm {:?}{}",
            header.alg,
            header
                .kid
                .as_deref()
                .map(|k| format!(" and key id {k}"))
                .unwrap_or_default()
        )));
    }
    let mut last = token_err("invalid signature");
    let mut claims = None;
    for k in candidates {
        let mut v = Validation::new(k.alg);
        // The claims are checked below against the caller's clock.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        match jsonwebtoken::decode::<Value>(token, &k.key, &v) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) => {
                last = match e.kind() {
                    ErrorKind::InvalidSignature => token_err("invalid signature"),
                    _ => token_err("the token is malformed"),
                }
            }
        }
    }
    let claims = claims.ok_or(last)?;
    claims_ok(rule, &claims, now)
}

fn claims_ok(rule: &JwtRule, claims: &Value, now: SystemTime) -> Result<(), AuthError> {
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let leeway = rule.leeway as f64;
    let exp = claims["exp"]
        .as_f64()
        .ok_or_else(|| token_err("the token has no exp"))?;
    if now > exp + leeway {
        return Err(token_err("the token has expired"));
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64)
        && now + leeway < nbf
    {
        return Err(token_err("the token is not valid yet (nbf)"));
    }
    if let Some(iss) = &rule.issuer
        && claims["iss"].as_str() != Some(iss.as_str())
    {
        return Err(token_err("wrong issuer"));
    }
    if let Some(aud) = &rule.audience {
        let ok = match &claims["aud"] {
            Value::String(s) => s == aud,
            Value::Array(a) => a.iter().any(|v| v.as_str() == Some(aud.as_str())),
            _ => false,
        };
        if !ok {
            return Err(token_err("wrong audience"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    use super::*;

    const T: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn rule(keys: Vec<JwtKey>) -> JwtRule {
        JwtRule {
            keys,
            issuer: Some("https://idp".into()),
            audience: Some("orders".into()),
            leeway: 30,
        }
    }

    fn claims(exp: u64) -> Value {
        json!({"sub": "ann", "iss": "https://idp", "aud": ["x", "orders"], "exp": exp, "nbf": T - 10})
    }

    fn hs(secret: &str, c: &Value) -> String {
        let t = encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        format!("Bearer {t}")
    }

    fn why(r: Result<(), AuthError>) -> String {
        match r {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn hs256_valid_expired_wrong_key_and_claims() {
        let r = rule(hs256("s3cret"));
        let now = at(T);
        assert_eq!(
            why(check(&r, Some(&hs("s3cret", &claims(T + 60))), now)),
            "ok"
        );
        // Within the leeway, then past it.
        assert_eq!(
            why(check(&r, Some(&hs("s3cret", &claims(T - 20))), now)),
            "ok"
        );
        assert_eq!(
            why(check(&r, Some(&hs("s3cret", &claims(T - 31))), now)),
            "invalid token: the token has expired"
        );
        assert_eq!(
            why(check(&r, Some(&hs("other", &claims(T + 60))), now)),
            "invalid token: invalid signature"
        );
        let mut c = claims(T + 60);
        c["aud"] = json!("billing");
        assert_eq!(
            why(check(&r, Some(&hs("s3cret", &c)), now)),
            "invalid token: wrong audience"
        );
        c = claims(T + 60);
        c["iss"] = json!("https://evil");
        assert_eq!(
            why(check(&r, Some(&hs("s3cret", &c)), now)),
            "invalid token: wrong issuer"
        );
        c = claims(T + 600);
        c["nbf"] = json!(T + 300);
        assert_eq!(
            why(check(&r, Some(&hs("s3cret", &c)), now)),
            "invalid token: the token is not valid yet (nbf)"
        );
        c = claims(0);
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            why(check(&r, Some(&hs("s3cret", &c)), now)),
            "invalid token: the token has no exp"
        );
        assert_eq!(why(check(&r, None, now)), "authentication required");
        assert_eq!(
            why(check(&r, Some("Basic eDp5"), now)),
            "authentication required"
        );
        assert_eq!(
            why(check(&r, Some("Bearer not.a.jwt"), now)),
            "invalid token: the token is malformed"
        );
    }

    #[test]
    fn es256_from_jwks_and_no_algorithm_confusion() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = pair.public_key().as_ref();
        let set = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
            "x": B64U.encode(&public[1..33]), "y": B64U.encode(&public[33..65]),
        }]});
        let keys = jwks(&set.to_string()).unwrap();
        assert_eq!(keys[0].alg, Algorithm::ES256);
        let r = rule(keys);
        let es256 = |kid: &str| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.into());
            let key = EncodingKey::from_ec_der(pkcs8.as_ref());
            let token = encode(&header, &claims(T + 60), &key).unwrap();
            why(check(&r, Some(&format!("Bearer {token}")), at(T)))
        };
        assert_eq!(es256("k1"), "ok");
        assert_eq!(
            es256("k2"),
            "invalid token: no key for algorithm ES256 and key id k2"
        );
        // An HS256 token signed with the public key's bytes is not accepted.
        assert_eq!(
            why(check(&r, Some(&hs("anything", &claims(T + 60))), at(T))),
            "invalid token: no key for algorithm HS256"
        );
        assert!(jwks(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).is_err());
        assert!(jwks(r#"{"keys": []}"#).is_err());
    }
}
