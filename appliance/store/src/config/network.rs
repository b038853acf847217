use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[network]`: links and addresses. The net service owns this section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Whether the node configures its links at all; unset means "yes on a
    /// node, no in `--dev`".
    pub manage: Option<bool>,
    pub interfaces: Vec<Interface>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Interface {
    pub name: Option<String>,
    pub mac: Option<String>,
    pub dhcp4: bool,
    pub addresses: Vec<String>,
    pub gateway4: Option<String>,
}

/// Parses `address/prefix`, checking the prefix against the family.
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((addr, prefix))
}

fn in_subnet(gw: IpAddr, net: IpAddr, prefix: u8) -> bool {
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
            let at = list.index(i);
            match (&iface.name, &iface.mac) {
                (None, None) => check::push(out, &at, "give the interface a `name` or a `mac`"),
                (Some(name), _) if name.is_empty() || name.len() > 15 || name.contains('/') => {
                    check::push(
                        out,
                        &at.key("name"),
                        format!("{name:?} is not a Linux interface name (1-15 characters)"),
                    )
                }
                _ => {}
            }
            if let Some(mac) = &iface.mac {
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
            let mut nets = Vec::new();
            for (j, addr) in iface.addresses.iter().enumerate() {
                match parse_cidr(addr) {
                    Some(net) => nets.push(net),
                    None => check::push(
                        out,
                        &at.key("addresses").index(j),
                        format!("{addr:?} is not a CIDR address like 192.0.2.5/24"),
                    ),
                }
            }
            if let Some(gw) = &iface.gateway4 {
                match gw.parse::<IpAddr>() {
                    Ok(ip @ IpAddr::V4(_)) => {
                        if !iface.dhcp4 && !nets.iter().any(|(n, p)| in_subnet(ip, *n, *p)) {
                            check::push(
                                out,
                                &at.key("gateway4"),
                                format!("{gw} is outside every subnet of this interface"),
                            );
                        }
                    }
                    _ => check::push(
                        out,
                        &at.key("gateway4"),
                        format!("{gw:?} is not an IPv4 address"),
                    ),
                }
            }
        }
    }
}
