//! The other servers the load balancer may send a request to: the ones in
//! `integrator.servers` and, in a cluster, the members that offer their
//! :11223 in their heartbeats (the member list is read every second, so a
//! member that joins is used and one that drains or goes down is not,
//! without a restart). Each is health-checked by HEAD every 2 s. A request
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

/// The remotes for `peers`: the ones already known keep their health,
/// load and RTT (and follow their drain state); new ones start unhealthy
/// until their first health check.
pub fn reconcile(old: &[Arc<Remote>], peers: &[Peer]) -> Vec<Arc<Remote>> {
    peers
        .iter()
        .map(|p| {
            match old.iter().find(|r| r.base == p.base && r.pin == p.pin) {
                Some(r) => {
                    if r.draining.swap(p.draining, Ordering::Relaxed) != p.draining {
                        tracing::info!(server = %r.base, draining = p.draining, "server drain state changed");
                    }
                    r.clone()
                }
                None => Arc::new(Remote::new(p)),
            }
        })
        .collect()
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
        let first = reconcile(&[], &[peer("http://b:1", false)]);
        first[0].healthy.store(true, Ordering::Relaxed);
        assert!(first[0].takes_new());
        let next = reconcile(
            &first,
            &[peer("http://b:1", true), peer("http://c:1", false)],
        );
        assert!(Arc::ptr_eq(&first[0], &next[0]));
        assert!(next[0].healthy.load(Ordering::Relaxed) && !next[0].takes_new());
        assert!(
            !next[1].takes_new(),
            "a new server waits for its first check"
        );
        assert!(reconcile(&next, &[]).is_empty());
    }
}
