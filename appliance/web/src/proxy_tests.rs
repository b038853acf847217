//! Unit tests of `proxy.rs`, kept apart so that file stays readable.

use super::*;
use alpharen_store::config::HealthCheck;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One client of the route, as each worker gets.
fn client(r: &ProxyRoute) -> Result<Backends, String> {
    client_tls(r).map(|(config, name)| backends(config, name)())
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
fn backend_urls_keep_scheme_and_bracket_ipv6() {
    let uri = |b| backend_uri(&route("a", None, b), "/x?y=1").map(|u| u.to_string());
    assert_eq!(
        uri("http://10.0.0.1:8080"),
        Some("http://10.0.0.1:8080/x?y=1".into())
    );
    assert_eq!(
        uri("https://app.lan"),
        Some("https://app.lan:443/x?y=1".into())
    );
    assert_eq!(
        uri("http://[fd00::1]:80/"),
        Some("http://[fd00::1]:80/x?y=1".into())
    );
    // Each request's URL: the route's base with the request's path.
    let rebased = |b, p: Option<&str>| {
        let base = backend_uri(&route("a", None, b), "/").unwrap();
        let p = p.map(|p| p.parse::<PathAndQuery>().unwrap());
        rebase(&base, p.as_ref()).map(|u| u.to_string())
    };
    assert_eq!(
        rebased("http://[fd00::1]:80/", Some("/x?y=1")),
        Some("http://[fd00::1]:80/x?y=1".into())
    );
    assert_eq!(
        rebased("https://app.lan", None),
        Some("https://app.lan:443/".into())
    );
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

fn get(r: &ProxyRoute) -> Request {
    let mut req = Request::new(Body::empty());
    *req.uri_mut() = backend_uri(r, "/").unwrap();
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
    let e = send(&c, &r, get(&r)).await.unwrap_err();
    assert!(matches!(e, Failure::ResponseTimeout(1)), "{e}");
    holder.abort();

    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = route("a", None, &format!("http://{}", gone.local_addr().unwrap()));
    drop(gone);
    let e = send(&c, &r, get(&r)).await.unwrap_err();
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

    let e = send(&client(&r).unwrap(), &r, get(&r)).await.unwrap_err();
    assert!(matches!(e, Failure::Tls(_)), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");

    r.ca_file = Some(ca.display().to_string());
    let resp = send(&client(&r).unwrap(), &r, get(&r)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        probe(
            client(&r).unwrap(),
            backend_uri(&r, "/").unwrap(),
            HeaderValue::from_static("a"),
            Some(204)
        )
        .await,
        Err("GET / answered 200 OK".into())
    );

    r.tls_server_name = Some("other.test".into());
    let e = send(&client(&r).unwrap(), &r, get(&r)).await.unwrap_err();
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
        first[0].clients.as_ref().map(Vec::len),
        Ok(2),
        "a pool per worker"
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
