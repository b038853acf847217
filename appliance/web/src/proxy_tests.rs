//! Unit tests of `proxy.rs`, kept apart so that file stays readable.

use super::*;
use alpharen_store::config::HealthCheck;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The route's HTTP/1.1 connections, for one worker.
fn client(r: &ProxyRoute) -> Result<Arc<h1::H1>, String> {
    client_tls(r)
        .and_then(|tls| h1::H1::new(r, tls, 1))
        .map(Arc::new)
}

async fn send(
    c: &Arc<h1::H1>,
    r: &ProxyRoute,
    req: Request,
) -> Result<hyper::Response<hyper::body::Incoming>, Failure> {
    c.send(h1::Pool::Worker(0), r, req, None)
        .await
        .map(|(resp, _)| resp)
}

pub(super) fn route(host: &str, prefix: Option<&str>, backend: &str) -> ProxyRoute {
    ProxyRoute {
        host: host.into(),
        backend: backend.into(),
        path_prefix: prefix.map(str::to_string),
        vpn_only: false,
        connect_timeout: 5,
        response_timeout: 60,
        ca_file: None,
        tls_server_name: None,
        health: None,
        http2: Default::default(),
    }
}

#[test]
fn longest_prefix_on_segment_boundaries() {
    let routes = vec![
        route("app.z.example", None, "http://a:1"),
        route("app.z.example", Some("/api"), "http://b:1"),
    ];
    let pick = |h, p| choose(&routes, |r| r, h, p).map(|r| r.backend.as_str());
    assert_eq!(pick("APP.z.example", "/"), Some("http://a:1"));
    assert_eq!(pick("app.z.example", "/api"), Some("http://b:1"));
    assert_eq!(pick("app.z.example", "/api/x"), Some("http://b:1"));
    assert_eq!(pick("app.z.example", "/apix"), Some("http://a:1"));
    assert_eq!(pick("node.z.example", "/"), None);
}

#[test]
fn vpn_membership_and_hop_by_hop_headers() {
    let nets = vec![("10.8.0.0".parse().unwrap(), 24)];
    assert!(in_vpn(&nets, "10.8.0.7".parse().unwrap()));
    assert!(in_vpn(&nets, "::ffff:10.8.0.7".parse().unwrap()));
    assert!(!in_vpn(&nets, "10.9.0.7".parse().unwrap()));
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, "x-private".parse().unwrap());
    h.insert("x-private", "1".parse().unwrap());
    h.insert("x-kept", "1".parse().unwrap());
    // Hop-by-hop whether or not Connection names them.
    for name in [
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "upgrade",
    ] {
        h.insert(name, "1".parse().unwrap());
    }
    strip_hop_by_hop(&mut h);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("x-kept"));
}

fn get() -> Request {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = Uri::from_static("/");
    req
}

#[tokio::test]
async fn silent_and_absent_backends_give_504_and_502() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            held.push(c);
        }
    });
    let mut r = route("a", None, &format!("http://127.0.0.1:{port}"));
    r.response_timeout = 1;
    let c = client(&r).unwrap();
    let e = send(&c, &r, get()).await.unwrap_err();
    assert!(matches!(e, Failure::ResponseTimeout(1)), "{e}");
    holder.abort();

    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = route("a", None, &format!("http://{}", gone.local_addr().unwrap()));
    drop(gone);
    let e = send(&client(&r).unwrap(), &r, get()).await.unwrap_err();
    assert!(matches!(e, Failure::Unreachable(_)), "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
}

/// An HTTPS server with a self-signed certificate for `backend.test`
/// answering 200 to anything; its port and certificate PEM.
async fn tls_backend() -> (u16, String) {
    let (cert, key) = crate::tls::generate("backend.test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cp, &cert).unwrap();
    std::fs::write(&kp, &key).unwrap();
    let ck = crate::tls::load_pair(&cp, &kp).unwrap();
    let resolver = Arc::new(crate::tls::Resolver::new(ck));
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(crate::tls::server_config(resolver).unwrap()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = [0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
            let _ = tls.shutdown().await;
        }
    });
    (port, cert)
}

#[tokio::test]
async fn https_backends_are_verified_with_the_routes_ca() {
    let (port, cert) = tls_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert).unwrap();
    let mut r = route("a", None, &format!("https://127.0.0.1:{port}"));
    r.tls_server_name = Some("backend.test".into());

    let e = send(&client(&r).unwrap(), &r, get()).await.unwrap_err();
    assert!(matches!(e, Failure::Tls(_)), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");

    r.ca_file = Some(ca.display().to_string());
    let resp = send(&client(&r).unwrap(), &r, get()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        probe(
            client(&r).unwrap(),
            Arc::new(r.clone()),
            PathAndQuery::from_static("/"),
            HeaderValue::from_static("a"),
            Some(204)
        )
        .await,
        Err("GET / answered 200 OK".into())
    );

    r.tls_server_name = Some("other.test".into());
    let e = send(&client(&r).unwrap(), &r, get()).await.unwrap_err();
    assert!(matches!(e, Failure::Tls(_)), "name checked: {e}");

    r.ca_file = Some(dir.path().join("missing.pem").display().to_string());
    let e = client(&r).err().unwrap();
    assert!(
        e.starts_with("ca_file ") && e.contains("missing.pem"),
        "{e}"
    );
}

#[tokio::test]
async fn reload_keeps_unchanged_upstreams_and_stops_dropped_checkers() {
    let mut checked = route("b", None, "http://127.0.0.1:9");
    checked.health = Some(HealthCheck {
        interval: 3600,
        ..HealthCheck::default()
    });
    let plain = route("a", None, "http://127.0.0.1:9");
    let first = reconcile(&[], &[plain.clone(), checked.clone()], 2);
    let health = first[1].health.clone();
    assert!(first[1].checker.is_some() && first[0].checker.is_none());
    assert_eq!(
        first[0].h1.as_ref().map(|h1| h1.pools()),
        Ok(3),
        "a pool per worker and the checker's"
    );

    let mut changed = checked.clone();
    changed.health = None;
    let second = reconcile(&first, &[plain, changed], 2);
    assert!(Arc::ptr_eq(&first[0], &second[0]), "unchanged route kept");
    assert!(!Arc::ptr_eq(&first[1], &second[1]), "changed route rebuilt");
    drop(first);
    for _ in 0..100 {
        if Arc::strong_count(&health) == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        Arc::strong_count(&health),
        1,
        "the dropped route's checker ended"
    );
}

/// Every proxied request's future is held whole by its connection and
/// moved into place on each request, so what it holds inline is paid on
/// each request. An HTTP/2 connect (TCP, TLS, handshake) inline made it
/// 10 KB.
#[tokio::test]
async fn a_proxied_request_does_not_carry_a_connect_inline() {
    let r = route("a.example", None, "https://127.0.0.1:1");
    let u = Upstream::new(r.clone(), 1);
    let c = client(&r).expect("client");
    let f = forward(&c, &u, "a.example", None, Request::new(Body::empty()));
    let size = std::mem::size_of_val(&f);
    assert!(size < 4096, "the forward future holds {size} bytes");
}

/// A plain HTTP/1.1 backend answering `ok` to each request, the `k` 20 ms
/// after the rest; `close`
/// ends each connection after its answer. Counts the connections made.
async fn counting_backend(close: bool) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = c.read(&mut buf).await {
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let head = if close { "connection: close\r\n" } else { "" };
                        // The body's end comes later: an answer read only
                        // in part holds its connection.
                        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{head}\r\no");
                        if c.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        if c.write_all(b"k").await.is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// Sends `get()` through the worker's pool and reads the answer's body
/// to its end, as the client's connection does.
async fn fetch(c: &Arc<h1::H1>, r: &ProxyRoute) -> String {
    fetch_with(c, r, get(), Some(get())).await.unwrap()
}

async fn fetch_with(
    c: &Arc<h1::H1>,
    r: &ProxyRoute,
    req: Request,
    replay: Option<Request>,
) -> Result<String, Failure> {
    let (resp, lease) = c.send(h1::Pool::Worker(0), r, req, replay).await?;
    let body = h1::Answer::new(resp.into_body(), Some(lease));
    let bytes = axum::body::to_bytes(Body::new(body), 100).await.unwrap();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A plain HTTP/1.1 backend that answers `ok` to the first request of
/// each connection and drops the connection when the second arrives, as
/// a backend does whose idle timeout ends just as a request goes out:
/// with a FIN after reading it, or (`reset`) with a RST, unread.
async fn dropping_backend(reset: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if c.read(&mut buf).await.is_err() {
                    return;
                }
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if c.write_all(answer).await.is_err() {
                    return;
                }
                if reset {
                    // Closing with unread data sends a RST.
                    let _ = c.readable().await;
                } else {
                    let _ = c.read(&mut buf).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn an_idempotent_request_a_kept_alive_connection_dropped_goes_again() {
    let post = || {
        let mut req = Request::new(Body::from("form=1"));
        *req.method_mut() = axum::http::Method::POST;
        *req.uri_mut() = Uri::from_static("/");
        req
    };
    for reset in [false, true] {
        let port = dropping_backend(reset).await;
        let r = route("a", None, &format!("http://127.0.0.1:{port}"));
        let c = client(&r).unwrap();
        for _ in 0..3 {
            assert_eq!(fetch(&c, &r).await, "ok", "reset: {reset}");
        }
        // A POST may have been processed: its dropped connection is the
        // client's answer.
        let e = fetch_with(&c, &r, post(), Some(post())).await.unwrap_err();
        assert!(matches!(e, Failure::Unreachable(_)), "reset: {reset}: {e}");
        assert_eq!(fetch_with(&c, &r, post(), None).await.unwrap(), "ok");
    }
}

#[tokio::test]
async fn kept_alive_connections_are_used_again_and_closed_ones_replaced() {
    let (port, accepted) = counting_backend(false).await;
    let r = route("a", None, &format!("http://127.0.0.1:{port}"));
    let c = client(&r).unwrap();
    for _ in 0..3 {
        assert_eq!(fetch(&c, &r).await, "ok");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Health probes keep one connection of their own.
    for _ in 0..2 {
        let path = PathAndQuery::from_static("/health");
        let host = HeaderValue::from_static("a");
        let probed = probe(c.clone(), Arc::new(r.clone()), path, host, None).await;
        assert_eq!(probed, Ok(()));
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);

    let (port, accepted) = counting_backend(true).await;
    let r = route("a", None, &format!("http://127.0.0.1:{port}"));
    let c = client(&r).unwrap();
    for _ in 0..3 {
        assert_eq!(fetch(&c, &r).await, "ok");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
}
