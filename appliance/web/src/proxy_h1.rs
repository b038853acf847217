//! HTTP/1.1 to a route's backend, as nginx's upstream `keepalive`: each
//! HTTPS worker keeps its own idle connections, takes the one used last
//! for a request, and has it back once the answer's body has gone on to
//! the client ([`Lease`]). No pool shared between threads, no timer or
//! task per request: a connection's task also closes it once it has been
//! unused for [`IDLE_TIMEOUT`].

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use alpharen_store::config::ProxyRoute;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::{Failure, SendError, answer, failure};

/// How long an unused connection is kept open (nginx's upstream
/// `keepalive_timeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whose connections: a worker's, or the health checker's (which runs
/// on the main runtime, not on a worker's).
#[derive(Debug, Clone, Copy)]
pub enum Pool {
    Worker(usize),
    Checker,
}

/// The HTTP/1.1 side of one route.
pub struct H1 {
    host: String,
    port: u16,
    /// With ALPN `http/1.1`, for an `https://` backend.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Idle connections, the one used last at the end: one list per
    /// worker, then the checker's.
    idle: Vec<Mutex<Vec<Idle>>>,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Arc<Since>,
}

impl H1 {
    /// `tls` is the route's client config and, when set, the name to
    /// verify in place of the URL's host.
    pub fn new(
        route: &ProxyRoute,
        (mut config, name): (rustls::ClientConfig, Option<ServerName<'static>>),
        workers: usize,
    ) -> Result<H1, String> {
        let (host, port) = route
            .backend_authority()
            .ok_or_else(|| format!("backend {:?} is not a URL", route.backend))?;
        let tls = if route.backend_tls() {
            let name = match name {
                Some(n) => n,
                None => ServerName::try_from(host.to_string())
                    .map_err(|e| format!("backend host {host}: {e}"))?,
            };
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(H1 {
            host: host.to_string(),
            port,
            tls,
            idle: (0..workers.max(1) + 1).map(|_| Mutex::default()).collect(),
        })
    }

    #[cfg(test)]
    pub fn pools(&self) -> usize {
        self.idle.len()
    }

    fn slot(&self, pool: Pool) -> usize {
        let checker = self.idle.len() - 1;
        match pool {
            Pool::Worker(i) => i % checker,
            Pool::Checker => checker,
        }
    }

    /// Sends on a kept-alive connection of `pool`, or on a new one
    /// (within `connect_timeout`), then waits `response_timeout` for the
    /// response headers. A request a kept-alive connection closed
    /// before it went out goes once more on a new one.
    pub async fn send(
        self: &Arc<Self>,
        pool: Pool,
        route: &ProxyRoute,
        mut out: Request,
    ) -> Result<(hyper::Response<Incoming>, Lease), Failure> {
        let slot = self.slot(pool);
        if let Some((mut sender, since)) = self.checkout(slot) {
            match answer(sender.try_send_request(out), route).await {
                Ok(resp) => return Ok((resp, self.lease(slot, sender, since))),
                Err(SendError::Unsent(again)) => out = *again,
                Err(SendError::Refused(f) | SendError::Failed(f)) => return Err(f),
            }
        }
        // Boxed: connecting (TCP, TLS, handshake) is a future of
        // kilobytes that every proxied request's future would carry.
        let (mut sender, since) = Box::pin(self.connect(route)).await?;
        match answer(sender.try_send_request(out), route).await {
            Ok(resp) => Ok((resp, self.lease(slot, sender, since))),
            Err(SendError::Unsent(_)) => Err(Failure::Unreachable(
                "the connection closed before the request went out".into(),
            )),
            Err(SendError::Refused(f) | SendError::Failed(f)) => Err(f),
        }
    }

    fn lease(self: &Arc<Self>, slot: usize, sender: SendRequest<Body>, since: Arc<Since>) -> Lease {
        Lease {
            h1: self.clone(),
            slot,
            conn: Some(Idle { sender, since }),
        }
    }

    /// The idle connection used last that can take a request. One still
    /// finishing its last exchange (sending an upload the backend
    /// answered early) stays for later; closed ones go.
    fn checkout(&self, slot: usize) -> Option<(SendRequest<Body>, Arc<Since>)> {
        let mut idle = self.idle[slot].lock().ok()?;
        let mut busy = Vec::new();
        let mut found = None;
        while let Some(c) = idle.pop() {
            if c.sender.is_ready() {
                found = Some(c);
                break;
            }
            if !c.sender.is_closed() {
                busy.push(c);
            }
        }
        idle.extend(busy.into_iter().rev());
        let Idle { sender, since } = found?;
        since.taken();
        Some((sender, since))
    }

    fn give_back(&self, slot: usize, conn: Idle) {
        if conn.sender.is_closed() {
            return;
        }
        conn.since.given_back();
        if let Ok(mut idle) = self.idle[slot].lock() {
            idle.push(conn);
        }
    }

    /// A new connection (TCP, TLS, handshake) within `connect_timeout`.
    async fn connect(
        &self,
        route: &ProxyRoute,
    ) -> Result<(SendRequest<Body>, Arc<Since>), Failure> {
        let made = async {
            let tcp = tcp(&self.host, self.port).await?;
            match &self.tls {
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| failure(&e))?;
                    handshake(tls).await
                }
                None => handshake(tcp).await,
            }
        };
        tokio::time::timeout(Duration::from_secs(route.connect_timeout), made)
            .await
            .map_err(|_| Failure::ConnectTimeout(route.connect_timeout))?
    }
}

/// A TCP connection to a backend, without Nagle's delay.
pub(super) async fn tcp(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| failure(&e))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

async fn handshake<T>(io: T) -> Result<(SendRequest<Body>, Arc<Since>), Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failure(&e))?;
    let since = Arc::new(Since(AtomicU64::new(IN_USE)));
    let watched = since.clone();
    tokio::spawn(async move {
        let mut conn = std::pin::pin!(conn.with_upgrades());
        // Dropping the connection closes it.
        while let Some(wait) = next_check(watched.idle_for()) {
            tokio::select! {
                biased;
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "HTTP/1.1 backend connection ended");
                    }
                    return;
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
    sender.ready().await.map_err(|e| failure(&e))?;
    Ok((sender, since))
}

/// When to look again whether an unused connection is to be closed
/// (`None`: now), given how long it has been unused (`None`: in use).
fn next_check(idle_for: Option<Duration>) -> Option<Duration> {
    match idle_for {
        None => Some(IDLE_TIMEOUT),
        Some(d) => IDLE_TIMEOUT.checked_sub(d).filter(|left| !left.is_zero()),
    }
}

/// Since when a connection has been idle, in milliseconds from the
/// process's first use of it ([`IN_USE`] while it has a request): one
/// relaxed store per checkout and give-back, read by the connection's
/// task once per [`IDLE_TIMEOUT`].
struct Since(AtomicU64);

const IN_USE: u64 = u64::MAX;

fn now_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(IN_USE - 1)
}

impl Since {
    fn taken(&self) {
        self.0.store(IN_USE, Ordering::Relaxed);
    }

    fn given_back(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            IN_USE => None,
            at => Some(Duration::from_millis(now_ms().saturating_sub(at))),
        }
    }
}

/// A connection out of its pool for one request, back in when dropped
/// (with the answer's body, [`Answer`]).
pub struct Lease {
    h1: Arc<H1>,
    slot: usize,
    conn: Option<Idle>,
}

impl Lease {
    /// The connection carries something else now (an upgrade): it is
    /// not given back.
    pub fn keep(mut self) {
        self.conn = None;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.h1.give_back(self.slot, conn);
        }
    }
}

/// A backend's answer body; over HTTP/1.1 with its connection's lease,
/// which ends when the body has been sent on (or dropped).
pub struct Answer {
    body: Incoming,
    _lease: Option<Lease>,
}

impl Answer {
    pub fn new(body: Incoming, lease: Option<Lease>) -> Answer {
        Answer {
            body,
            _lease: lease,
        }
    }
}

impl HttpBody for Answer {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_connections_close_after_the_idle_timeout() {
        assert_eq!(next_check(None), Some(IDLE_TIMEOUT), "in use: kept");
        assert_eq!(next_check(Some(Duration::ZERO)), Some(IDLE_TIMEOUT));
        assert_eq!(
            next_check(Some(Duration::from_secs(45))),
            Some(Duration::from_secs(15))
        );
        assert_eq!(next_check(Some(IDLE_TIMEOUT)), None);
        assert_eq!(next_check(Some(Duration::from_secs(600))), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_given_back_counts_as_idle_until_taken() {
        let since = Since(AtomicU64::new(IN_USE));
        assert_eq!(since.idle_for(), None);
        since.given_back();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(
            since
                .idle_for()
                .is_some_and(|d| d >= Duration::from_secs(30))
        );
        since.taken();
        assert_eq!(since.idle_for(), None);
    }
}
