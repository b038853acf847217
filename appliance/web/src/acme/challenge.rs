//! The challenge answers other than HTTP-01's: the TLS-ALPN-01 certificate
//! (RFC 8737) the HTTPS listener shows a validator asking for
//! `acme-tls/1`, and the DNS-01 TXT record name (RFC 8555 §8.4). Pure
//! parts only; the order in `order.rs` puts them in place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alpharen_store::config::AcmeChallenge;
use instant_acme::ChallengeType;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;

/// The ALPN protocol id of TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Host name (lower case) → the TLS-ALPN-01 certificate of the challenge
/// in flight for it.
pub type AlpnCerts = Arc<Mutex<HashMap<String, Arc<CertifiedKey>>>>;

/// instant-acme's name for the configured challenge.
pub fn challenge_type(c: AcmeChallenge) -> ChallengeType {
    match c {
        AcmeChallenge::Http01 => ChallengeType::Http01,
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Dns01 => ChallengeType::Dns01,
    }
}

/// Where the DNS-01 answer for `name` goes: a wildcard's is at its base
/// name (`*.z.example` and `z.example` share `_acme-challenge.z.example`).
pub fn txt_name(name: &str) -> String {
    let base = name.strip_prefix("*.").unwrap_or(name);
    format!("_acme-challenge.{}", base.trim_end_matches('.'))
}

/// A self-signed certificate for `name` alone with the critical
/// acmeIdentifier extension holding `digest` (SHA-256 of the key
/// authorization), on a key made for this one challenge.
pub fn alpn_cert(name: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    if digest.len() != 32 {
        return Err(format!(
            "the key authorization digest has {} bytes, not 32",
            digest.len()
        ));
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot make a key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
        .map_err(|e| format!("{name:?}: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign the challenge certificate: {e}"))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    // Not `from_der`: its key check parses the certificate with webpki,
    // which refuses the critical extension it does not know.
    let signing = crate::tls::provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(chain, signing))
}

/// The challenge certificate to show this ClientHello: only when it asks
/// for `acme-tls/1` and names a host with a challenge in flight.
pub fn alpn_answer(certs: &AlpnCerts, hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
    let wants = hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
    if !wants {
        return None;
    }
    let name = hello.server_name()?.to_ascii_lowercase();
    certs.lock().ok()?.get(&name).cloned()
}

/// The TLS settings for a validator's connection: the challenge
/// certificate and `acme-tls/1` as the only protocol.
pub fn alpn_config(ck: Arc<CertifiedKey>) -> Result<rustls::ServerConfig, String> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck)));
    cfg.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_challenge_maps_to_its_acme_type() {
        assert_eq!(challenge_type(AcmeChallenge::Http01), ChallengeType::Http01);
        assert_eq!(
            challenge_type(AcmeChallenge::TlsAlpn01),
            ChallengeType::TlsAlpn01
        );
        assert_eq!(challenge_type(AcmeChallenge::Dns01), ChallengeType::Dns01);
    }

    #[test]
    fn a_wildcard_shares_its_base_names_txt_record() {
        assert_eq!(txt_name("*.z.example"), "_acme-challenge.z.example");
        assert_eq!(txt_name("z.example"), "_acme-challenge.z.example");
        assert_eq!(txt_name("a.z.example."), "_acme-challenge.a.z.example");
    }

    #[test]
    fn the_alpn_certificate_names_the_host_and_carries_the_critical_digest() {
        let digest = [7u8; 32];
        let ck = alpn_cert("a.z.example", &digest).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(ck.cert[0].as_ref()).unwrap();
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["DNSName(a.z.example)"]);
        // id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31: critical, an OCTET
        // STRING of the 32-byte digest.
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert!(ext.critical);
        let mut want = vec![0x04, 32];
        want.extend_from_slice(&digest);
        assert_eq!(ext.value, want.as_slice());
        assert!(alpn_cert("a.z.example", &[1, 2, 3]).is_err());
    }

    #[test]
    fn the_validator_config_offers_only_acme_tls() {
        let ck = Arc::new(alpn_cert("a.z.example", &[0u8; 32]).unwrap());
        let cfg = alpn_config(ck).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"acme-tls/1".to_vec()]);
    }
}
