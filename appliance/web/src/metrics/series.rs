//! What the gathered answers become: named series with labels and values,
//! by plain functions over `services.metrics` and the services' `status`
//! JSON, so each mapping is tested without a node. A field a status does
//! not have (an older service, a tunnel that is down) leaves its row out
//! rather than reporting a made-up zero. Counter names are given without
//! `_total`: the encoder appends it.

use alpharen_rpc::services::ServiceMetrics;
use serde_json::Value;

pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub rows: Vec<(Labels, f64)>,
}

impl Series {
    fn new(name: &'static str, kind: Kind, help: &'static str) -> Series {
        Series {
            name,
            help,
            kind,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, labels: Labels, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.rows.push((labels, v));
        }
    }
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn flag(b: bool) -> Option<f64> {
    Some(if b { 1.0 } else { 0.0 })
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// From the supervisor: one row per service in each series.
pub fn services(list: &[ServiceMetrics]) -> Vec<Series> {
    use Kind::*;
    let mut up = Series::new(
        "alpharen_service_up",
        Gauge,
        "1 if the service's process is running, else 0",
    );
    let mut restarts = Series::new(
        "alpharen_service_restarts",
        Counter,
        "Restarts of the service since the supervisor started",
    );
    let mut rss = Series::new(
        "alpharen_service_resident_memory_bytes",
        Gauge,
        "Resident memory of the service's process",
    );
    let mut cpu = Series::new(
        "alpharen_service_cpu_seconds",
        Counter,
        "User and system CPU time of the service's process (not its children)",
    );
    for s in list {
        let l = || vec![("service", s.name.clone())];
        up.push(
            vec![("service", s.name.clone()), ("kind", s.kind.clone())],
            flag(s.state == "running"),
        );
        restarts.push(l(), Some(f64::from(s.restarts)));
        rss.push(l(), s.rss_bytes.map(|b| b as f64));
        cpu.push(l(), s.cpu_seconds);
    }
    vec![up, restarts, rss, cpu]
}

/// Whether each running built-in with a status answered it this scrape.
pub fn status_ok(answers: &[(String, Option<Value>)]) -> Series {
    let mut s = Series::new(
        "alpharen_service_status_ok",
        Kind::Gauge,
        "1 if the service answered its status call during this scrape, else 0 (its other series are then absent)",
    );
    for (name, answer) in answers {
        s.push(vec![("service", name.clone())], flag(answer.is_some()));
    }
    s
}

/// The series of one service's `<svc>.status` answer.
pub fn of_status(service: &str, v: &Value) -> Vec<Series> {
    match service {
        "mail" => mail(v),
        "vpn" => vpn(v),
        "pgha" => pgha(v),
        "integrator" => integrator(v),
        "dpx" => dpx(v),
        "net" => net(v),
        _ => Vec::new(),
    }
}

fn mail(v: &Value) -> Vec<Series> {
    use Kind::Gauge;
    let mut queued = Series::new(
        "alpharen_mail_queued_messages",
        Gauge,
        "Messages in the mail queue waiting for delivery",
    );
    let mut dead = Series::new(
        "alpharen_mail_dead_messages",
        Gauge,
        "Messages given up on (the dead area of the spool)",
    );
    let mut sessions = Series::new(
        "alpharen_mail_smtp_sessions",
        Gauge,
        "SMTP sessions open now",
    );
    let mut relay = Series::new(
        "alpharen_mail_relay_usable",
        Gauge,
        "1 if a relay is configured and usable, else 0",
    );
    queued.push(vec![], num(v, "queued"));
    dead.push(vec![], num(v, "dead"));
    sessions.push(vec![], num(v, "sessions"));
    relay.push(
        vec![],
        v.get("relay_usable")
            .and_then(Value::as_bool)
            .and_then(flag),
    );
    vec![queued, dead, sessions, relay]
}

fn vpn(v: &Value) -> Vec<Series> {
    use Kind::*;
    let mut running = Series::new(
        "alpharen_vpn_running",
        Gauge,
        "1 if the WireGuard tunnel is up, else 0",
    );
    let mut peers = Series::new(
        "alpharen_vpn_peers",
        Gauge,
        "Configured VPN peers by whether they are enabled",
    );
    let mut rx = Series::new(
        "alpharen_vpn_peer_received_bytes",
        Counter,
        "Bytes received from the peer since the tunnel started",
    );
    let mut tx = Series::new(
        "alpharen_vpn_peer_sent_bytes",
        Counter,
        "Bytes sent to the peer since the tunnel started",
    );
    let mut hs = Series::new(
        "alpharen_vpn_peer_last_handshake_age_seconds",
        Gauge,
        "Seconds since the peer's latest handshake (absent if none yet)",
    );
    running.push(
        vec![],
        v.get("running").and_then(Value::as_bool).and_then(flag),
    );
    let (mut on, mut off) = (0.0, 0.0);
    for p in items(v, "peers") {
        if p.get("enabled").and_then(Value::as_bool).unwrap_or(false) {
            on += 1.0;
        } else {
            off += 1.0;
        }
        let l = || vec![("peer", text(p, "name"))];
        rx.push(l(), num(p, "rx_bytes"));
        tx.push(l(), num(p, "tx_bytes"));
        hs.push(l(), num(p, "latest_handshake_secs_ago"));
    }
    if v.get("peers").is_some() {
        peers.push(vec![("enabled", "true".into())], Some(on));
        peers.push(vec![("enabled", "false".into())], Some(off));
    }
    vec![running, peers, rx, tx, hs]
}

fn pgha(v: &Value) -> Vec<Series> {
    use Kind::Gauge;
    let mut role = Series::new(
        "alpharen_pgha_server_role",
        Gauge,
        "1 for each PostgreSQL server's current role as the HA controller sees it",
    );
    let mut master = Series::new(
        "alpharen_pgha_server_master",
        Gauge,
        "1 for the server the controller holds for master, else 0",
    );
    let mut lag_b = Series::new(
        "alpharen_pgha_replication_lag_bytes",
        Gauge,
        "WAL bytes a replica is behind, as its primary reports it",
    );
    let mut lag_s = Series::new(
        "alpharen_pgha_replication_lag_seconds",
        Gauge,
        "Replay lag of a replica in seconds, as its primary reports it",
    );
    for g in items(v, "groups") {
        let group = text(g, "key");
        let held = g.get("master").and_then(Value::as_u64);
        for (i, s) in items(g, "servers").enumerate() {
            let server = text(s, "pg");
            role.push(
                vec![
                    ("group", group.clone()),
                    ("server", server.clone()),
                    ("role", text(s, "role")),
                ],
                Some(1.0),
            );
            master.push(
                vec![("group", group.clone()), ("server", server.clone())],
                flag(held == Some(i as u64)),
            );
            let Some(polled) = s.get("polled") else {
                continue;
            };
            for r in items(polled, "replicas") {
                let l = || {
                    vec![
                        ("group", group.clone()),
                        ("server", server.clone()),
                        ("replica", text(r, "application_name")),
                    ]
                };
                lag_b.push(l(), num(r, "lag_bytes"));
                lag_s.push(l(), num(r, "lag_seconds"));
            }
        }
    }
    vec![role, master, lag_b, lag_s]
}

fn integrator(v: &Value) -> Vec<Series> {
    use Kind::*;
    let mut workers = Series::new(
        "alpharen_integrator_workers",
        Gauge,
        "Python workers alive, by whether they are idle",
    );
    let mut replaced = Series::new(
        "alpharen_integrator_workers_replaced",
        Counter,
        "Workers replaced since the integrator started",
    );
    let mut in_flight = Series::new(
        "alpharen_integrator_in_flight_calls",
        Gauge,
        "Calls being served by this node's workers now",
    );
    let mut channels = Series::new(
        "alpharen_integrator_channels",
        Gauge,
        "Channels (routes) deployed",
    );
    let mut healthy = Series::new(
        "alpharen_integrator_server_healthy",
        Gauge,
        "1 if a remote integrator server passes its health check, else 0",
    );
    let mut remote = Series::new(
        "alpharen_integrator_server_in_flight_calls",
        Gauge,
        "Calls this node has in flight at a remote integrator server",
    );
    let mut queued = Series::new(
        "alpharen_integrator_queue_messages",
        Gauge,
        "Messages in a pub/sub or invoke_async queue, by topic, subscriber and state (ready, in_flight, dead)",
    );
    for q in items(v, "queues") {
        for state in ["ready", "in_flight", "dead"] {
            queued.push(
                vec![
                    ("topic", text(q, "topic")),
                    ("subscriber", text(q, "subscriber")),
                    ("state", state.into()),
                ],
                num(q, state),
            );
        }
    }
    if let (Some(all), Some(idle)) = (num(v, "workers"), num(v, "idle_workers")) {
        workers.push(vec![("idle", "true".into())], Some(idle));
        workers.push(vec![("idle", "false".into())], Some((all - idle).max(0.0)));
    }
    replaced.push(vec![], num(v, "workers_replaced"));
    in_flight.push(vec![], num(v, "in_flight"));
    channels.push(vec![], num(v, "channels"));
    for s in items(v, "servers") {
        let l = || vec![("server", text(s, "server"))];
        healthy.push(
            l(),
            s.get("healthy").and_then(Value::as_bool).and_then(flag),
        );
        remote.push(l(), num(s, "in_flight"));
    }
    vec![
        workers, replaced, in_flight, channels, healthy, remote, queued,
    ]
}

fn dpx(v: &Value) -> Vec<Series> {
    use Kind::{Counter, Gauge};
    let mut serial = Series::new(
        "alpharen_dns_zone_serial",
        Gauge,
        "SOA serial of the node's zone",
    );
    let mut records = Series::new(
        "alpharen_dns_zone_records",
        Gauge,
        "Records in the node's zone, from the config (static) or dyndns (dynamic)",
    );
    let zone = || vec![("zone", text(v, "zone"))];
    if v.get("zone").is_some_and(Value::is_string) {
        serial.push(zone(), num(v, "serial"));
        let mut l = zone();
        l.push(("source", "static".into()));
        records.push(l, num(v, "static_records"));
        let mut l = zone();
        l.push(("source", "dynamic".into()));
        records.push(l, num(v, "dynamic_records"));
    }
    let mut by_type = Series::new(
        "alpharen_dns_answers_by_type",
        Counter,
        "DNS answers sent since dpx started, by the question's record type",
    );
    let mut by_rcode = Series::new(
        "alpharen_dns_answers_by_rcode",
        Counter,
        "DNS answers sent since dpx started, by response code",
    );
    let q = v.get("queries").unwrap_or(&Value::Null);
    for (series, key, label) in [
        (&mut by_type, "by_type", "type"),
        (&mut by_rcode, "by_rcode", "rcode"),
    ] {
        for (name, n) in q.get(key).and_then(Value::as_object).into_iter().flatten() {
            series.push(vec![(label, name.clone())], n.as_f64());
        }
    }
    vec![serial, records, by_type, by_rcode]
}

fn net(v: &Value) -> Vec<Series> {
    use Kind::Gauge;
    let mut up = Series::new(
        "alpharen_net_link_up",
        Gauge,
        "1 if the link is administratively up, else 0",
    );
    let mut carrier = Series::new(
        "alpharen_net_link_carrier",
        Gauge,
        "1 if the link has carrier, else 0",
    );
    let mut missing = Series::new(
        "alpharen_net_interfaces_missing",
        Gauge,
        "Interfaces the configuration names that the kernel does not have",
    );
    let mut lease = Series::new(
        "alpharen_net_dhcp_lease_remaining_seconds",
        Gauge,
        "Seconds left on the DHCP lease of an interface, labelled with the client's state",
    );
    for l in items(v, "links") {
        let labels = || vec![("link", text(l, "name"))];
        up.push(
            labels(),
            l.get("up").and_then(Value::as_bool).and_then(flag),
        );
        carrier.push(
            labels(),
            l.get("carrier").and_then(Value::as_bool).and_then(flag),
        );
    }
    if let Some(m) = v.get("missing").and_then(Value::as_array) {
        missing.push(vec![], Some(m.len() as f64));
    }
    for l in items(v, "leases") {
        lease.push(
            vec![
                ("interface", text(l, "interface")),
                ("state", text(l, "state")),
            ],
            num(l, "remaining_secs"),
        );
    }
    vec![up, carrier, missing, lease]
}
