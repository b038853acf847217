use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[network]`: links, addresses, routes, VLANs, resolver and time. The net
/// service owns this section and is the only thing that acts on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Whether the node configures its links at all; unset means "yes on a
    /// node, no in `--dev`".
    pub manage: Option<bool>,
    pub interfaces: Vec<Interface>,
    /// 802.1Q links the service creates (and removes when they leave the list).
    pub vlans: Vec<Vlan>,
    pub dns: Dns,
    pub time: Time,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Interface {
    /// Kernel name; with `mac` too, both must match.
    pub name: Option<String>,
    /// Matches the link by hardware address (for names that change).
    pub mac: Option<String>,
    pub dhcp4: bool,
    /// Static addresses, IPv4 and IPv6, in CIDR form.
    pub addresses: Vec<String>,
    pub mtu: Option<u32>,
    pub gateway4: Option<String>,
    pub gateway6: Option<String>,
    pub routes: Vec<Route>,
    /// IPv6 router advertisements; unset leaves the kernel's setting.
    pub accept_ra: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Route {
    /// `default` or a CIDR network.
    pub dest: String,
    /// Next hop; none means directly on the link.
    pub via: Option<String>,
    pub metric: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Vlan {
    pub id: u16,
    /// The parent link's name.
    #[serde(alias = "parent")]
    pub link: String,
    /// Name of the VLAN link; default `<link>.<id>`.
    pub name: Option<String>,
}

impl Vlan {
    pub fn link_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}.{}", self.link, self.id))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Dns {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    /// Add the servers and domain a DHCP lease offers.
    pub use_dhcp: bool,
}

impl Default for Dns {
    fn default() -> Dns {
        Dns {
            servers: Vec::new(),
            search: Vec::new(),
            use_dhcp: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Time {
    /// SNTP servers: `host`, `ip` or `ip:port`.
    pub servers: Vec<String>,
    /// Step the clock; unset means "yes on a node, no in `--dev`".
    pub set_clock: Option<bool>,
}

/// Parses `address/prefix`, checking the prefix against the family.
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

pub fn in_subnet(gw: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (gw, net) {
        (IpAddr::V4(g), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(g) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(g), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(g) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Network {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        let list = path.key("interfaces");
        for (i, iface) in self.interfaces.iter().enumerate() {
            iface.validate(&list.index(i), out);
        }
        let vlans = path.key("vlans");
        let mut seen: Vec<(&str, u16)> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (i, v) in self.vlans.iter().enumerate() {
            let at = vlans.index(i);
            if v.id == 0 || v.id > 4094 {
                check::push(
                    out,
                    &at.key("id"),
                    format!("{} is not a VLAN id (1-4094)", v.id),
                );
            }
            if !is_ifname(&v.link) {
                check::push(
                    out,
                    &at.key("link"),
                    format!(
                        "{:?} is not a Linux interface name (1-15 characters)",
                        v.link
                    ),
                );
            }
            let name = v.link_name();
            if !is_ifname(&name) {
                check::push(
                    out,
                    &at.key("name"),
                    format!("{name:?} is not a Linux interface name (1-15 characters)"),
                );
            }
            if seen.contains(&(v.link.as_str(), v.id)) {
                check::push(
                    out,
                    &at.key("id"),
                    format!("VLAN {} on {} is defined twice", v.id, v.link),
                );
            }
            if names.contains(&name) {
                check::push(
                    out,
                    &at.key("name"),
                    format!("link name {name:?} is used twice"),
                );
            }
            seen.push((v.link.as_str(), v.id));
            names.push(name);
        }
        let dns = path.key("dns");
        for (i, s) in self.dns.servers.iter().enumerate() {
            if s.parse::<IpAddr>().is_err() {
                check::push(
                    out,
                    &dns.key("servers").index(i),
                    format!("{s:?} is not an IP address"),
                );
            }
        }
        for (i, s) in self.dns.search.iter().enumerate() {
            check::hostname(out, &dns.key("search").index(i), s);
        }
        let time = path.key("time");
        for (i, s) in self.time.servers.iter().enumerate() {
            let host = match s.parse::<std::net::SocketAddr>() {
                Ok(_) => continue,
                Err(_) => s.as_str(),
            };
            if host.parse::<IpAddr>().is_err() {
                check::hostname(out, &time.key("servers").index(i), host);
            }
        }
    }
}

fn is_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && !name.contains('/')
        && !name.contains(char::is_whitespace)
        && name != "."
        && name != ".."
}

/// A `dest` of a route: `default` or a CIDR (host bits may be set).
pub fn parse_dest(text: &str, v6_hint: bool) -> Option<(IpAddr, u8)> {
    if text == "default" {
        let any = if v6_hint {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        };
        return Some((any, 0));
    }
    parse_cidr(text)
}

impl Interface {
    fn validate(&self, at: &KeyPath, out: &mut Vec<Problem>) {
        match (&self.name, &self.mac) {
            (None, None) => check::push(out, at, "give the interface a `name` or a `mac`"),
            (Some(name), _) if !is_ifname(name) => check::push(
                out,
                &at.key("name"),
                format!("{name:?} is not a Linux interface name (1-15 characters)"),
            ),
            _ => {}
        }
        if let Some(mac) = &self.mac {
            let ok = mac.split(':').count() == 6
                && mac
                    .split(':')
                    .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
            if !ok {
                check::push(
                    out,
                    &at.key("mac"),
                    format!("{mac:?} is not a MAC address like 52:54:00:12:34:56"),
                );
            }
        }
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            check::push(
                out,
                &at.key("mtu"),
                format!("{mtu} is not an MTU (68-65535)"),
            );
        }
        let mut nets = Vec::new();
        for (j, addr) in self.addresses.iter().enumerate() {
            match parse_cidr(addr) {
                Some(net) => {
                    if nets.contains(&net) {
                        check::push(
                            out,
                            &at.key("addresses").index(j),
                            format!("{addr} is listed twice"),
                        );
                    }
                    nets.push(net)
                }
                None => check::push(
                    out,
                    &at.key("addresses").index(j),
                    format!("{addr:?} is not a CIDR address like 192.0.2.5/24"),
                ),
            }
        }
        for (key, gw, v4) in [
            ("gateway4", &self.gateway4, true),
            ("gateway6", &self.gateway6, false),
        ] {
            let Some(gw) = gw else { continue };
            match gw.parse::<IpAddr>() {
                Ok(ip) if ip.is_ipv4() == v4 => {
                    let dynamic = v4 && self.dhcp4;
                    let link_local =
                        matches!(ip, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
                    if !dynamic && !link_local && !nets.iter().any(|(n, p)| in_subnet(ip, *n, *p)) {
                        check::push(
                            out,
                            &at.key(key),
                            format!("{gw} is outside every subnet of this interface"),
                        );
                    }
                }
                _ => check::push(
                    out,
                    &at.key(key),
                    format!("{gw:?} is not an IPv{} address", if v4 { 4 } else { 6 }),
                ),
            }
        }
        for (j, r) in self.routes.iter().enumerate() {
            let rat = at.key("routes").index(j);
            let via = match r.via.as_deref().map(str::parse::<IpAddr>) {
                None => None,
                Some(Ok(ip)) => Some(ip),
                Some(Err(_)) => {
                    check::push(
                        out,
                        &rat.key("via"),
                        format!(
                            "{:?} is not an IP address",
                            r.via.as_deref().unwrap_or_default()
                        ),
                    );
                    continue;
                }
            };
            let v6 = via.is_some_and(|v| v.is_ipv6());
            match parse_dest(&r.dest, v6) {
                None => check::push(
                    out,
                    &rat.key("dest"),
                    format!(
                        "{:?} is not `default` or a CIDR network like 198.51.100.0/24",
                        r.dest
                    ),
                ),
                Some((d, _)) => {
                    if let Some(v) = via {
                        if v.is_ipv4() != d.is_ipv4() {
                            check::push(
                                out,
                                &rat.key("via"),
                                format!("{v} is not of the same family as {}", r.dest),
                            );
                        } else if !self.dhcp4 && !nets.iter().any(|(n, p)| in_subnet(v, *n, *p)) {
                            check::push(
                                out,
                                &rat.key("via"),
                                format!("{v} is outside every subnet of this interface"),
                            );
                        }
                    }
                }
            }
        }
    }
}
