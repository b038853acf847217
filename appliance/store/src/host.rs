//! Facts about the host the services share: its global addresses (the
//! node's own DNS records, the dyndns client's source, a cluster member's
//! advertised address).

use std::net::IpAddr;

/// Global addresses (not loopback, not link-local) of every interface, or
/// of the one named.
pub fn global_addresses(interface: Option<&str>) -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| interface.is_none_or(|name| a.interface_name == name))
        .filter_map(|a| a.address)
        .filter_map(|s| {
            s.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .filter(|ip| match ip {
            IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local(),
            IpAddr::V6(a) => !a.is_loopback() && !a.is_unicast_link_local(),
        })
        .collect()
}
