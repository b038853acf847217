//! What `net.status` answers: the kernel's view of every link, tagged with
//! where each address and route came from, plus leases, resolver and time.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Value, json};

use crate::plan::{Actual, PROTO_DHCP, PROTO_STATIC};
use crate::sntp::Sample;

/// State the service loop shares with the control socket.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Shared {
    pub managed: bool,
    pub dev: bool,
    pub configured: Vec<String>,
    pub missing: Vec<String>,
    pub leases: Vec<LeaseView>,
    pub dns: DnsView,
    pub time: TimeView,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LeaseView {
    pub interface: String,
    pub address: String,
    pub server: String,
    pub router: Option<String>,
    pub dns: Vec<String>,
    pub domain: Option<String>,
    pub mtu: Option<u16>,
    pub lease_secs: u32,
    pub remaining_secs: u64,
    pub state: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DnsView {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub path: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TimeView {
    pub servers: Vec<String>,
    pub set_clock: bool,
    pub last: Option<Sample>,
    pub checked_at: Option<i64>,
    pub error: Option<String>,
    pub clock_stepped: bool,
}

pub fn addr_origin(ip: IpAddr, proto: u8) -> &'static str {
    match proto {
        PROTO_STATIC => "static",
        PROTO_DHCP => "dhcp",
        1..=3 => "kernel",
        _ if matches!(ip, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80) => "kernel",
        _ => "foreign",
    }
}

pub fn route_origin(proto: u8) -> &'static str {
    match proto {
        PROTO_STATIC => "static",
        PROTO_DHCP => "dhcp",
        2 => "kernel",
        9 => "ra",
        _ => "foreign",
    }
}

/// The `net.status` answer.
pub fn render(actual: &Actual, shared: &Shared) -> Value {
    let links: Vec<Value> = actual
        .links
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "index": l.index,
                "mac": l.mac,
                "up": l.up,
                "carrier": l.carrier,
                "mtu": l.mtu,
                "state": if shared.configured.contains(&l.name) { "configured" } else { "unmanaged" },
                "vlan": l.vlan.map(|(p, id)| json!({"parent": p, "id": id})),
                "addresses": l.addrs.iter().map(|(a, p)| json!({
                    "address": a.to_string(), "origin": addr_origin(a.ip, *p)
                })).collect::<Vec<_>>(),
                "routes": l.routes.iter().map(|(r, p)| json!({
                    "dest": if r.prefix == 0 { "default".to_string() } else { format!("{}/{}", r.dest, r.prefix) },
                    "via": r.via.map(|v| v.to_string()),
                    "metric": r.metric,
                    "origin": route_origin(*p),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut v = json!({
        "managed": shared.managed,
        "dev": shared.dev,
        "links": links,
        "missing": shared.missing,
        "leases": shared.leases,
        "dns": shared.dns,
        "time": shared.time,
    });
    if let Some(e) = &shared.last_error {
        v["last_error"] = json!(e);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let ll: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(addr_origin(v4, PROTO_STATIC), "static");
        assert_eq!(addr_origin(v4, PROTO_DHCP), "dhcp");
        assert_eq!(addr_origin(v4, 0), "foreign");
        assert_eq!(addr_origin(ll, 0), "kernel");
        assert_eq!(route_origin(2), "kernel");
    }
}
