//! The pure parts of `/metrics`: status JSON to series, and the text the
//! encoder writes for them.

use alpharen_rpc::services::ServiceMetrics;
use serde_json::json;

use super::gather::{Snapshot, wanted};
use super::http::Http;
use super::render::render;
use super::series::{self, Kind};

fn svc(name: &str, state: &str, pid: bool) -> ServiceMetrics {
    ServiceMetrics {
        name: name.into(),
        kind: "builtin".into(),
        state: state.into(),
        restarts: 3,
        rss_bytes: pid.then_some(4096),
        cpu_seconds: pid.then_some(1.5),
    }
}

#[test]
fn a_down_service_has_up_zero_and_no_process_figures() {
    let s = series::services(&[svc("web", "running", true), svc("mail", "failed", false)]);
    let up = &s[0];
    assert_eq!(up.name, "alpharen_service_up");
    assert_eq!(up.rows.len(), 2);
    assert_eq!(up.rows[1].1, 0.0);
    assert_eq!(
        up.rows[0].0,
        vec![
            ("service", "web".to_string()),
            ("kind", "builtin".to_string())
        ]
    );
    let rss = s
        .iter()
        .find(|x| x.name == "alpharen_service_resident_memory_bytes")
        .unwrap();
    assert_eq!(
        rss.rows.len(),
        1,
        "no memory row for a service without a process"
    );
    let cpu = s
        .iter()
        .find(|x| x.name == "alpharen_service_cpu_seconds")
        .unwrap();
    assert_eq!(cpu.kind, Kind::Counter);
}

#[test]
fn only_running_builtins_with_a_status_are_asked() {
    let mut extra = svc("myd", "running", true);
    extra.kind = "extra".into();
    let list = [
        svc("net", "running", true),
        svc("mail", "running", true),
        svc("vpn", "backoff", false),
        svc("web", "running", true),
        extra,
    ];
    assert_eq!(wanted(&list), vec!["net".to_string(), "mail".to_string()]);
}

#[test]
fn statuses_become_series() {
    let mail = series::of_status(
        "mail",
        &json!({"queued": 2, "dead": 0, "sessions": 1, "relay_usable": false}),
    );
    let queued = mail
        .iter()
        .find(|s| s.name == "alpharen_mail_queued_messages")
        .unwrap();
    assert_eq!(queued.rows, vec![(vec![], 2.0)]);

    let vpn = series::of_status(
        "vpn",
        &json!({"running": true, "peers": [
        {"name": "phone", "enabled": true, "rx_bytes": 10, "tx_bytes": 20, "latest_handshake_secs_ago": 5},
        {"name": "old", "enabled": false, "rx_bytes": 0, "tx_bytes": 0, "latest_handshake_secs_ago": null}]}),
    );
    let peers = vpn.iter().find(|s| s.name == "alpharen_vpn_peers").unwrap();
    assert_eq!(
        peers.rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![1.0, 1.0]
    );
    let hs = vpn
        .iter()
        .find(|s| s.name == "alpharen_vpn_peer_last_handshake_age_seconds")
        .unwrap();
    assert_eq!(hs.rows.len(), 1, "no handshake yet: no row");

    let pgha = series::of_status(
        "pgha",
        &json!({"groups": [{"key": "main", "master": 0, "servers": [
        {"pg": "10.0.0.1:5432", "role": "primary", "polled": {"replicas": [
            {"application_name": "b", "lag_bytes": 128, "lag_seconds": 0.5}]}},
        {"pg": "10.0.0.2:5432", "role": "standby", "polled": null}]}]}),
    );
    let lag = pgha
        .iter()
        .find(|s| s.name == "alpharen_pgha_replication_lag_bytes")
        .unwrap();
    assert_eq!(lag.rows.len(), 1);
    assert_eq!(lag.rows[0].1, 128.0);
    let master = pgha
        .iter()
        .find(|s| s.name == "alpharen_pgha_server_master")
        .unwrap();
    assert_eq!(
        master.rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![1.0, 0.0]
    );

    let integ = series::of_status(
        "integrator",
        &json!({"workers": 4, "idle_workers": 3, "workers_replaced": 1, "in_flight": 1, "channels": 2, "servers": [],
            "queues": [{"topic": "orders", "subscriber": "billing", "ready": 5, "in_flight": 1, "dead": 2}]}),
    );
    let q = integ
        .iter()
        .find(|s| s.name == "alpharen_integrator_queue_messages")
        .unwrap();
    let rows: Vec<(String, f64)> = q
        .rows
        .iter()
        .map(|(l, v)| {
            (
                l.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                *v,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "topic=orders,subscriber=billing,state=ready".to_string(),
                5.0
            ),
            (
                "topic=orders,subscriber=billing,state=in_flight".to_string(),
                1.0
            ),
            (
                "topic=orders,subscriber=billing,state=dead".to_string(),
                2.0
            ),
        ]
    );
    let w = integ
        .iter()
        .find(|s| s.name == "alpharen_integrator_workers")
        .unwrap();
    assert_eq!(
        w.rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![3.0, 1.0]
    );

    let dpx = series::of_status("dpx", &json!({"zone": null, "port": null}));
    assert!(
        dpx.iter().all(|s| s.rows.is_empty()),
        "no zone, no zone series"
    );
    assert!(series::of_status("ssh", &json!({})).is_empty());
    let dpx = series::of_status(
        "dpx",
        &json!({"zone": null, "port": null, "queries": {"total": 3,
            "by_type": {"A": 2, "MX": 1}, "by_rcode": {"NOERROR": 3}}}),
    );
    let rows = |name: &str| &dpx.iter().find(|s| s.name == name).unwrap().rows;
    assert_eq!(
        rows("alpharen_dns_answers_by_type"),
        &vec![
            (vec![("type", "A".to_string())], 2.0),
            (vec![("type", "MX".to_string())], 1.0)
        ]
    );
    assert_eq!(
        rows("alpharen_dns_answers_by_rcode"),
        &vec![(vec![("rcode", "NOERROR".to_string())], 3.0)]
    );

    let net = series::of_status(
        "net",
        &json!({"links": [{"name": "eth0", "up": true, "carrier": false}],
        "missing": ["eth1"], "leases": [{"interface": "eth0", "state": "renewing", "remaining_secs": 60}]}),
    );
    let carrier = net
        .iter()
        .find(|s| s.name == "alpharen_net_link_carrier")
        .unwrap();
    assert_eq!(
        carrier.rows,
        vec![(vec![("link", "eth0".to_string())], 0.0)]
    );
    let lease = net
        .iter()
        .find(|s| s.name == "alpharen_net_dhcp_lease_remaining_seconds")
        .unwrap();
    assert_eq!(lease.rows[0].0[1], ("state", "renewing".to_string()));
    assert_eq!(lease.rows[0].1, 60.0);
}

#[test]
fn rendered_text_is_prometheus_0_0_4() {
    let http = Http::default();
    let status = super::http::route_class("/api/v1/status");
    for _ in 0..3 {
        http.observe(status, 200, 0.003);
    }
    http.observe(status, 401, 0.001);
    let snap = Snapshot {
        services: vec![svc("web", "running", true), svc("mail", "failed", false)],
        statuses: vec![
            ("vpn".into(), None),
            ("mail".into(), Some(json!({"queued": 7}))),
        ],
    };
    let text = render(&snap, &http).unwrap();
    for line in [
        "# TYPE alpharen_service_up gauge",
        "alpharen_service_up{service=\"web\",kind=\"builtin\"} 1.0",
        "alpharen_service_up{service=\"mail\",kind=\"builtin\"} 0.0",
        "# TYPE alpharen_service_restarts_total counter",
        "alpharen_service_restarts_total{service=\"mail\"} 3.0",
        "alpharen_service_cpu_seconds_total{service=\"web\"} 1.5",
        "alpharen_service_resident_memory_bytes{service=\"web\"} 4096.0",
        "alpharen_service_status_ok{service=\"vpn\"} 0.0",
        "alpharen_mail_queued_messages 7.0",
        "alpharen_http_requests_total{route=\"api/status\",status=\"200\"} 3",
        "alpharen_http_requests_total{route=\"api/status\",status=\"401\"} 1",
        "# TYPE alpharen_http_request_duration_seconds histogram",
        "alpharen_http_request_duration_seconds_bucket{route=\"api/status\",le=\"0.001\"} 1",
        "alpharen_http_request_duration_seconds_bucket{route=\"api/status\",le=\"0.005\"} 4",
        "alpharen_http_request_duration_seconds_count{route=\"api/status\"} 4",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(!text.contains("resident_memory_bytes{service=\"mail\"}"));
    assert!(!text.contains("# EOF"), "0.0.4 has no EOF marker");
    assert!(
        !text.contains("alpharen_mail_dead_messages"),
        "a field the status lacks is no series"
    );
}
