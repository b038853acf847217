//! The zone's content as records: what the configuration says, what the
//! node publishes about itself, and the SOA. Pure: config in, records out.

use std::net::IpAddr;

use alpharen_store::Config;
use alpharen_store::config::{DnsRecord, parse_cidr, split_url};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record};

/// TTL of records without one and of the node's own records.
pub const DEFAULT_TTL: u32 = 300;

#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct ZoneError {
    pub what: String,
    pub message: String,
}

fn zone_err(what: impl Into<String>, e: impl std::fmt::Display) -> ZoneError {
    ZoneError {
        what: what.into(),
        message: e.to_string(),
    }
}

/// `@` → the origin, `name.` → absolute, anything else → below the origin.
pub fn absolute(name: &str, origin: &Name) -> Result<Name, ZoneError> {
    if name == "@" {
        return Ok(origin.clone());
    }
    let parsed = Name::from_ascii(name).map_err(|e| zone_err(format!("name {name:?}"), e))?;
    if parsed.is_fqdn() {
        Ok(parsed)
    } else {
        parsed
            .append_domain(origin)
            .map_err(|e| zone_err(format!("name {name:?}"), e))
    }
}

pub fn origin(zone: &str) -> Result<Name, ZoneError> {
    let mut name = Name::from_ascii(zone).map_err(|e| zone_err(format!("zone {zone:?}"), e))?;
    name.set_fqdn(true);
    Ok(name)
}

/// One `[[dpx.records]]` entry as a DNS record.
pub fn config_record(rec: &DnsRecord, origin: &Name) -> Result<Record, ZoneError> {
    let what = || format!("record {} {} {:?}", rec.name, rec.kind, rec.value);
    let name = absolute(&rec.name, origin)?;
    let v = rec.value.as_str();
    let f: Vec<&str> = v.split_whitespace().collect();
    let num = |s: &str| s.parse::<u16>().map_err(|e| zone_err(what(), e));
    let data = match (rec.kind.as_str(), f.as_slice()) {
        ("A", _) => RData::A(A(v.parse().map_err(|e| zone_err(what(), e))?)),
        ("AAAA", _) => RData::AAAA(AAAA(v.parse().map_err(|e| zone_err(what(), e))?)),
        ("CNAME", _) => RData::CNAME(CNAME(absolute(v, origin)?)),
        ("NS", _) => RData::NS(NS(absolute(v, origin)?)),
        ("TXT", _) => RData::TXT(TXT::new(vec![v.to_string()])),
        ("MX", [pref, host]) => RData::MX(MX::new(num(pref)?, absolute(host, origin)?)),
        ("SRV", [prio, weight, port, target]) => RData::SRV(SRV::new(
            num(prio)?,
            num(weight)?,
            num(port)?,
            absolute(target, origin)?,
        )),
        _ => return Err(zone_err(what(), "unsupported type or value")),
    };
    Ok(Record::from_rdata(
        name,
        rec.ttl.unwrap_or(DEFAULT_TTL),
        data,
    ))
}

fn address_record(name: &Name, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(a) => RData::A(A(a)),
        IpAddr::V6(a) => RData::AAAA(AAAA(a)),
    };
    Record::from_rdata(name.clone(), DEFAULT_TTL, data)
}

/// The node's own name inside the zone.
pub fn node_name(config: &Config, origin: &Name) -> Result<Name, ZoneError> {
    absolute(&config.node.hostname, origin)
}

/// Addresses the node is reached at: its static interface addresses, else
/// the ones `found` on its links (DHCP).
pub fn node_addresses(config: &Config, found: &[IpAddr]) -> Vec<IpAddr> {
    let statics: Vec<IpAddr> = config
        .network
        .interfaces
        .iter()
        .flat_map(|i| i.addresses.iter())
        .filter_map(|a| parse_cidr(a).map(|(ip, _)| ip))
        .collect();
    if statics.is_empty() {
        found.to_vec()
    } else {
        statics
    }
}

/// Everything but the SOA: config records, the apex NS, the node's name
/// (and `<node>.vpn` with its tunnel addresses) and the `_arsrv._tcp`
/// discovery SRVs: the node's integrator and the cluster's other servers.
pub fn static_records(
    config: &Config,
    origin: &Name,
    addresses: &[IpAddr],
) -> Result<Vec<Record>, ZoneError> {
    let node = node_name(config, origin)?;
    let mut out = vec![Record::from_rdata(
        origin.clone(),
        DEFAULT_TTL,
        RData::NS(NS(node.clone())),
    )];
    out.extend(addresses.iter().map(|ip| address_record(&node, *ip)));
    if config.vpn.enabled {
        let vpn_name = absolute("vpn", &node)?;
        out.extend(
            config
                .vpn
                .addresses
                .iter()
                .filter_map(|a| parse_cidr(a))
                .map(|(ip, _)| address_record(&vpn_name, ip)),
        );
    }
    let discovery = absolute("_arsrv._tcp", origin)?;
    let srv = |port, target| {
        Record::from_rdata(
            discovery.clone(),
            DEFAULT_TTL,
            RData::SRV(SRV::new(0, 0, port, target)),
        )
    };
    out.push(srv(config.integrator.port, node));
    for (i, url) in config.integrator.servers.iter().enumerate() {
        match peer_server(url, i, origin) {
            Some((target, port, address)) => {
                out.extend(address);
                out.push(srv(port, target));
            }
            None => tracing::warn!(url, "integrator.servers entry not published in _arsrv._tcp"),
        }
    }
    for rec in &config.dpx.records {
        out.push(config_record(rec, origin)?);
    }
    Ok(out)
}

/// Where the `_arsrv._tcp` SRV for the `i`th of `integrator.servers`
/// points: the URL's host when it is a name (one without a dot is a node
/// in the zone), else `arsrv-<i+1>.<zone>` with the address record that
/// gives that name the URL's IP address.
fn peer_server(url: &str, i: usize, origin: &Name) -> Option<(Name, u16, Option<Record>)> {
    let (_, host, port, _) = split_url(url)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        let name = absolute(&format!("arsrv-{}", i + 1), origin).ok()?;
        let address = address_record(&name, ip);
        return Some((name, port, Some(address)));
    }
    let name = if host.contains('.') {
        let mut n = Name::from_ascii(host).ok()?;
        n.set_fqdn(true);
        n
    } else {
        absolute(host, origin).ok()?
    };
    Some((name, port, None))
}

/// The apex SOA naming the node as primary.
pub fn soa(origin: &Name, primary: &Name, serial: u32) -> Result<Record, ZoneError> {
    let data = SOA::new(
        primary.clone(),
        absolute("hostmaster", origin)?,
        serial,
        3600,
        600,
        86400,
        60,
    );
    Ok(Record::from_rdata(
        origin.clone(),
        DEFAULT_TTL,
        RData::SOA(data),
    ))
}

/// Changes whenever the served static content changes, so the serial can
/// be bumped for config edits too.
pub fn fingerprint(origin: &Name, records: &[Record]) -> String {
    let mut lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    lines.sort();
    format!("{origin}\n{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::from_toml(toml).unwrap()
    }

    #[test]
    fn config_records_become_dns_records() {
        let c = config(
            r#"
[node]
hostname = "n1"
[dpx]
zone = "z.example"
[[dpx.records]]
name = "mx"
type = "MX"
value = "10 mail"
[[dpx.records]]
name = "_sip._tcp"
type = "SRV"
value = "0 5 5060 sip.other.example."
[[dpx.records]]
name = "@"
type = "TXT"
value = "v=spf1 -all"
ttl = 60
"#,
        );
        let origin = origin("z.example").unwrap();
        let recs = static_records(&c, &origin, &["192.0.2.1".parse().unwrap()]).unwrap();
        let text: Vec<String> = recs.iter().map(|r| r.to_string()).collect();
        let want = [
            "z.example. 300 IN NS n1.z.example.",
            "n1.z.example. 300 IN A 192.0.2.1",
            "_arsrv._tcp.z.example. 300 IN SRV 0 0 11223 n1.z.example.",
            "mx.z.example. 300 IN MX 10 mail.z.example.",
            "_sip._tcp.z.example. 300 IN SRV 0 5 5060 sip.other.example.",
        ];
        for w in want {
            assert!(text.iter().any(|t| t == w), "{w} not in {text:#?}");
        }
        assert!(text.iter().any(|t| t.starts_with("z.example. 60 IN TXT")));
    }

    #[test]
    fn discovery_lists_the_other_integrator_servers() {
        let c = config(
            r#"
[node]
hostname = "n1"
[integrator]
servers = ["http://n2.z.example:11223", "https://10.0.0.3", "http://[2001:db8::4]:8080", "http://n5"]
"#,
        );
        let origin = origin("z.example").unwrap();
        let recs = static_records(&c, &origin, &[]).unwrap();
        let text: Vec<String> = recs.iter().map(|r| r.to_string()).collect();
        let srv: Vec<&String> = text.iter().filter(|t| t.contains(" SRV ")).collect();
        assert_eq!(
            srv,
            [
                "_arsrv._tcp.z.example. 300 IN SRV 0 0 11223 n1.z.example.",
                "_arsrv._tcp.z.example. 300 IN SRV 0 0 11223 n2.z.example.",
                "_arsrv._tcp.z.example. 300 IN SRV 0 0 443 arsrv-2.z.example.",
                "_arsrv._tcp.z.example. 300 IN SRV 0 0 8080 arsrv-3.z.example.",
                "_arsrv._tcp.z.example. 300 IN SRV 0 0 80 n5.z.example.",
            ]
        );
        for w in [
            "arsrv-2.z.example. 300 IN A 10.0.0.3",
            "arsrv-3.z.example. 300 IN AAAA 2001:db8::4",
        ] {
            assert!(text.iter().any(|t| t == w), "{w} not in {text:#?}");
        }
        assert!(
            !text
                .iter()
                .any(|t| t.starts_with("arsrv-1.") || t.starts_with("arsrv-4."))
        );
        // A name outside the zone stays as it is.
        let (name, port, address) = peer_server("https://lb.other.example", 0, &origin).unwrap();
        assert_eq!(
            (name.to_string(), port, address),
            ("lb.other.example.".into(), 443, None)
        );
        assert!(peer_server("ftp://x", 0, &origin).is_none());
    }

    #[test]
    fn static_addresses_win_over_found_ones() {
        let c = config("[[network.interfaces]]\nname = \"eth0\"\naddresses = [\"192.0.2.5/24\"]\n");
        let found: Vec<IpAddr> = vec!["198.51.100.1".parse().unwrap()];
        assert_eq!(
            node_addresses(&c, &found),
            vec!["192.0.2.5".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(node_addresses(&Config::default(), &found), found);
    }

    #[test]
    fn fingerprint_ignores_order_but_not_content() {
        let o = origin("z.example").unwrap();
        let a = address_record(&absolute("a", &o).unwrap(), "192.0.2.1".parse().unwrap());
        let b = address_record(&absolute("b", &o).unwrap(), "192.0.2.2".parse().unwrap());
        assert_eq!(
            fingerprint(&o, &[a.clone(), b.clone()]),
            fingerprint(&o, &[b.clone(), a.clone()])
        );
        assert_ne!(fingerprint(&o, &[a]), fingerprint(&o, &[b]));
    }
}
