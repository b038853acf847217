//! The submission listener's TLS: the node's own certificate pair in
//! `<state>/tls/` (the web service makes a self-signed one on first start;
//! an uploaded one replaces it), read at every STARTTLS so a renewal needs
//! no restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    let config = alpharen_nodetls::server_config(&cert, &key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
