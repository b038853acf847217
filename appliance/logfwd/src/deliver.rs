//! Getting queued messages to one collector: a connection (TCP, or TLS
//! over it) kept open, reopened with backoff when it breaks, and the
//! queue in `buffer` drained in order; UDP datagrams sent as lines come.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_store::config::{Collector, Transport};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Notify;

use crate::buffer::Buffer;
use crate::format;

/// First wait after a failed connect; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two connects: how long at most lines wait after
/// a collector comes back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes written per batch before the queue is told they left.
const BATCH: usize = 64 * 1024;

/// The wait after `failures` failed connects in a row (1 or more).
pub fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Calls `attempt` until it succeeds, waiting [`backoff`] between tries;
/// `on_failure` hears each failure with its count (1 for the first).
pub async fn with_backoff<T, E, F, Fut>(mut attempt: F, mut on_failure: impl FnMut(u32, &E)) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failures = 0;
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => {
                failures += 1;
                on_failure(failures, &e);
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// What `logfwd.status` shows of one collector.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub collector: String,
    /// `connected`, `down` (stream collectors) or `udp`.
    pub state: &'static str,
    pub sent: u64,
    pub dropped: u64,
    /// Inside a run of drops: logged once when it starts, once when the
    /// queue has drained again.
    #[serde(skip)]
    pub dropping: bool,
    pub last_error: Option<String>,
}

pub type SharedStats = Arc<Mutex<Stats>>;

pub fn update(stats: &SharedStats, f: impl FnOnce(&mut Stats)) {
    let mut g = stats.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g);
}

/// The key of a collector's queue and stats: transport, host and port.
pub fn key(c: &Collector) -> String {
    let t = match c.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    };
    format!("{t}:{}:{}", c.host, c.port_or_default())
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

fn tls_config(ca: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = alpharen_nodetls::client_roots(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn connect(c: &Collector) -> Result<Box<dyn Conn>, String> {
    let addr = (c.host.as_str(), c.port_or_default());
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    if c.transport != Transport::Tls {
        return Ok(Box::new(tcp));
    }
    let config = tls_config(c.ca.as_deref())?;
    let name = c.server_name.clone().unwrap_or_else(|| c.host.clone());
    let name =
        ServerName::try_from(name.clone()).map_err(|_| format!("{name:?} is not a server name"))?;
    let tls = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| format!("no TLS handshake within {CONNECT_TIMEOUT:?}"))?
    .map_err(|e| format!("TLS: {e}"))?;
    Ok(Box::new(tls))
}

/// Whether the collector closed the connection. Collectors send nothing
/// on a syslog connection, so anything readable is the end of it; checked
/// before each write, because a write into a connection the peer already
/// closed still "succeeds" once and its lines would be lost.
async fn closed(conn: &mut Box<dyn Conn>) -> bool {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(Duration::ZERO, conn.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// Drains `collector`'s queue for as long as the service runs.
pub async fn stream_collector(
    c: Collector,
    buffer: Arc<Mutex<Buffer>>,
    wake: Arc<Notify>,
    stats: SharedStats,
) {
    let k = key(&c);
    loop {
        let mut conn = with_backoff(
            || connect(&c),
            |failures, e: &String| {
                if failures == 1 {
                    tracing::warn!(collector = %k, error = %e, "syslog collector unreachable; keeping its lines on disk until it is back");
                }
                update(&stats, |s| {
                    s.state = "down";
                    s.last_error = Some(e.clone());
                });
            },
        )
        .await;
        tracing::info!(collector = %k, "connected to syslog collector");
        update(&stats, |s| s.state = "connected");
        let error = drain(&k, &mut conn, &buffer, &wake, &stats).await;
        tracing::warn!(collector = %k, error = %error, "lost the syslog collector; reconnecting");
        update(&stats, |s| {
            s.state = "down";
            s.last_error = Some(error);
        });
        // A collector that takes the connection and drops it at once (or
        // a queue that cannot be read) must not make a busy loop.
        tokio::time::sleep(FIRST_BACKOFF).await;
    }
}

/// Writes queued frames until the connection fails; the reason.
async fn drain(
    k: &str,
    conn: &mut Box<dyn Conn>,
    buffer: &Arc<Mutex<Buffer>>,
    wake: &Notify,
    stats: &SharedStats,
) -> String {
    loop {
        let batch = {
            let b = buffer.lock().unwrap_or_else(|p| p.into_inner());
            b.peek(k, BATCH)
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => return e.to_string(),
        };
        let Some(last) = batch.last().map(|b| b.0) else {
            end_drop_episode(k, stats);
            let mut buf = [0u8; 256];
            tokio::select! {
                _ = wake.notified() => continue,
                r = conn.read(&mut buf) => match r {
                    Ok(0) => return "the collector closed the connection".into(),
                    Err(e) => return e.to_string(),
                    Ok(_) => return "the collector sent data on a syslog connection".into(),
                },
            }
        };
        if closed(conn).await {
            return "the collector closed the connection".into();
        }
        let bytes: Vec<u8> = batch.iter().flat_map(|b| b.1.iter().copied()).collect();
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            conn.write_all(&bytes).await?;
            conn.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return format!("write stalled for {WRITE_TIMEOUT:?}"),
        }
        let removed = buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove_through(k, last);
        if let Err(e) = removed {
            return e.to_string();
        }
        update(stats, |s| s.sent += batch.len() as u64);
    }
}

/// Counts `n` lines dropped from a full queue; true when this starts a
/// run of drops (the one time it is logged).
pub fn note_dropped(stats: &SharedStats, n: u64) -> bool {
    let mut starts = false;
    update(stats, |s| {
        s.dropped += n;
        starts = !s.dropping;
        s.dropping = true;
    });
    starts
}

/// Ends a run of drops when the queue has drained; true if one ended.
fn drained(stats: &SharedStats) -> bool {
    let mut ended = false;
    update(stats, |s| {
        ended = s.dropping;
        s.dropping = false;
    });
    ended
}

/// A queue that drained after dropping lines: say how many went.
fn end_drop_episode(k: &str, stats: &SharedStats) {
    if drained(stats) {
        let total = stats.lock().unwrap_or_else(|p| p.into_inner()).dropped;
        tracing::warn!(collector = %k, dropped_total = total, "syslog buffer drained; lines were dropped while it was full (see logfwd.status)");
    }
}

/// Sends one datagram per line; nothing is kept for a collector that
/// does not listen (UDP cannot tell).
pub struct Udp {
    socket: Option<UdpSocket>,
    /// After a failed name lookup, none before this: a lookup per line
    /// would hold up every other collector while DNS is down.
    retry_at: Option<tokio::time::Instant>,
    collector: Collector,
    pub stats: SharedStats,
}

impl Udp {
    pub fn new(collector: Collector, stats: SharedStats) -> Udp {
        update(&stats, |s| s.state = "udp");
        Udp {
            socket: None,
            retry_at: None,
            collector,
            stats,
        }
    }

    pub fn key(&self) -> String {
        key(&self.collector)
    }

    pub async fn send(&mut self, message: &str) {
        let waiting = self
            .retry_at
            .is_some_and(|t| tokio::time::Instant::now() < t);
        if self.socket.is_none() && !waiting {
            match udp_socket(&self.collector).await {
                Ok(s) => self.socket = Some(s),
                Err(e) => {
                    self.retry_at = Some(tokio::time::Instant::now() + MAX_BACKOFF);
                    update(&self.stats, |s| {
                        s.dropped += 1;
                        s.last_error = Some(e);
                    });
                    return;
                }
            }
        }
        let datagram = format::truncate(message, format::UDP_MAX);
        let Some(socket) = &self.socket else {
            update(&self.stats, |s| s.dropped += 1);
            return;
        };
        match socket.send(datagram.as_bytes()).await {
            Ok(_) => update(&self.stats, |s| s.sent += 1),
            Err(e) => update(&self.stats, |s| {
                s.dropped += 1;
                s.last_error = Some(e.to_string());
            }),
        }
    }
}

async fn udp_socket(c: &Collector) -> Result<UdpSocket, String> {
    let addr = tokio::net::lookup_host((c.host.as_str(), c.port_or_default()))
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{} has no address", c.host))?;
    let local: std::net::SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(addr).await.map_err(|e| e.to_string())?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let waits: Vec<u64> = (1..=6).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_run_of_drops_is_reported_once_at_each_end() {
        let stats = SharedStats::default();
        assert!(note_dropped(&stats, 3));
        assert!(!note_dropped(&stats, 2));
        assert_eq!(stats.lock().unwrap().dropped, 5);
        assert!(drained(&stats));
        assert!(!drained(&stats));
        assert!(note_dropped(&stats, 1), "a new run after the queue drained");
        assert_eq!(stats.lock().unwrap().dropped, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_the_backoff_between_tries() {
        let start = tokio::time::Instant::now();
        let mut tries = 0;
        let mut heard = Vec::new();
        let v = with_backoff(
            || {
                tries += 1;
                let n = tries;
                async move { if n < 5 { Err("refused") } else { Ok(n) } }
            },
            |failures, _e: &&str| heard.push(failures),
        )
        .await;
        assert_eq!(v, 5);
        assert_eq!(heard, [1, 2, 3, 4]);
        assert_eq!(start.elapsed(), Duration::from_secs(1 + 2 + 4 + 8));
    }

    #[tokio::test]
    async fn a_stream_collector_gets_the_queue_in_order_after_it_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = Arc::new(Mutex::new(Buffer::open(dir.path(), 1 << 20).unwrap()));
        // A port nobody listens on yet: the lines wait on disk.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let c = Collector {
            host: "127.0.0.1".into(),
            port: Some(port),
            transport: Transport::Tcp,
            ca: None,
            server_name: None,
            facility: Default::default(),
        };
        let k = key(&c);
        for i in 0..5 {
            let frame = format::octet_frame(&format!("line {i}"));
            buffer
                .lock()
                .unwrap()
                .push(&[(k.as_str(), frame)], 1)
                .unwrap();
        }
        let wake = Arc::new(Notify::new());
        let stats = SharedStats::default();
        let task = tokio::spawn(stream_collector(c, buffer.clone(), wake, stats.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(stats.lock().unwrap().state, "down");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        let want = b"6 line 06 line 16 line 26 line 36 line 4";
        let mut got = vec![0u8; want.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, want);
        task.abort();
    }
}
