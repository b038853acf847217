//! HTTP/2 to a route's backend: one multiplexed connection per HTTPS
//! worker, made on first use and again once it has closed, in place of
//! the worker's pool of HTTP/1.1 connections.
//!
//! An `https://` backend is offered `h2` and `http/1.1` by ALPN. An
//! `http://` backend with `http2 = "h2c"` cannot negotiate, so before the
//! first connection (and after a failed one) it is sent the HTTP/2
//! connection preface on a connection of its own: a SETTINGS frame back
//! means it speaks HTTP/2. A backend that does neither is served over
//! HTTP/1.1 by the route's pool from then on (logged once).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use alpharen_store::config::{BackendHttp2, ProxyRoute};
use axum::body::Body;
use axum::http::Uri;
use axum::http::uri::{Authority, Scheme};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::Failure;

/// The client connection preface (RFC 9113 §3.4) and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// GOAWAY, no error: ends the probe's connection politely.
const GOAWAY: &[u8] = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// What the backend speaks, as learnt so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Speaks {
    Unknown = 0,
    Http2 = 1,
    Http1 = 2,
}

/// A worker's connection: its number and its sender.
pub type Conn = (u64, SendRequest<Body>);

/// The HTTP/2 side of one route.
pub struct H2 {
    host: String,
    port: u16,
    /// `https` or `http` with the route's host as authority: each
    /// request's `:authority` (HTTP/2 has no `Host` header of its own).
    scheme: Scheme,
    authority: Authority,
    /// With ALPN `h2`, `http/1.1`, for an `https://` backend.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    speaks: AtomicU8,
    /// One connection per worker, with its number (from `made`).
    conns: Vec<Mutex<Option<Conn>>>,
    made: AtomicU64,
    /// Held while a worker connects, so that its requests share one connection.
    connecting: Vec<tokio::sync::Mutex<()>>,
}

impl H2 {
    /// `None` when the route is HTTP/1.1 only (`http2 = "off"`, or an
    /// `http://` backend without `"h2c"`). `tls` is the route's client
    /// config for an `https://` backend, with the name to verify.
    pub fn new(
        route: &ProxyRoute,
        tls: Option<(rustls::ClientConfig, ServerName<'static>)>,
        workers: usize,
    ) -> Option<H2> {
        let wanted = match route.http2 {
            BackendHttp2::Off => false,
            BackendHttp2::Auto => route.backend_tls(),
            BackendHttp2::H2c => !route.backend_tls(),
        };
        if !wanted {
            return None;
        }
        let (host, port) = route.backend_authority()?;
        let tls = match (route.backend_tls(), tls) {
            (true, Some((mut config, name))) => {
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                Some((TlsConnector::from(std::sync::Arc::new(config)), name))
            }
            (true, None) => return None,
            (false, _) => None,
        };
        let workers = workers.max(1);
        Some(H2 {
            host: host.to_string(),
            port,
            scheme: if tls.is_some() {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            authority: Authority::try_from(route.host.trim_end_matches('.')).ok()?,
            tls,
            speaks: AtomicU8::new(Speaks::Unknown as u8),
            conns: (0..workers).map(|_| Mutex::new(None)).collect(),
            made: AtomicU64::new(0),
            connecting: (0..workers).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }

    pub fn speaks(&self) -> Speaks {
        match self.speaks.load(Ordering::Relaxed) {
            1 => Speaks::Http2,
            2 => Speaks::Http1,
            _ => Speaks::Unknown,
        }
    }

    fn learnt(&self, s: Speaks) {
        self.speaks.store(s as u8, Ordering::Relaxed);
    }

    /// After a failed HTTP/2 request: the next connection checks again.
    pub fn forget(&self) {
        if self.speaks() == Speaks::Http2 {
            self.learnt(Speaks::Unknown);
        }
    }

    /// The request URL over HTTP/2: the route's host as authority.
    pub fn uri(&self, path: Option<&axum::http::uri::PathAndQuery>) -> Option<Uri> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path.map_or("/", |p| p.as_str()))
            .build()
            .ok()
    }

    /// This worker's connection and its number, made if there is none
    /// open; `None`
    /// when the backend speaks only HTTP/1.1. `connect_timeout` bounds
    /// the connection (TCP, TLS, preface check and handshake).
    pub async fn sender(&self, worker: usize, route: &ProxyRoute) -> Result<Option<Conn>, Failure> {
        if self.speaks() == Speaks::Http1 {
            return Ok(None);
        }
        let i = worker % self.conns.len();
        if let Some(s) = self.open(i) {
            return Ok(Some(s));
        }
        let _connecting = self.connecting[i].lock().await;
        if let Some(s) = self.open(i) {
            return Ok(Some(s));
        }
        let timeout = Duration::from_secs(route.connect_timeout);
        // Boxed: connecting (TCP, TLS, handshake) is a future of kilobytes
        // that every proxied request's future would otherwise carry.
        let made = Box::pin(tokio::time::timeout(timeout, self.connect(timeout)))
            .await
            .map_err(|_| Failure::ConnectTimeout(route.connect_timeout))??;
        match made {
            Some(s) => {
                self.learnt(Speaks::Http2);
                let id = self.made.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut slot) = self.conns[i].lock() {
                    *slot = Some((id, s.clone()));
                }
                Ok(Some((id, s)))
            }
            None => {
                if self.speaks() != Speaks::Http1 {
                    tracing::info!(host = %route.host, backend = %route.backend,
                        "the backend does not speak HTTP/2; using HTTP/1.1");
                }
                self.learnt(Speaks::Http1);
                Ok(None)
            }
        }
    }

    fn open(&self, i: usize) -> Option<Conn> {
        let slot = self.conns[i].lock().ok()?;
        slot.as_ref().filter(|(_, s)| !s.is_closed()).cloned()
    }

    /// Connection `id` is going away (GOAWAY): the worker's next request
    /// makes a new one, even while this one finishes what it has.
    pub fn retire(&self, worker: usize, id: u64) {
        if let Ok(mut slot) = self.conns[worker % self.conns.len()].lock()
            && slot.as_ref().is_some_and(|(made, _)| *made == id)
        {
            *slot = None;
        }
    }

    /// A new HTTP/2 connection, or `None` when the backend turned HTTP/2 down.
    async fn connect(&self, timeout: Duration) -> Result<Option<SendRequest<Body>>, Failure> {
        let tcp = super::tcp(&self.host, self.port).await?;
        match &self.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| super::failure(&e))?;
                if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Ok(None);
                }
                handshake(tls).await.map(Some)
            }
            None => {
                if self.speaks() == Speaks::Unknown
                    && !speaks_h2c(super::tcp(&self.host, self.port).await?, timeout).await
                {
                    return Ok(None);
                }
                handshake(tcp).await.map(Some)
            }
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Body>, Failure>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| super::failure(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP/2 backend connection ended");
        }
    });
    Ok(sender)
}

/// Whether a plain-HTTP backend answers the HTTP/2 preface with its
/// SETTINGS (an HTTP/1.1 server answers 400 or 505, or closes).
async fn speaks_h2c(mut tcp: TcpStream, timeout: Duration) -> bool {
    let check = async {
        tcp.write_all(PREFACE).await?;
        let mut head = [0u8; 9];
        tcp.read_exact(&mut head).await?;
        let yes = is_settings(&head);
        if yes {
            tcp.write_all(GOAWAY).await?;
        }
        Ok::<_, std::io::Error>(yes)
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Ok(true)))
}

/// A frame header (RFC 9113 §4.1) of a SETTINGS frame on stream 0.
pub fn is_settings(head: &[u8; 9]) -> bool {
    head[3] == 0x04 && head[5..9] == [0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_frames_tell_http2_from_http1() {
        // nginx's first frame: SETTINGS, 18 bytes, stream 0.
        assert!(is_settings(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00"));
        // An ACK of our SETTINGS is one too.
        assert!(is_settings(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"));
        assert!(!is_settings(b"HTTP/1.1 "), "an HTTP/1.1 answer");
        // WINDOW_UPDATE, or SETTINGS on a stream: not a server preface.
        assert!(!is_settings(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00"));
        assert!(!is_settings(b"\x00\x00\x00\x04\x00\x00\x00\x00\x01"));
        assert_eq!(PREFACE.len(), 24 + 9);
        assert_eq!(GOAWAY.len(), 9 + 8);
    }
}
