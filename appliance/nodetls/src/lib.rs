//! The one way the node's TLS listeners (mail's STARTTLS, the integrator's
//! load balancer, the reaction engine's agent API) turn a PEM certificate
//! chain and key into a rustls server configuration, with ring as the
//! only crypto provider, and the one way its TLS clients with an optional
//! CA file (syslog collectors, outgoing SQL) choose what they trust.
//! Errors name the file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    server_config_with(cert, key, None)
}

/// The same, checking the client certificates `clients` asks for (the
/// integrator's `tls_client_cert` channels).
pub fn server_config_with(
    cert: &Path,
    key: &Path,
    clients: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<rustls::ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?;
    let builder = match clients {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("{}: {e}", cert.display()))
}

/// What a client trusts: the certificates of the PEM file `ca_file` when
/// one is given, else the public (webpki) roots.
pub fn client_roots(ca_file: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => add_pem(&mut roots, path)?,
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// The public (webpki) roots, and also the certificates of `ca_file` when
/// one is given: for clients that reach both public servers and private
/// ones (the proxy's backends, a dyndns provider).
pub fn public_roots_and(ca_file: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        add_pem(&mut roots, path)?;
    }
    Ok(roots)
}

fn add_pem(roots: &mut rustls::RootCertStore, path: &str) -> Result<(), String> {
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("{path}: {e}"))? {
        let cert = cert.map_err(|e| format!("{path}: {e}"))?;
        roots.add(cert).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_ca_file_both_trust_the_public_roots_and_a_bad_file_is_named() {
        let public = webpki_roots::TLS_SERVER_ROOTS.len();
        assert_eq!(client_roots(None).map(|r| r.len()), Ok(public));
        assert_eq!(public_roots_and(None).map(|r| r.len()), Ok(public));
        let missing = "/nonexistent/alpharen-ca.pem";
        for err in [client_roots(Some(missing)), public_roots_and(Some(missing))] {
            assert!(err.unwrap_err().starts_with(missing));
        }
    }
}
