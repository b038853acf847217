//! The cluster CA and the members' certificates: routes between members
//! are TLS in both directions, and a peer is admitted only with a
//! certificate this CA signed. The CA's parameters are derived from the
//! cluster name alone, so any member holding the CA key can sign (the
//! issuer name and key identifier come out the same every time).

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

use crate::Error;

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

fn pki_err(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |e| Error::Pki(format!("{what}: {e}"))
}

fn ca_params(cluster: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("alpharen cluster {cluster} CA"));
    dn.push(DnType::OrganizationName, "ALPHA-REN cluster");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

fn validity(p: &mut CertificateParams, years: i32) {
    let now = std::time::SystemTime::now();
    p.not_before = (now - std::time::Duration::from_secs(3600)).into();
    p.not_after = (now + std::time::Duration::from_secs(years as u64 * 365 * 86400)).into();
}

/// A new cluster CA (ECDSA P-256, ten years).
pub fn new_ca(cluster: &str) -> Result<Pair, Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_err("CA key"))?;
    let mut params = ca_params(cluster);
    validity(&mut params, 10);
    let cert = params
        .self_signed(&key)
        .map_err(pki_err("CA certificate"))?;
    Ok(Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A member's certificate, for server and client use on the routes,
/// naming `node` and every address in `sans` (IPs or host names).
pub fn member(cluster: &str, ca_key_pem: &str, node: &str, sans: &[String]) -> Result<Pair, Error> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(pki_err("the cluster CA key"))?;
    let issuer = Issuer::new(ca_params(cluster), ca_key);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_err("member key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, node);
    let mut names = vec![node.to_string()];
    names.extend(sans.iter().cloned());
    names.dedup();
    for n in names {
        params.subject_alt_names.push(match n.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                n.clone()
                    .try_into()
                    .map_err(|e| Error::Pki(format!("{n:?} is not a host name: {e}")))?,
            ),
        });
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, 10);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(pki_err("member certificate"))?;
    Ok(Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// SHA-256 of the first certificate's DER in `pem`: what a join token
/// pins.
pub fn fingerprint(pem: &str) -> Result<[u8; 32], Error> {
    let der = cert_der(pem)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Ok(out)
}

/// The DER of the first certificate in `pem`.
fn cert_der(pem: &str) -> Result<Vec<u8>, Error> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        return Err(Error::Pki("no certificate in the PEM text".into()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|e| Error::Pki(format!("the certificate's PEM is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_certificate_chains_to_the_ca_and_any_holder_of_the_key_can_sign() {
        let ca = new_ca("lan1").unwrap();
        let a = member("lan1", &ca.key, "a", &["10.0.0.1".into()]).unwrap();
        let b = member("lan1", &ca.key, "b", &["10.0.0.2".into(), "b.lan".into()]).unwrap();
        assert!(a.cert.contains("BEGIN CERTIFICATE") && a.key.contains("PRIVATE KEY"));
        assert_ne!(fingerprint(&a.cert).unwrap(), fingerprint(&b.cert).unwrap());
        // Verified as a TLS peer would: by webpki against the CA.
        let ca_der = cert_der(&ca.cert).unwrap();
        let ca_cert = rustls_pki_types::CertificateDer::from(&ca_der[..]);
        let anchors = [webpki::anchor_from_trusted_cert(&ca_cert).unwrap()];
        let check = |pem: &str, name: Option<&str>| {
            let der = rustls_pki_types::CertificateDer::from(cert_der(pem).unwrap());
            let ee = webpki::EndEntityCert::try_from(&der).unwrap();
            let usage = ee.verify_for_usage(
                &[webpki::ring::ECDSA_P256_SHA256],
                &anchors,
                &[],
                rustls_pki_types::UnixTime::now(),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            );
            let named = name.is_none_or(|n| {
                ee.verify_is_valid_for_subject_name(
                    &rustls_pki_types::ServerName::try_from(n).unwrap(),
                )
                .is_ok()
            });
            usage.is_ok() && named
        };
        assert!(check(&b.cert, Some("10.0.0.2")));
        assert!(!check(&b.cert, Some("10.0.0.9")));
        // Another CA's key signs nothing this CA accepts.
        let other = new_ca("lan1").unwrap();
        let c = member("lan1", &other.key, "c", &[]).unwrap();
        assert!(!check(&c.cert, None));
    }

    #[test]
    fn fingerprint_needs_a_certificate() {
        assert!(fingerprint("nothing").is_err());
        let ca = new_ca("x").unwrap();
        assert_eq!(
            fingerprint(&ca.cert).unwrap(),
            fingerprint(&ca.cert).unwrap()
        );
    }
}
