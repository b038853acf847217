//! The submission listener's TLS: the ACME certificate the web service
//! keeps in `<state>/tls/acme.pem` (key: the secret `web.acme.key`) when
//! it names `mail.tls_name`, else the node's own pair in `<state>/tls/`
//! (the web service makes a self-signed one on first start; an uploaded
//! one replaces it). Looked at at every STARTTLS, so a renewal needs no
//! restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The ACME certificate's key in the secret store (the web service's).
pub const ACME_KEY_SECRET: &str = "web.acme.key";

/// `acme.pem` as last read and the settings it gave (`None`: not usable
/// for `mail.tls_name`), so the key is asked for once per certificate.
pub type AcmeCache = Mutex<Option<(Vec<u8>, Option<Arc<rustls::ServerConfig>>)>>;

fn pair(state_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn acme_file(state_dir: &Path) -> PathBuf {
    state_dir.join("tls").join("acme.pem")
}

pub fn available(state_dir: &Path) -> bool {
    let (cert, key) = pair(state_dir);
    cert.exists() && key.exists()
}

/// Whether a certificate name (`*.z.example` covers one label) covers `host`.
pub fn name_covers(cert_name: &str, host: &str) -> bool {
    let cert_name = cert_name.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    match cert_name.strip_prefix("*.") {
        Some(base) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == base),
        None => cert_name == host,
    }
}

/// TLS settings from the ACME chain and key, when the chain's first
/// certificate names `host` and has not ended at `now` (unix seconds).
pub fn acme_config(
    chain_pem: &[u8],
    key_pem: &str,
    host: &str,
    now: i64,
) -> Result<rustls::ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("acme.pem: not a PEM certificate chain: {e}"))?;
    let leaf = chain.first().ok_or("acme.pem: no certificate")?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| format!("acme.pem: {e}"))?;
    let names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if !names.iter().any(|n| name_covers(n, host)) {
        return Err(format!(
            "the ACME certificate names {} but not {host}",
            names.join(", ")
        ));
    }
    if cert.validity().not_after.timestamp() <= now {
        return Err("the ACME certificate has ended".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("{ACME_KEY_SECRET}: {e}"))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("acme.pem with {ACME_KEY_SECRET}: {e}"))
}

/// The ACME settings for `host`, read again only when `acme.pem` changed
/// (a renewal): the key then comes from a fresh view, which holds it only
/// while `[acme]` is on.
async fn acme(
    state_dir: &Path,
    host: &str,
    cache: &AcmeCache,
) -> Option<Arc<rustls::ServerConfig>> {
    let pem = std::fs::read(acme_file(state_dir)).ok()?;
    if let Ok(c) = cache.lock()
        && let Some((seen, cfg)) = c.as_ref()
        && *seen == pem
    {
        return cfg.clone();
    }
    let made = match alpharen_rpc::view::view::<alpharen_store::View>(state_dir, "mail").await {
        Ok(view) => match view.secret(ACME_KEY_SECRET) {
            Some(key) => acme_config(&pem, key, host, alpharen_store::now_unix()),
            None => Err("[acme] is off or has no key yet".into()),
        },
        Err(e) => Err(format!("the supervisor's view: {e}")),
    };
    let cfg = match made {
        Ok(cfg) => {
            tracing::info!(host, "STARTTLS serves the ACME certificate");
            Some(Arc::new(cfg))
        }
        Err(e) => {
            tracing::info!(host, reason = %e, "STARTTLS serves the node's own certificate");
            None
        }
    };
    if let Ok(mut c) = cache.lock() {
        *c = Some((pem, cfg.clone()));
    }
    cfg
}

/// The acceptor for one STARTTLS: the ACME certificate when it names
/// `tls_name`, else the node's own pair.
pub async fn acceptor(
    state_dir: &Path,
    tls_name: Option<&str>,
    cache: &AcmeCache,
) -> Result<TlsAcceptor, String> {
    if let Some(host) = tls_name
        && let Some(cfg) = acme(state_dir, host, cache).await
    {
        return Ok(TlsAcceptor::from(cfg));
    }
    let (cert, key) = pair(state_dir);
    let config = alpharen_nodetls::server_config(&cert, &key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_one_label() {
        assert!(name_covers("mx.z.example", "MX.z.example."));
        assert!(name_covers("*.z.example", "mx.z.example"));
        assert!(!name_covers("*.z.example", "z.example"));
        assert!(!name_covers("*.z.example", "a.mx.z.example"));
        assert!(!name_covers("mx.z.example", "mx2.z.example"));
    }

    /// rcgen's default validity: 1975 to 4096.
    fn cert(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        (p.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn the_acme_certificate_serves_only_the_name_it_covers() {
        let now = alpharen_store::now_unix();
        let (c, k) = cert(&["*.z.example"]);
        assert!(acme_config(c.as_bytes(), &k, "mx.z.example", now).is_ok());
        let e = acme_config(c.as_bytes(), &k, "mx.other.example", now).unwrap_err();
        assert!(e.contains("not mx.other.example"), "{e}");
        let year_4100 = 67_254_000_000;
        let e = acme_config(c.as_bytes(), &k, "mx.z.example", year_4100).unwrap_err();
        assert!(e.contains("ended"), "{e}");
        let (_, other_key) = cert(&["*.z.example"]);
        assert!(acme_config(c.as_bytes(), &other_key, "mx.z.example", now).is_err());
    }
}
