//! TLS client certificates for `kind = "tls_client_cert"` channels. The
//! load-balancer port asks for a certificate (never demands one) when any
//! such definition exists and lets the handshake accept one that chains to
//! any of their CAs (the handshake does not know the channel yet); each
//! request's check then verifies the connection's chain again against its
//! own definition's CA and matches the subject against the names it
//! allows. The matching is pure and unit-tested.

use std::sync::Arc;

use alpharen_store::config::{
    Attribute, DN_ATTRIBUTES, Dn, SecurityDef, attribute_type, ca_certificates, parse_dn,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use serde_json::{Value, json};

use crate::security::AuthError;

/// The certificate chain a client presented on its connection (end entity
/// first), already verified by the handshake against some CA.
pub type Chain = Arc<Vec<CertificateDer<'static>>>;

/// What a definition allows, as configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowed {
    pub common_names: Vec<String>,
    pub subjects: Vec<Dn>,
    pub dns_names: Vec<String>,
}

/// One `tls_client_cert` definition, ready to check requests.
#[derive(Debug, Clone)]
pub struct CertRule {
    /// `None` when its CA could not be used (logged): every request is
    /// refused.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    allowed: Allowed,
}

/// What a service learns of the certificate a channel accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub subject: Dn,
    pub issuer: Dn,
    pub dns_names: Vec<String>,
    /// Hex, as `openssl x509 -serial` prints it.
    pub serial: String,
}

impl Identity {
    /// The subject's (first) common name.
    pub fn common_name(&self) -> Option<&str> {
        self.subject
            .iter()
            .flatten()
            .find(|(t, _)| t == "CN")
            .map(|(_, v)| v.as_str())
    }

    /// For the worker: `self.request.http.client_cert`.
    pub fn to_json(&self) -> Value {
        json!({
            "subject": dn_text(&self.subject),
            "common_name": self.common_name(),
            "dns_names": self.dns_names,
            "issuer": dn_text(&self.issuer),
            "serial": self.serial,
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(pems: &[&str]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for pem in pems {
        for c in ca_certificates(pem)? {
            roots.add(c).map_err(|e| e.to_string())?;
        }
    }
    Ok(roots)
}

/// The handshake's verifier: a certificate is asked for, not required,
/// and one that is sent must chain to one of the definitions' CAs. `None`
/// when no definition checks client certificates (none is asked for).
pub fn door_verifier(
    config: &alpharen_store::config::Integrator,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let pems: Vec<&str> = cert_defs(config).filter_map(|d| d.ca.as_deref()).collect();
    if pems.is_empty() {
        return Ok(None);
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&pems)?), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("client certificate CAs: {e}"))?;
    Ok(Some(verifier))
}

/// The CA texts the handshake trusts, to tell when they change.
pub fn door_cas(config: &alpharen_store::config::Integrator) -> Vec<String> {
    cert_defs(config).filter_map(|d| d.ca.clone()).collect()
}

fn cert_defs(config: &alpharen_store::config::Integrator) -> impl Iterator<Item = &SecurityDef> {
    config
        .security
        .iter()
        .filter(|d| d.kind == alpharen_store::config::TLS_CLIENT_CERT)
}

impl CertRule {
    pub fn for_def(def: &SecurityDef) -> CertRule {
        let verifier = roots(&[def.ca.as_deref().unwrap_or_default()])
            .and_then(|r| {
                WebPkiClientVerifier::builder_with_provider(Arc::new(r), provider())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| {
                tracing::warn!(security = %def.name, error = %e, "CA not usable; the definition refuses every certificate");
            })
            .ok();
        CertRule {
            verifier,
            // The config check refused names that do not parse.
            allowed: Allowed {
                common_names: def.common_names.clone(),
                subjects: def
                    .subjects
                    .iter()
                    .filter_map(|s| parse_dn(s).ok())
                    .collect(),
                dns_names: def.dns_names.clone(),
            },
        }
    }
}

/// Checks the connection's certificate chain against a definition.
pub fn check(
    rule: &CertRule,
    chain: Option<&[CertificateDer<'static>]>,
) -> Result<Identity, AuthError> {
    let Some((end, intermediates)) = chain.and_then(|c| c.split_first()) else {
        return Err(AuthError::NoCertificate);
    };
    let verifier = rule.verifier.as_ref().ok_or_else(|| {
        AuthError::Certificate("the channel's CA is not usable (see the node's log)".into())
    })?;
    verifier
        .verify_client_cert(end, intermediates, UnixTime::now())
        .map_err(|e| AuthError::Certificate(format!("not signed by this channel's CA ({e})")))?;
    let id = identity(end).map_err(AuthError::Certificate)?;
    if allows(&rule.allowed, &id) {
        Ok(id)
    } else {
        Err(AuthError::Subject(dn_text(&id.subject)))
    }
}

/// Whether any allowed name matches: the subject's common name, the whole
/// subject (each value exactly), or a DNS name of its subject alternative
/// name (ASCII case ignored, wildcards compared as text).
pub fn allows(allowed: &Allowed, id: &Identity) -> bool {
    let cns = id.subject.iter().flatten().filter(|(t, _)| t == "CN");
    cns.clone().any(|(_, v)| allowed.common_names.contains(v))
        || allowed.subjects.contains(&id.subject)
        || id
            .dns_names
            .iter()
            .any(|n| allowed.dns_names.iter().any(|a| a.eq_ignore_ascii_case(n)))
}

/// The subject, issuer, DNS names and serial of a DER certificate.
pub fn identity(der: &CertificateDer<'_>) -> Result<Identity, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|g| match g {
                x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("its subject alternative name does not parse: {e}")),
    };
    Ok(Identity {
        subject: dn(cert.subject())?,
        issuer: dn(cert.issuer())?,
        dns_names,
        serial: cert
            .tbs_certificate
            .raw_serial_as_string()
            .replace(':', "")
            .to_uppercase(),
    })
}

/// A certificate's name in RFC 4514 order (the DER lists the most
/// specific RDN last).
fn dn(name: &x509_parser::x509::X509Name<'_>) -> Result<Dn, String> {
    let mut out: Dn = Vec::new();
    for rdn in name.iter() {
        let mut attrs: Vec<Attribute> = Vec::new();
        for a in rdn.iter() {
            let oid = a.attr_type().to_id_string();
            let kind = attribute_type(&oid).unwrap_or(oid);
            let value = a
                .as_str()
                .map_err(|_| format!("a {kind} of its name is not text"))?;
            attrs.push((kind, value.to_string()));
        }
        attrs.sort();
        out.push(attrs);
    }
    out.reverse();
    Ok(out)
}

/// RFC 4514 text of a name, which `subjects` takes back as it is.
pub fn dn_text(dn: &Dn) -> String {
    dn.iter()
        .map(|rdn| {
            rdn.iter()
                .map(|(t, v)| {
                    let shown = DN_ATTRIBUTES
                        .iter()
                        .find(|(n, _)| n == t)
                        .map_or(t.as_str(), |(n, _)| n);
                    format!("{shown}={}", escape(v))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn escape(v: &str) -> String {
    let mut out = String::new();
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(subject: &str, dns: &[&str]) -> Identity {
        Identity {
            subject: parse_dn(subject).unwrap(),
            issuer: parse_dn("CN=Test CA").unwrap(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            serial: "01".into(),
        }
    }

    #[test]
    fn a_subject_matches_by_common_name_whole_name_or_dns_name() {
        let allowed = Allowed {
            common_names: vec!["orders".into()],
            subjects: vec![parse_dn("CN=billing,O=Acme\\, Inc.,C=DE").unwrap()],
            dns_names: vec!["Api.Example".into()],
        };
        assert!(allows(&allowed, &id("CN=orders,O=Anyone", &[])));
        assert!(allows(
            &allowed,
            &id("CN=billing, O=Acme\\, Inc., C=DE", &[])
        ));
        assert!(allows(
            &allowed,
            &id("CN=other", &["x.example", "api.example"])
        ));
        // Near misses.
        assert!(
            !allows(&allowed, &id("CN=Orders", &[])),
            "values keep their case"
        );
        assert!(
            !allows(&allowed, &id("CN=billing,O=Acme\\, Inc.", &[])),
            "a whole name, not a prefix"
        );
        assert!(
            !allows(&allowed, &id("C=DE,O=Acme\\, Inc.,CN=billing", &[])),
            "RDN order counts"
        );
        assert!(!allows(&allowed, &id("O=orders", &["api.example.org"])));
        assert!(!allows(&Allowed::default(), &id("CN=orders", &[])));
    }

    #[test]
    fn names_print_as_rfc_4514_and_read_back() {
        let text = "CN=a\\,b+UID=7,O=\\#x\\ ,1.2.3.4=v";
        let dn = parse_dn(text).unwrap();
        assert_eq!(dn_text(&dn), text);
        assert_eq!(parse_dn(&dn_text(&dn)).unwrap(), dn);
        assert_eq!(id("CN=orders,O=A", &[]).common_name(), Some("orders"));
        assert_eq!(id("O=A", &[]).common_name(), None);
    }

    #[test]
    fn no_chain_is_missing_and_an_unusable_ca_refuses() {
        let rule = CertRule {
            verifier: None,
            allowed: Allowed::default(),
        };
        assert_eq!(check(&rule, None), Err(AuthError::NoCertificate));
        assert_eq!(check(&rule, Some(&[])), Err(AuthError::NoCertificate));
        let junk = [CertificateDer::from(vec![0x30, 0x00])];
        assert!(matches!(
            check(&rule, Some(&junk)),
            Err(AuthError::Certificate(_))
        ));
    }
}
