//! Desired state from config and leases, and the diff against what the
//! kernel has. Pure: no netlink here, so every decision is unit-tested.
//!
//! Ownership is kept in the kernel itself: addresses and routes we add carry
//! our own protocol number (IFA_PROTO / RTM_PROTOCOL), VLAN links our alias.
//! Anything without those marks is never removed or changed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use alpharen_store::config::{Interface, Network, parse_cidr, parse_dest};
use serde::Serialize;

/// Protocol number on addresses and routes that come from the config.
pub const PROTO_STATIC: u8 = 0xa5;
/// Protocol number on addresses and routes that come from a DHCP lease.
pub const PROTO_DHCP: u8 = 0xa6;
/// Alias of the VLAN links we create.
pub const VLAN_ALIAS: &str = "alpharen";
/// Metric of a DHCP default route, so a static gateway wins.
pub const DHCP_METRIC: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Addr {
    pub ip: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

/// A route in the main table, as far as we decide on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    pub dest: IpAddr,
    pub prefix: u8,
    pub via: Option<IpAddr>,
    pub metric: u32,
}

impl std::fmt::Display for RouteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}/{}", self.dest, self.prefix)?;
        }
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        write!(f, " metric {}", self.metric)
    }
}

/// One link as the kernel reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub mac: String,
    pub up: bool,
    pub carrier: bool,
    pub mtu: u32,
    pub alias: Option<String>,
    /// (parent index, VLAN id) for 802.1Q links.
    pub vlan: Option<(u32, u16)>,
    /// Addresses with their IFA_PROTO (0 when unset).
    pub addrs: Vec<(Addr, u8)>,
    /// Main-table routes leaving through this link, with their protocol.
    pub routes: Vec<(RouteKey, u8)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    pub links: Vec<LinkState>,
}

impl Actual {
    pub fn by_name(&self, name: &str) -> Option<&LinkState> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// What a DHCP lease contributes to one interface.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeaseInput {
    pub addr: Option<Addr>,
    /// The default gateway: option 121's 0.0.0.0/0 entry when the server
    /// sent classless routes (RFC 3442 says to ignore option 3 then),
    /// else option 3's first router.
    pub router: Option<Ipv4Addr>,
    /// Option 121's other routes: destination, prefix, router (0.0.0.0
    /// for a destination on the link).
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    pub mtu: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreateVlan {
        name: String,
        parent: u32,
        id: u16,
    },
    DeleteLink {
        index: u32,
        name: String,
    },
    SetUp {
        index: u32,
        name: String,
    },
    SetMtu {
        index: u32,
        name: String,
        mtu: u32,
    },
    AddAddr {
        index: u32,
        name: String,
        addr: Addr,
        proto: u8,
    },
    DelAddr {
        index: u32,
        name: String,
        addr: Addr,
    },
    AddRoute {
        index: u32,
        name: String,
        route: RouteKey,
        proto: u8,
    },
    DelRoute {
        index: u32,
        name: String,
        route: RouteKey,
    },
}

/// The link a config entry means: by name, by MAC, or both when both given.
pub fn find_link<'a>(iface: &Interface, actual: &'a Actual) -> Option<&'a LinkState> {
    actual.links.iter().find(|l| {
        iface.name.as_ref().is_none_or(|n| *n == l.name)
            && iface
                .mac
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&l.mac))
    })
}

/// Label for an interface entry in status and logs.
pub fn label(iface: &Interface) -> String {
    iface
        .name
        .clone()
        .or_else(|| iface.mac.clone())
        .unwrap_or_default()
}

fn owned(proto: u8) -> bool {
    proto == PROTO_STATIC || proto == PROTO_DHCP
}

/// Addresses and routes, each with the protocol number that marks it ours.
type Wanted = (Vec<(Addr, u8)>, Vec<(RouteKey, u8)>);

/// Static addresses and routes of one entry, with our protocol numbers.
fn wanted(iface: &Interface, lease: Option<&LeaseInput>) -> Wanted {
    let mut addrs: Vec<(Addr, u8)> = iface
        .addresses
        .iter()
        .filter_map(|a| parse_cidr(a))
        .map(|(ip, prefix)| (Addr { ip, prefix }, PROTO_STATIC))
        .collect();
    let mut routes = Vec::new();
    if let Some(gw) = iface
        .gateway4
        .as_deref()
        .and_then(|g| g.parse::<Ipv4Addr>().ok())
    {
        routes.push((default_route(IpAddr::V4(gw), 0), PROTO_STATIC));
    }
    if let Some(gw) = iface
        .gateway6
        .as_deref()
        .and_then(|g| g.parse::<Ipv6Addr>().ok())
    {
        routes.push((default_route(IpAddr::V6(gw), 0), PROTO_STATIC));
    }
    for r in &iface.routes {
        let via = r.via.as_deref().and_then(|v| v.parse::<IpAddr>().ok());
        if let Some((dest, prefix)) = parse_dest(&r.dest, via.is_some_and(|v| v.is_ipv6())) {
            routes.push((
                RouteKey {
                    dest: network_of(dest, prefix),
                    prefix,
                    via,
                    metric: r.metric.unwrap_or(0),
                },
                PROTO_STATIC,
            ));
        }
    }
    if let Some(l) = lease {
        if let Some(a) = l.addr
            && !addrs.iter().any(|(x, _)| *x == a)
        {
            addrs.push((a, PROTO_DHCP));
        }
        if let (Some(gw), None) = (l.router, &iface.gateway4) {
            routes.push((default_route(IpAddr::V4(gw), DHCP_METRIC), PROTO_DHCP));
        }
        for &(dest, prefix, via) in &l.routes {
            let route = RouteKey {
                dest: network_of(IpAddr::V4(dest), prefix),
                prefix,
                via: (!via.is_unspecified()).then_some(IpAddr::V4(via)),
                metric: DHCP_METRIC,
            };
            routes.push((route, PROTO_DHCP));
        }
    }
    (addrs, routes)
}

fn default_route(via: IpAddr, metric: u32) -> RouteKey {
    let dest = match via {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    RouteKey {
        dest,
        prefix: 0,
        via: Some(via),
        metric,
    }
}

/// Clears host bits, as the kernel stores route destinations.
pub fn network_of(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// Everything needed to go from `actual` to the config plus leases, and
/// nothing that touches what we do not own. `leases` is looked up by the
/// kernel name of the matched link.
pub fn diff(
    net: &Network,
    actual: &Actual,
    leases: &dyn Fn(&str) -> Option<LeaseInput>,
) -> Vec<Action> {
    let mut out = Vec::new();
    // VLANs first: their links appear on the next pass (a link event).
    let vlan_names: Vec<String> = net.vlans.iter().map(|v| v.link_name()).collect();
    for v in &net.vlans {
        let name = v.link_name();
        if actual.by_name(&name).is_none()
            && let Some(parent) = actual.by_name(&v.link)
        {
            out.push(Action::CreateVlan {
                name,
                parent: parent.index,
                id: v.id,
            });
        }
    }
    for l in &actual.links {
        if l.alias.as_deref() == Some(VLAN_ALIAS) && !vlan_names.contains(&l.name) {
            out.push(Action::DeleteLink {
                index: l.index,
                name: l.name.clone(),
            });
        }
    }
    let mut configured: Vec<u32> = Vec::new();
    for iface in &net.interfaces {
        let Some(link) = find_link(iface, actual) else {
            continue;
        };
        if configured.contains(&link.index) {
            continue;
        }
        configured.push(link.index);
        let (index, name) = (link.index, link.name.clone());
        if !link.up {
            out.push(Action::SetUp {
                index,
                name: name.clone(),
            });
        }
        let lease = leases(&link.name);
        let mtu = iface
            .mtu
            .or_else(|| lease.as_ref().and_then(|l| l.mtu).map(u32::from));
        if let Some(mtu) = mtu
            && mtu != link.mtu
        {
            out.push(Action::SetMtu {
                index,
                name: name.clone(),
                mtu,
            });
        }
        let (addrs, routes) = wanted(iface, lease.as_ref());
        for (a, proto) in &addrs {
            if !link.addrs.iter().any(|(x, _)| x == a) {
                out.push(Action::AddAddr {
                    index,
                    name: name.clone(),
                    addr: *a,
                    proto: *proto,
                });
            }
        }
        for (a, proto) in &link.addrs {
            if owned(*proto) && !addrs.iter().any(|(x, _)| x == a) {
                out.push(Action::DelAddr {
                    index,
                    name: name.clone(),
                    addr: *a,
                });
            }
        }
        for (r, proto) in &link.routes {
            if owned(*proto) && !routes.iter().any(|(x, _)| x == r) {
                out.push(Action::DelRoute {
                    index,
                    name: name.clone(),
                    route: *r,
                });
            }
        }
        for (r, proto) in &routes {
            if !link.routes.iter().any(|(x, _)| x == r) {
                out.push(Action::AddRoute {
                    index,
                    name: name.clone(),
                    route: *r,
                    proto: *proto,
                });
            }
        }
    }
    // Links that left the config: take back what we put there.
    for l in &actual.links {
        if configured.contains(&l.index) {
            continue;
        }
        for (a, proto) in &l.addrs {
            if owned(*proto) {
                out.push(Action::DelAddr {
                    index: l.index,
                    name: l.name.clone(),
                    addr: *a,
                });
            }
        }
        for (r, proto) in &l.routes {
            if owned(*proto) {
                out.push(Action::DelRoute {
                    index: l.index,
                    name: l.name.clone(),
                    route: *r,
                });
            }
        }
    }
    out
}

/// Config entries without a matching link, reported as `missing`.
pub fn missing(net: &Network, actual: &Actual) -> Vec<String> {
    let mut out: Vec<String> = net
        .interfaces
        .iter()
        .filter(|i| find_link(i, actual).is_none())
        .map(label)
        .collect();
    for v in &net.vlans {
        if actual.by_name(&v.link).is_none() {
            out.push(v.link.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
