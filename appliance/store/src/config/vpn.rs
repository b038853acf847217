//! `[vpn]`: the WireGuard interface, its peers and the road-warrior pool.
//! The vpn service owns this section; validation here is what keeps a bad
//! key or an overlapping route from ever reaching the tunnel.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::network::parse_cidr;
use super::{KeyPath, Problem, check};

pub const DEFAULT_INTERFACE: &str = "arvpn0";
pub const DEFAULT_LISTEN_PORT: u16 = 51820;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Vpn {
    pub enabled: bool,
    pub interface: String,
    pub listen_port: u16,
    /// The node's own tunnel addresses (CIDR).
    pub addresses: Vec<String>,
    pub peers: Vec<VpnPeer>,
    /// DNS servers written into road-warrior client configs.
    pub dns: Vec<String>,
    /// IPv4 CIDR road-warrior addresses are taken from.
    pub pool: Option<String>,
    /// Public `host:port` clients connect to, written into their configs.
    pub endpoint: Option<String>,
}

impl Default for Vpn {
    fn default() -> Self {
        Vpn {
            enabled: false,
            interface: DEFAULT_INTERFACE.into(),
            listen_port: DEFAULT_LISTEN_PORT,
            addresses: Vec::new(),
            peers: Vec::new(),
            dns: Vec::new(),
            pool: None,
            endpoint: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct VpnPeer {
    pub name: String,
    /// `false` keeps the peer in the configuration (its key, its address
    /// from the pool) but off the tunnel: it cannot connect.
    #[serde(skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Base64 Curve25519 public key, as `wg` prints it.
    pub public_key: String,
    /// Name of a store secret holding the base64 preshared key.
    pub preshared_key_secret: Option<String>,
    pub allowed_ips: Vec<String>,
    /// `host:port` for site-to-site peers; road warriors have none.
    pub endpoint: Option<String>,
    pub persistent_keepalive: Option<u16>,
}

impl Default for VpnPeer {
    fn default() -> Self {
        VpnPeer {
            name: String::new(),
            enabled: true,
            public_key: String::new(),
            preshared_key_secret: None,
            allowed_ips: Vec::new(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Decodes a WireGuard key (standard base64 of 32 bytes).
pub fn decode_key(text: &str) -> Option<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    bytes.try_into().ok()
}

/// Splits `host:port` (`[v6]:port` too); the host is not resolved here.
pub fn split_endpoint(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, port))
}

/// Whether two prefixes share any address (one contains the other).
pub fn cidrs_overlap(a: (IpAddr, u8), b: (IpAddr, u8)) -> bool {
    let p = a.1.min(b.1);
    match (a.0, b.0) {
        (IpAddr::V4(x), IpAddr::V4(y)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            u32::from(x) & mask == u32::from(y) & mask
        }
        (IpAddr::V6(x), IpAddr::V6(y)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(p)).unwrap_or(0);
            u128::from(x) & mask == u128::from(y) & mask
        }
        _ => false,
    }
}

impl Vpn {
    /// The pool as (network, prefix) when it is a valid IPv4 CIDR.
    pub fn pool_net(&self) -> Option<(Ipv4Addr, u8)> {
        match parse_cidr(self.pool.as_deref()?)? {
            (IpAddr::V4(a), p) => Some((a, p)),
            _ => None,
        }
    }

    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if self.interface.is_empty()
            || self.interface.len() > 15
            || !self
                .interface
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            check::push(
                out,
                &path.key("interface"),
                format!(
                    "{:?} is not a Linux interface name (1-15 letters, digits, '-', '_', '.')",
                    self.interface
                ),
            );
        }
        if self.listen_port == 0 {
            check::push(out, &path.key("listen_port"), "must be 1-65535");
        }
        for (i, a) in self.addresses.iter().enumerate() {
            if parse_cidr(a).is_none() {
                check::push(
                    out,
                    &path.key("addresses").index(i),
                    format!("{a:?} is not a CIDR like 10.8.0.1/24"),
                );
            }
        }
        for (i, d) in self.dns.iter().enumerate() {
            if d.parse::<IpAddr>().is_err() {
                check::push(
                    out,
                    &path.key("dns").index(i),
                    format!("{d:?} is not an IP address"),
                );
            }
        }
        if let Some(pool) = &self.pool {
            match parse_cidr(pool) {
                Some((IpAddr::V4(_), p)) if p <= 30 => {}
                Some((IpAddr::V4(_), _)) => check::push(
                    out,
                    &path.key("pool"),
                    "too small: road-warrior pools need a prefix of /30 or shorter",
                ),
                Some(_) => check::push(
                    out,
                    &path.key("pool"),
                    "only IPv4 pools are supported for now",
                ),
                None => check::push(
                    out,
                    &path.key("pool"),
                    format!("{pool:?} is not a CIDR like 10.8.0.0/24"),
                ),
            }
        }
        if let Some(ep) = &self.endpoint
            && split_endpoint(ep).is_none()
        {
            check::push(
                out,
                &path.key("endpoint"),
                format!("{ep:?} is not host:port"),
            );
        }
        let list = path.key("peers");
        check::unique(
            out,
            &list,
            "name",
            self.peers.iter().map(|p| p.name.as_str()),
        );
        check::unique(
            out,
            &list,
            "public_key",
            self.peers.iter().map(|p| p.public_key.as_str()),
        );
        // (peer index, ip index, prefix) of every valid allowed IP, for the
        // overlap check across peers.
        let mut seen: Vec<(usize, usize, (IpAddr, u8))> = Vec::new();
        for (i, peer) in self.peers.iter().enumerate() {
            let at = list.index(i);
            check::object_name(out, &at.key("name"), &peer.name);
            if decode_key(&peer.public_key).is_none() {
                check::push(
                    out,
                    &at.key("public_key"),
                    "not a WireGuard key (44 characters of base64 encoding 32 bytes, as `wg pubkey` prints)",
                );
            }
            if let Some(s) = &peer.preshared_key_secret {
                check::object_name(out, &at.key("preshared_key_secret"), s);
            }
            if let Some(ep) = &peer.endpoint
                && split_endpoint(ep).is_none()
            {
                check::push(out, &at.key("endpoint"), format!("{ep:?} is not host:port"));
            }
            if peer.allowed_ips.is_empty() {
                check::push(
                    out,
                    &at.key("allowed_ips"),
                    "a peer needs at least one allowed IP",
                );
            }
            for (j, ip) in peer.allowed_ips.iter().enumerate() {
                let ip_at = at.key("allowed_ips").index(j);
                let Some(net) = parse_cidr(ip) else {
                    check::push(
                        out,
                        &ip_at,
                        format!("{ip:?} is not a CIDR like 10.8.0.2/32"),
                    );
                    continue;
                };
                if let Some((k, l, _)) = seen
                    .iter()
                    .find(|(k, _, other)| *k != i && cidrs_overlap(net, *other))
                {
                    check::push(
                        out,
                        &ip_at,
                        format!(
                            "{ip} overlaps {} of peer {:?} ({}): a packet could go to either",
                            self.peers[*k].allowed_ips[*l],
                            self.peers[*k].name,
                            list.index(*k).key("allowed_ips").index(*l)
                        ),
                    );
                }
                seen.push((i, j, net));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "YFd3Lr3wqZB5ivTXTE4XDeX0a7f8Xy/qGnQUs3Okmh8=";
    const KEY_B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    fn peer(name: &str, key: &str, ips: &[&str]) -> VpnPeer {
        VpnPeer {
            name: name.into(),
            public_key: key.into(),
            allowed_ips: ips.iter().map(|s| s.to_string()).collect(),
            ..VpnPeer::default()
        }
    }

    fn problems(v: &Vpn) -> Vec<Problem> {
        let mut out = Vec::new();
        v.validate(&KeyPath::root().key("vpn"), &mut out);
        out
    }

    #[test]
    fn defaults_are_valid() {
        assert!(problems(&Vpn::default()).is_empty());
        assert_eq!(Vpn::default().listen_port, 51820);
    }

    /// Peers are enabled unless they say otherwise, and an enabled peer
    /// is written as before (older firmware reads it back).
    #[test]
    fn peers_are_enabled_by_default() {
        let p: VpnPeer = toml::from_str("name = \"a\"\npublic_key = \"k\"").unwrap();
        assert!(p.enabled);
        assert!(!toml::to_string(&p).unwrap().contains("enabled"));
        let off = VpnPeer {
            enabled: false,
            ..p
        };
        let text = toml::to_string(&off).unwrap();
        assert!(text.contains("enabled = false"), "{text}");
        assert_eq!(toml::from_str::<VpnPeer>(&text).unwrap(), off);
    }

    #[test]
    fn malformed_key_is_reported_at_its_path() {
        let v = Vpn {
            peers: vec![peer("a", "not-a-key", &["10.8.0.2/32"])],
            ..Vpn::default()
        };
        let p = problems(&v);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "vpn.peers[0].public_key");
    }

    #[test]
    fn overlapping_allowed_ips_between_peers() {
        let v = Vpn {
            peers: vec![
                peer("a", KEY_A, &["10.8.0.0/24"]),
                peer("b", KEY_B, &["192.168.1.0/24", "10.8.0.7/32"]),
            ],
            ..Vpn::default()
        };
        let p = problems(&v);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "vpn.peers[1].allowed_ips[1]");
        assert!(p[0].message.contains("vpn.peers[0].allowed_ips[0]"));
    }

    #[test]
    fn endpoint_and_pool_checks() {
        assert_eq!(
            split_endpoint("vpn.example.net:51820"),
            Some(("vpn.example.net", 51820))
        );
        assert_eq!(
            split_endpoint("[2001:db8::1]:51820"),
            Some(("2001:db8::1", 51820))
        );
        assert_eq!(split_endpoint("nohost"), None);
        let v = Vpn {
            pool: Some("10.9.0.0/31".into()),
            endpoint: Some("x:0".into()),
            ..Vpn::default()
        };
        let paths: Vec<_> = problems(&v).into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["vpn.pool", "vpn.endpoint"]);
    }
}
