//! HTTP/1.1 to a route's backend, as nginx's upstream `keepalive`: each
//! HTTPS worker keeps its own idle connections, takes the one used last
//! for a request, and has it back once the answer's body has gone on to
//! the client ([`Lease`]). No pool shared between threads, no timer or
//! task per request: a connection's task also closes it once it has been
//! unused through one of its [`IDLE_TIMEOUT`] looks (60 to 120 s).

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
use tokio_rustls::TlsConnector;

use super::{Failure, SendError, again, answer, failure, tcp};

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
    uses: Arc<Uses>,
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
    /// before it went out goes once more on a new one, and so does
    /// `replay`, its copy, when the connection dropped under an
    /// idempotent request ([`again`]).
    pub async fn send(
        self: &Arc<Self>,
        pool: Pool,
        route: &ProxyRoute,
        mut out: Request,
        replay: Option<Request>,
    ) -> Result<(hyper::Response<Incoming>, Lease), Failure> {
        let slot = self.slot(pool);
        if let Some((mut sender, uses)) = self.checkout(slot) {
            match answer(sender.try_send_request(out), route).await {
                Ok(resp) => return Ok((resp, self.lease(slot, sender, uses))),
                Err(e) => {
                    out = again(e, replay)?;
                    tracing::debug!(backend = %route.backend, "kept-alive connection closed under the request; sending it again on a new one");
                }
            }
        }
        // Boxed: connecting (TCP, TLS, handshake) is a future of
        // kilobytes that every proxied request's future would carry.
        let (mut sender, uses) = Box::pin(self.connect(route)).await?;
        let resp = answer(sender.try_send_request(out), route)
            .await
            .map_err(SendError::failure)?;
        Ok((resp, self.lease(slot, sender, uses)))
    }

    fn lease(self: &Arc<Self>, slot: usize, sender: SendRequest<Body>, uses: Arc<Uses>) -> Lease {
        Lease {
            h1: self.clone(),
            slot,
            conn: Some(Idle { sender, uses }),
        }
    }

    /// The idle connection used last that can take a request. One still
    /// finishing its last exchange (sending an upload the backend
    /// answered early) stays for later; closed ones go.
    fn checkout(&self, slot: usize) -> Option<(SendRequest<Body>, Arc<Uses>)> {
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
        let Idle { sender, uses } = found?;
        uses.taken();
        Some((sender, uses))
    }

    fn give_back(&self, slot: usize, conn: Idle) {
        if conn.sender.is_closed() {
            return;
        }
        conn.uses.given_back();
        if let Ok(mut idle) = self.idle[slot].lock() {
            idle.push(conn);
        }
    }

    /// A new connection (TCP, TLS, handshake) within `connect_timeout`.
    async fn connect(&self, route: &ProxyRoute) -> Result<(SendRequest<Body>, Arc<Uses>), Failure> {
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

async fn handshake<T>(io: T) -> Result<(SendRequest<Body>, Arc<Uses>), Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| failure(&e))?;
    let uses = Arc::new(Uses::in_use());
    let watched = uses.clone();
    tokio::spawn(async move {
        let mut conn = std::pin::pin!(conn.with_upgrades());
        let mut looked = watched.count();
        loop {
            tokio::select! {
                biased;
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "HTTP/1.1 backend connection ended");
                    }
                    return;
                }
                () = tokio::time::sleep(IDLE_TIMEOUT) => {}
            }
            let now = watched.count();
            if unused(looked, now) {
                return; // dropping the connection closes it
            }
            looked = now;
        }
    });
    sender.ready().await.map_err(|e| failure(&e))?;
    Ok((sender, uses))
}

/// How a connection has been used: a count that is odd while it has a
/// request. One relaxed add per checkout and per give-back; read by the
/// connection's task once per [`IDLE_TIMEOUT`] (no clock read per
/// request).
struct Uses(AtomicU64);

impl Uses {
    /// A new connection, made for a request.
    fn in_use() -> Uses {
        Uses(AtomicU64::new(1))
    }

    fn taken(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn given_back(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Whether a connection is to be closed: idle now, and not used since
/// the last look one [`IDLE_TIMEOUT`] ago. So it goes 60 to 120 s after
/// its last use.
fn unused(before: u64, now: u64) -> bool {
    before == now && now.is_multiple_of(2)
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
    fn a_connection_closes_when_idle_and_unused_since_the_last_look() {
        let u = Uses::in_use();
        let first = u.count();
        assert!(!unused(first, u.count()), "in use");
        u.given_back();
        assert!(!unused(first, u.count()), "used since the last look");
        let second = u.count();
        assert!(unused(second, u.count()), "idle since the last look");
        u.taken();
        u.given_back();
        assert!(!unused(second, u.count()), "used in between");
        u.taken();
        let third = u.count();
        assert!(!unused(third, u.count()), "in use all along");
    }
}
