//! Facts about the host the services share: its global addresses (the
//! node's own DNS records, the dyndns client's source, a cluster member's
//! advertised address).

use std::net::IpAddr;

/// RFC 1123 host name (dots allowed), as used for the node and DNS names.
pub fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// An address other hosts can be told to reach this one at: an IP
/// address or a host name.
pub fn is_address(a: &str) -> bool {
    a.parse::<IpAddr>().is_ok() || is_hostname(a)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_ips_or_host_names() {
        for ok in ["10.0.0.1", "fd00::1", "node-a.lan", "a.example.org."] {
            assert!(is_address(ok), "{ok}");
        }
        for bad in ["", "\u{1f3fb}", "-a.lan", "a..lan", "a b", "10.0.0.1:6222"] {
            assert!(!is_address(bad), "{bad:?}");
        }
    }
}
