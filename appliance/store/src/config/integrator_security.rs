//! `[[integrator.security]]`: the definitions channels are checked with
//! (basic, API key, HMAC signature, JWT bearer token, TLS client
//! certificate) and their checks.

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecurityDef {
    pub name: String,
    /// `basic`, `apikey`, `hmac`, `jwt` or `tls_client_cert`.
    pub kind: String,
    /// Basic auth user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic password, API key, HMAC key or JWT HS256 secret; moved into
    /// the secrets table and generated (uuid4) when omitted.
    #[serde(default)]
    pub password: Option<String>,
    /// Header carrying the API key (apikey only), default `X-API-Key`.
    #[serde(default)]
    pub header: Option<String>,
    /// Accepted clock skew in seconds: HMAC signatures (default 300), JWT
    /// `exp` and `nbf` (default 30).
    #[serde(default)]
    pub skew: Option<u64>,
    /// jwt only: the issuer's JWKS (a PEM-free JSON key set file on the
    /// node) for RS256/ES256 tokens; without it tokens are HS256 with the
    /// secret.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// jwt only: the `iss` a token must carry.
    #[serde(default)]
    pub issuer: Option<String>,
    /// jwt only: a value the token's `aud` must hold.
    #[serde(default)]
    pub audience: Option<String>,
    /// tls_client_cert only: the PEM text of the CA certificate(s) a
    /// client's certificate must chain to. Text, not a file: a CA
    /// certificate is public, so it is checked when the configuration is
    /// applied and travels with its revisions, exports and rollbacks.
    #[serde(default)]
    pub ca: Option<String>,
    /// tls_client_cert only: common names (CN) of subjects allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub common_names: Vec<String>,
    /// tls_client_cert only: whole subject names allowed, RFC 4514
    /// (`CN=orders,O=Acme,C=DE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// tls_client_cert only: DNS names of the subject alternative name
    /// allowed (ASCII case ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
}

/// The kind whose definitions check the TLS client certificate.
pub const TLS_CLIENT_CERT: &str = "tls_client_cert";

impl SecurityDef {
    /// Everything but the name's reservation and uniqueness (the list's).
    pub(super) fn validate(&self, at: &KeyPath, out: &mut Vec<Problem>) {
        check::object_name(out, &at.key("name"), &self.name);
        match self.kind.as_str() {
            "basic" => {
                if self.username.as_deref().is_none_or(str::is_empty) {
                    check::push(out, &at.key("username"), "required for kind \"basic\"");
                }
            }
            "apikey" | "hmac" | "jwt" | TLS_CLIENT_CERT => {
                if self.username.is_some() {
                    check::push(
                        out,
                        &at.key("username"),
                        format!("only for kind \"basic\", not {:?}", self.kind),
                    );
                }
            }
            other => check::push(
                out,
                &at.key("kind"),
                format!("{other:?} is not one of basic, apikey, hmac, jwt, tls_client_cert"),
            ),
        }
        if self.header.is_some() && self.kind != "apikey" {
            check::push(out, &at.key("header"), "only for kind \"apikey\"");
        }
        if let Some(h) = &self.header
            && (h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            check::push(
                out,
                &at.key("header"),
                format!("{h:?} is not a header name"),
            );
        }
        if self.skew.is_some() && self.kind != "hmac" && self.kind != "jwt" {
            check::push(out, &at.key("skew"), "only for kinds \"hmac\" and \"jwt\"");
        }
        jwt_fields(out, at, self);
        cert_fields(out, at, self);
        if self.skew.is_some_and(|s| s == 0 || s > 3600) {
            check::push(out, &at.key("skew"), "must be 1-3600 seconds");
        }
        if self.password.as_deref() == Some("") {
            check::push(
                out,
                &at.key("password"),
                "empty; omit it to have one generated",
            );
        }
    }
}

/// The keys only a `tls_client_cert` definition has: a CA that parses,
/// at least one allowed subject, and no secret.
fn cert_fields(out: &mut Vec<Problem>, at: &KeyPath, def: &SecurityDef) {
    let lists = [
        ("common_names", &def.common_names),
        ("subjects", &def.subjects),
        ("dns_names", &def.dns_names),
    ];
    if def.kind != TLS_CLIENT_CERT {
        if def.ca.is_some() {
            check::push(out, &at.key("ca"), "only for kind \"tls_client_cert\"");
        }
        for (key, list) in lists {
            if !list.is_empty() {
                check::push(out, &at.key(key), "only for kind \"tls_client_cert\"");
            }
        }
        return;
    }
    match def.ca.as_deref() {
        None => check::push(
            out,
            &at.key("ca"),
            "required for kind \"tls_client_cert\": the PEM text of the CA certificate(s) clients' certificates are signed by",
        ),
        Some(pem) => {
            if let Err(e) = super::integrator_cert::ca_certificates(pem) {
                check::push(out, &at.key("ca"), e);
            }
        }
    }
    if lists.iter().all(|(_, l)| l.is_empty()) {
        check::push(
            out,
            &at.key("subjects"),
            "a tls_client_cert definition allows no certificate without common_names, subjects or dns_names",
        );
    }
    for (key, list) in lists {
        for (i, v) in list.iter().enumerate() {
            if v.trim().is_empty() {
                check::push(out, &at.key(key).index(i), "empty");
            } else if key == "subjects"
                && let Err(e) = super::integrator_cert::parse_dn(v)
            {
                check::push(out, &at.key(key).index(i), e);
            }
        }
    }
    if def.password.is_some() {
        check::push(
            out,
            &at.key("password"),
            "a tls_client_cert definition has no secret: the client's certificate is checked against the CA",
        );
    }
}

/// The keys only a `jwt` definition has: an absolute JWKS path, which
/// then takes the place of a secret.
fn jwt_fields(out: &mut Vec<Problem>, at: &KeyPath, def: &SecurityDef) {
    for (key, value) in [
        ("jwks_file", &def.jwks_file),
        ("issuer", &def.issuer),
        ("audience", &def.audience),
    ] {
        match value.as_deref() {
            Some(_) if def.kind != "jwt" => check::push(out, &at.key(key), "only for kind \"jwt\""),
            Some("") => check::push(out, &at.key(key), "empty; omit it instead"),
            _ => {}
        }
    }
    if let Some(f) = &def.jwks_file
        && def.kind == "jwt"
    {
        if !f.starts_with('/') {
            check::push(
                out,
                &at.key("jwks_file"),
                format!("{f:?} is not an absolute path"),
            );
        }
        if def.password.is_some() {
            check::push(
                out,
                &at.key("password"),
                "a JWKS definition has no secret (HS256 uses the secret, RS256/ES256 the JWKS)",
            );
        }
    }
}
