//! Certificates: a self-signed ECDSA P-256 one made at first start and kept
//! in `<state>/tls/` (key 0600, written atomically), or the operator's own
//! pair from `web.cert` / `web.key`, checked to belong together. The
//! resolver can be swapped on SIGHUP without dropping connections.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::Error;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Writes a file by rename, so a crash never leaves half a key.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The node's addresses, for the certificate's SANs.
fn node_ips() -> Vec<std::net::IpAddr> {
    let mut ips: Vec<std::net::IpAddr> = vec![
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            let ip: Option<std::net::IpAddr> = if let Some(v4) = addr.as_sockaddr_in() {
                Some(v4.ip().into())
            } else {
                addr.as_sockaddr_in6().map(|v6| v6.ip().into())
            };
            if let Some(ip) = ip
                && !ips.contains(&ip)
            {
                ips.push(ip);
            }
        }
    }
    ips
}

/// Makes a self-signed certificate for the host name and the node's IPs.
pub fn generate(hostname: &str) -> Result<(String, String), Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| Error::Tls(format!("cannot make a key: {e}")))?;
    let mut names = vec![hostname.to_string(), "localhost".to_string()];
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| Error::Tls(format!("bad host name {hostname:?}: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "ALPHA-REN node");
    for ip in node_ips() {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
    }
    let cert = params
        .self_signed(&key)
        .map_err(|e| Error::Tls(format!("cannot sign the certificate: {e}")))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The self-signed pair in `<state>/tls/`, made on first use. The key is
/// readable by the owner and its group (0640): the supervisor gives
/// `tls/` to the web user and the `alpharen` group, so the mail service
/// (STARTTLS) reads the same pair, and no other user does.
pub fn ensure_self_signed(state_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), Error> {
    let dir = state_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.display().to_string(), e))?;
    let (cert_pem, key_pem) = generate(hostname)?;
    write_atomic(&key, key_pem.as_bytes(), 0o640)
        .map_err(|e| Error::Io(key.display().to_string(), e))?;
    write_atomic(&cert, cert_pem.as_bytes(), 0o644)
        .map_err(|e| Error::Io(cert.display().to_string(), e))?;
    tracing::info!(cert = %cert.display(), "made a self-signed certificate");
    Ok((cert, key))
}

/// Loads a PEM pair and checks the key belongs to the first certificate.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: not a PEM private key: {e}", key.display()))?;
    let mismatch = || {
        format!(
            "{} does not belong to the certificate {}",
            key.display(),
            cert.display()
        )
    };
    let ck = CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => mismatch(),
        e => format!("{}: {e}", key.display()),
    })?;
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(_) => Err(mismatch()),
    }
}

/// SHA-256 fingerprint of the leaf certificate, as browsers show it.
pub fn fingerprint(ck: &CertifiedKey) -> String {
    ck.cert
        .first()
        .map(|c| {
            Sha256::digest(c.as_ref())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default()
}

/// Picks the pair to serve: the configured one if it loads, else the
/// self-signed one (so a bad upload never takes the console down).
pub fn choose(
    state_dir: &Path,
    web: &alpharen_store::config::Web,
    hostname: &str,
) -> Result<CertifiedKey, Error> {
    if let (Some(c), Some(k)) = (&web.cert, &web.key) {
        match load_pair(Path::new(c), Path::new(k)) {
            Ok(ck) => return Ok(ck),
            Err(e) => {
                tracing::error!(error = %e, "web.cert/web.key unusable; serving the self-signed certificate")
            }
        }
    }
    let (c, k) = ensure_self_signed(state_dir, hostname)?;
    load_pair(&c, &k).map_err(Error::Tls)
}

/// Serves whatever certificate is current; `set` swaps it.
#[derive(Debug)]
pub struct Resolver(RwLock<Arc<CertifiedKey>>);

impl Resolver {
    pub fn new(ck: CertifiedKey) -> Resolver {
        Resolver(RwLock::new(Arc::new(ck)))
    }

    pub fn set(&self, ck: CertifiedKey) {
        if let Ok(mut g) = self.0.write() {
            *g = Arc::new(ck);
        }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|g| g.clone())
    }
}

pub fn server_config(resolver: Arc<Resolver>) -> Result<rustls::ServerConfig, Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Session resumption without a full handshake: stateless tickets
    // (ring's ticketer, keys rotated every 6 hours) for TLS 1.3 and 1.2,
    // and rustls' default in-memory cache for TLS 1.2 clients without
    // ticket support; both shared by every worker.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| Error::Tls(e.to_string()))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn self_signed_is_made_once_and_readable_only_by_owner_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = ensure_self_signed(dir.path(), "node1").unwrap();
        let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let first = std::fs::read(&c).unwrap();
        ensure_self_signed(dir.path(), "node1").unwrap();
        assert_eq!(first, std::fs::read(&c).unwrap(), "kept across starts");
        assert!(load_pair(&c, &k).is_ok());
    }

    #[test]
    fn mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, _) = generate("a").unwrap();
        let (_, k2) = generate("b").unwrap();
        let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cp, c1).unwrap();
        std::fs::write(&kp, k2).unwrap();
        let e = load_pair(&cp, &kp).unwrap_err();
        assert!(e.contains("does not belong"), "{e}");
    }
}
