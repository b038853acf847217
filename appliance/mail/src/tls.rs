//! The submission listener's TLS: the node's own certificate pair in
//! `<state>/tls/` (the web service makes a self-signed one on first start;
//! an uploaded one replaces it), read at every STARTTLS so a renewal needs
//! no restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

fn pair(state_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

pub fn available(state_dir: &Path) -> bool {
    let (cert, key) = pair(state_dir);
    cert.exists() && key.exists()
}

pub fn acceptor(state_dir: &Path) -> Result<TlsAcceptor, String> {
    let (cert, key) = pair(state_dir);
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key_der =
        PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("{}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
