//! The other servers the load balancer may send a request to: the ones in
//! `integrator.servers` and, in a cluster, the members that offer their
//! :11223 in their heartbeats (the member list is read every second, so a
//! member that joins is used and one that drains or goes down is not,
//! without a restart; one back within [`REMEMBER`] keeps what was known of
//! it). Each is health-checked by HEAD every 2 s. A request
//! to an https member goes over TLS pinned to the certificate it
//! announced, one connection per request.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::app::{App, HttpClient};
use crate::lb::{self, Peer};

/// Another server, with what the balancer knows of it.
pub struct Remote {
    pub base: String,
    /// The member it was discovered from; `None` for `integrator.servers`.
    pub node: Option<String>,
    pin: Option<[u8; 32]>,
    /// Its heartbeat says it is leaving: nothing new goes to it.
    pub draining: AtomicBool,
    pub healthy: AtomicBool,
    pub in_flight: AtomicU32,
    pub rtt_us: Mutex<f64>,
}

/// Why a request to a remote failed.
pub enum SendError {
    /// Nothing reached the server (no connection, no TLS session): the
    /// request can be served elsewhere.
    Unsent(String),
    /// It may have reached the server.
    Failed(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unsent(e) | SendError::Failed(e) => f.write_str(e),
        }
    }
}

fn unsent(e: impl std::fmt::Display) -> SendError {
    SendError::Unsent(e.to_string())
}

impl Remote {
    fn new(p: &Peer) -> Remote {
        Remote {
            base: p.base.clone(),
            node: p.node.clone(),
            pin: p.pin,
            draining: AtomicBool::new(p.draining),
            healthy: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            rtt_us: Mutex::new(0.0),
        }
    }

    /// Whether it may take a new request.
    pub fn takes_new(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }

    /// Sends `req` (an absolute URI under [`Remote::base`]).
    pub async fn send(
        &self,
        client: &HttpClient,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, SendError> {
        let Some(pin) = self.pin else {
            return client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    unsent(&e)
                } else {
                    SendError::Failed(e.to_string())
                }
            });
        };
        let mut req = req;
        let uri = req.uri().clone();
        let host = uri
            .host()
            .ok_or_else(|| unsent("no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let tcp = tokio::net::TcpStream::connect((host.as_str(), uri.port_u16().unwrap_or(443)))
            .await
            .map_err(unsent)?;
        let _ = tcp.set_nodelay(true);
        let config = crate::sqltls::pinned_config(pin).map_err(unsent)?;
        let name = rustls::pki_types::ServerName::try_from(host).map_err(unsent)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(unsent)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(unsent)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        *req.uri_mut() = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(unsent)?;
        if let Some(a) = uri.authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            req.headers_mut().insert(HOST, v);
        }
        sender
            .send_request(req)
            .await
            .map_err(|e| SendError::Failed(e.to_string()))
    }

    /// HEAD on its root; any HTTP answer within `limit` is health.
    async fn check(&self, client: &HttpClient, limit: Duration) -> bool {
        let Ok(req) = Request::head(format!("{}/", self.base))
            .header("user-agent", "alpharen-integrator")
            .body(Full::new(Bytes::new()))
        else {
            return false;
        };
        match tokio::time::timeout(limit, self.send(client, req)).await {
            Ok(Ok(resp)) => {
                let _ = resp.into_body().collect().await;
                true
            }
            _ => false,
        }
    }
}

/// How long the balancer remembers a server that left its list. While a
/// node joins under load every member's heartbeats can stall past
/// [`alpharen_cluster::members::DOWN_AFTER_MS`]: the members show down for
/// a read or two and come back. Remembered, they keep their health and
/// round trip instead of starting over unhealthy, with a first round trip
/// measured while they are at their busiest.
pub const REMEMBER: Duration = Duration::from_secs(60);

/// Servers that left the list, with when they left.
pub type Gone = Vec<(Instant, Arc<Remote>)>;

/// The remotes for `peers`: the ones already known (in the list, or gone
/// from it less than [`REMEMBER`] before `now`) keep their health, load
/// and RTT (and follow their drain state); new ones start unhealthy until
/// their first health check. Also the servers gone from the list now.
pub fn reconcile(
    old: &[Arc<Remote>],
    gone: &[(Instant, Arc<Remote>)],
    peers: &[Peer],
    now: Instant,
) -> (Vec<Arc<Remote>>, Gone) {
    let recent = || {
        gone.iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) < REMEMBER)
    };
    let new: Vec<Arc<Remote>> = peers
        .iter()
        .map(|p| {
            let same = |r: &&Arc<Remote>| r.base == p.base && r.pin == p.pin;
            match old.iter().find(same).or_else(|| recent().map(|(_, r)| r).find(same)) {
                Some(r) => {
                    if r.draining.swap(p.draining, Ordering::Relaxed) != p.draining {
                        tracing::info!(server = %r.base, draining = p.draining, "server drain state changed");
                    }
                    r.clone()
                }
                None => Arc::new(Remote::new(p)),
            }
        })
        .collect();
    let kept = |r: &Arc<Remote>| new.iter().any(|n| Arc::ptr_eq(n, r));
    let still_gone = recent()
        .filter(|(_, r)| !kept(r))
        .cloned()
        .chain(old.iter().filter(|r| !kept(r)).map(|r| (now, r.clone())))
        .collect();
    (new, still_gone)
}

/// Checks every remote server with HEAD every 2 s; any HTTP answer within
/// a second counts as healthy, and its time feeds the RTT average.
pub async fn health_loop(app: Arc<App>) {
    loop {
        for r in app.remotes().iter() {
            let started = Instant::now();
            let ok = r.check(&app.client, Duration::from_secs(1)).await;
            if ok && let Ok(mut rtt) = r.rtt_us.lock() {
                *rtt = lb::ewma(*rtt, started.elapsed().as_micros() as f64);
            }
            if r.healthy.swap(ok, Ordering::Relaxed) != ok {
                tracing::info!(server = %r.base, healthy = ok, "server health changed");
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Reads the cluster's member list every second and follows it: outside
/// a cluster the list is empty; while the cluster cannot be read the last
/// list stands (a member that is down is dropped by its health check).
pub async fn discovery_loop(app: Arc<App>) {
    let mut last_error = String::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let members = match app.engine.data.cluster.kv() {
            Ok(None) => Vec::new(),
            Err(_) => continue,
            Ok(Some(kv)) => match tokio::task::spawn_blocking(move || kv.members()).await {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    let e = e.to_string();
                    if e != last_error {
                        tracing::warn!(error = %e, "the balancer keeps its last member list");
                        last_error = e;
                    }
                    continue;
                }
                Err(_) => continue,
            },
        };
        last_error.clear();
        app.set_members(members);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(base: &str, draining: bool) -> Peer {
        Peer {
            base: base.into(),
            node: Some("b".into()),
            pin: None,
            draining,
        }
    }

    #[test]
    fn known_servers_keep_their_state_and_follow_the_drain() {
        let now = Instant::now();
        let (first, _) = reconcile(&[], &[], &[peer("http://b:1", false)], now);
        first[0].healthy.store(true, Ordering::Relaxed);
        assert!(first[0].takes_new());
        let (next, gone) = reconcile(
            &first,
            &[],
            &[peer("http://b:1", true), peer("http://c:1", false)],
            now,
        );
        assert!(Arc::ptr_eq(&first[0], &next[0]) && gone.is_empty());
        assert!(next[0].healthy.load(Ordering::Relaxed) && !next[0].takes_new());
        assert!(
            !next[1].takes_new(),
            "a new server waits for its first check"
        );
        assert!(reconcile(&next, &[], &[], now).0.is_empty());
    }

    #[test]
    fn a_server_back_within_a_minute_keeps_its_health_and_round_trip() {
        let t0 = Instant::now();
        let b = || [peer("http://b:1", false)];
        let (first, _) = reconcile(&[], &[], &b(), t0);
        first[0].healthy.store(true, Ordering::Relaxed);
        *first[0].rtt_us.lock().unwrap() = 14e3;
        // b shows down for a few reads (its heartbeats stalled), then is back.
        let (none, gone) = reconcile(&first, &[], &[], t0 + Duration::from_secs(1));
        assert!(none.is_empty() && gone.len() == 1);
        let (none, gone) = reconcile(&none, &gone, &[], t0 + Duration::from_secs(2));
        assert!(
            none.is_empty() && gone.len() == 1,
            "it left at 1 s, not 2 s"
        );
        let (back, gone) = reconcile(&none, &gone, &b(), t0 + Duration::from_secs(60));
        assert!(Arc::ptr_eq(&first[0], &back[0]) && gone.is_empty());
        assert!(back[0].takes_new());
        // Gone for a minute or more: it starts over.
        let (_, gone) = reconcile(&back, &[], &[], t0 + Duration::from_secs(61));
        let (later, gone) = reconcile(&[], &gone, &b(), t0 + Duration::from_secs(121));
        assert!(!Arc::ptr_eq(&first[0], &later[0]) && gone.is_empty());
        assert!(!later[0].takes_new());
        let (_, gone) = reconcile(&later, &[], &[], t0 + Duration::from_secs(121));
        assert!(
            reconcile(&[], &gone, &[], t0 + Duration::from_secs(181))
                .1
                .is_empty()
        );
    }

    #[test]
    fn a_server_back_with_another_certificate_starts_over() {
        let t0 = Instant::now();
        let (first, _) = reconcile(&[], &[], &[peer("https://b:1", false)], t0);
        first[0].healthy.store(true, Ordering::Relaxed);
        let (_, gone) = reconcile(&first, &[], &[], t0);
        let renewed = Peer {
            pin: Some([7; 32]),
            ..peer("https://b:1", false)
        };
        let (back, gone) = reconcile(&[], &gone, &[renewed], t0);
        assert!(!back[0].takes_new() && gone.len() == 1);
    }
}
