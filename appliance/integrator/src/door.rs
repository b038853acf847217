//! The load-balancer port's door: the accept loop, TLS as `integrator.tls`
//! says (the node's certificate by default; plain HTTP only with
//! `tls = "off"`), asking for a client certificate while a
//! `tls_client_cert` definition exists, and the limit on failed channel
//! authentications.
//!
//! Failures are counted per client network (IPv4 address, IPv6 /64) in
//! this process, not in the supervisor: every request here is checked, and
//! a control-socket round trip per request would cost more than the
//! request. They are not counted per credential: channel credentials are
//! shared by machines, and a per-credential lock would let any stranger
//! stop every legitimate caller of a channel.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alpharen_store::config::{Integrator, IntegratorTls, TlsMode};
use alpharen_store::limiter::{DEFAULT_CAP, LOGIN_MAX_PER_NET, LOGIN_WINDOW, Window, client_net};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::app::App;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Door {
    state_dir: PathBuf,
    /// The setting and client CAs the acceptor was built for, and the
    /// acceptor.
    tls: Mutex<Option<(Setting, TlsAcceptor)>>,
    last_tls_error: Mutex<Option<String>>,
    failures: Mutex<Window<IpAddr>>,
}

/// The certificate and key files a setting names; `None` for plain HTTP.
fn pem_files(state_dir: &Path, setting: &IntegratorTls) -> Option<(PathBuf, PathBuf)> {
    match setting {
        IntegratorTls::Mode(TlsMode::Off) => None,
        IntegratorTls::Mode(TlsMode::Node) => {
            let dir = state_dir.join("tls");
            Some((dir.join("cert.pem"), dir.join("key.pem")))
        }
        IntegratorTls::Files(f) => Some((PathBuf::from(&f.cert), PathBuf::from(&f.key))),
    }
}

/// What an acceptor depends on: `integrator.tls` and the CA texts of the
/// `tls_client_cert` definitions.
type Setting = (IntegratorTls, Vec<String>);

fn load(cert: &Path, key: &Path, config: &Integrator) -> Result<TlsAcceptor, String> {
    let clients = crate::clientcert::door_verifier(config)?;
    let mut config = alpharen_nodetls::server_config_with(cert, key, clients)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Door {
    pub fn new(state_dir: &Path) -> Door {
        Door {
            state_dir: state_dir.to_path_buf(),
            tls: Mutex::new(None),
            last_tls_error: Mutex::new(None),
            failures: Mutex::new(Window::new(LOGIN_MAX_PER_NET, LOGIN_WINDOW, DEFAULT_CAP)),
        }
    }

    /// SIGHUP: the certificate is read again at the next connection.
    pub fn reload(&self) {
        if let Ok(mut t) = self.tls.lock() {
            *t = None;
        }
    }

    /// `Ok(None)` for plain HTTP; `Err` when TLS is configured but the
    /// certificate cannot be used (the connection is then dropped, never
    /// served in the clear). Loaded once per setting, and retried on each
    /// connection while it fails (the web service makes the node's
    /// certificate at its first start, maybe after we started).
    fn acceptor(&self, config: &Integrator) -> Result<Option<TlsAcceptor>, String> {
        let Some((cert, key)) = pem_files(&self.state_dir, &config.tls) else {
            return Ok(None);
        };
        let setting = (config.tls.clone(), crate::clientcert::door_cas(config));
        let mut cached = self
            .tls
            .lock()
            .map_err(|_| "TLS lock poisoned".to_string())?;
        if let Some((s, a)) = cached.as_ref()
            && *s == setting
        {
            return Ok(Some(a.clone()));
        }
        let acceptor = load(&cert, &key, config)?;
        tracing::info!(cert = %cert.display(), client_cas = setting.1.len(), "load balancer TLS certificate loaded");
        *cached = Some((setting, acceptor.clone()));
        Ok(Some(acceptor))
    }

    /// Logs a TLS problem once, not at every connection.
    fn tls_error(&self, e: String) {
        if let Ok(mut last) = self.last_tls_error.lock()
            && last.as_deref() != Some(&e)
        {
            tracing::error!(error = %e, "load balancer TLS unusable; refusing connections until it is fixed");
            *last = Some(e);
        }
    }

    /// `Err(wait)` while the client's network has failed too often.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        self.failures
            .lock()
            .map_or(Ok(()), |f| f.check(&client_net(client), now))
    }

    pub fn failed(&self, client: IpAddr, now: Instant) {
        if let Ok(mut f) = self.failures.lock() {
            f.failure(&client_net(client), now);
        }
    }
}

pub async fn serve(listener: tokio::net::TcpListener, app: Arc<App>, door: Arc<Door>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (app, door) = (app.clone(), door.clone());
        tokio::spawn(async move {
            match door.acceptor(&app.config()) {
                Ok(None) => connection(TokioIo::new(stream), app, door, peer, None).await,
                Ok(Some(acceptor)) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let chain = tls.get_ref().1.peer_certificates().map(|c| {
                                Arc::new(c.iter().map(|c| c.clone().into_owned()).collect())
                            });
                            connection(TokioIo::new(tls), app, door, peer, chain).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                Err(e) => door.tls_error(e),
            }
        });
    }
}

async fn connection<I>(
    io: TokioIo<I>,
    app: Arc<App>,
    door: Arc<Door>,
    peer: SocketAddr,
    chain: Option<crate::clientcert::Chain>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let (app, door, chain) = (app.clone(), door.clone(), chain.clone());
        async move { Ok::<_, Infallible>(crate::http::handle(app, &door, peer.ip(), chain, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc)
        .with_upgrades()
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_when_off() {
        let dir = Path::new("/data");
        assert!(pem_files(dir, &IntegratorTls::Mode(TlsMode::Off)).is_none());
        let (c, k) = pem_files(dir, &IntegratorTls::default()).unwrap();
        assert_eq!(c, Path::new("/data/tls/cert.pem"));
        assert_eq!(k, Path::new("/data/tls/key.pem"));
    }

    #[test]
    fn missing_certificate_is_an_error_not_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        let door = Door::new(dir.path());
        assert!(door.acceptor(&Integrator::default()).is_err());
    }

    #[test]
    fn failures_lock_a_network_only() {
        let door = Door::new(Path::new("/nonexistent"));
        let t0 = Instant::now();
        let bad: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..LOGIN_MAX_PER_NET {
            door.failed(bad, t0);
        }
        assert!(door.check("2001:db8::2".parse().unwrap(), t0).is_err());
        assert!(door.check("192.0.2.1".parse().unwrap(), t0).is_ok());
    }
}
