//! Desired device state, its difference from what is applied, and the
//! change to make on the device. Pure functions: the service loop
//! only feeds them and executes the result.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use crate::keys::Key;

pub type Prefix = (IpAddr, u8);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub name: String,
    pub public_key: Key,
    pub preshared_key: Option<Key>,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<Prefix>,
    pub keepalive: Option<u16>,
}

impl PeerSpec {
    /// Same tunnel parameters (the name is only a label).
    fn same_tunnel(&self, other: &PeerSpec) -> bool {
        PeerSpec {
            name: String::new(),
            ..self.clone()
        } == PeerSpec {
            name: String::new(),
            ..other.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub interface: String,
    pub private_key: Key,
    pub listen_port: u16,
    pub addresses: Vec<Prefix>,
    pub peers: Vec<PeerSpec>,
}

impl Desired {
    /// Routes through the tunnel: every peer's allowed IPs, except
    /// default routes (those would take over the node's own uplink).
    pub fn routes(&self) -> BTreeSet<Prefix> {
        self.peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter().copied())
            .filter(|(_, len)| *len != 0)
            .map(|(ip, len)| (network_of(ip, len), len))
            .collect()
    }
}

/// The network address of a prefix (host bits cleared), as the kernel
/// wants route destinations.
pub fn network_of(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// What to change on a running device to reach the desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub private_key: Option<Key>,
    pub listen_port: Option<u16>,
    pub remove: Vec<Key>,
    pub add: Vec<PeerSpec>,
    pub routes_add: Vec<Prefix>,
    pub routes_del: Vec<Prefix>,
    pub addresses_add: Vec<Prefix>,
    pub addresses_del: Vec<Prefix>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// The difference between what is applied (`None`: a fresh device) and
/// what is wanted. Unchanged peers are not touched, so they keep their
/// session; a changed peer is removed and added again (boringtun cannot
/// modify a peer in place).
pub fn diff(old: Option<&Desired>, new: &Desired) -> Changes {
    let mut c = Changes::default();
    let key_changed = old.is_none_or(|o| o.private_key != new.private_key);
    if key_changed {
        c.private_key = Some(new.private_key);
    }
    if old.is_none_or(|o| o.listen_port != new.listen_port) {
        c.listen_port = Some(new.listen_port);
    }
    let old_peers: &[PeerSpec] = old.map_or(&[], |o| &o.peers);
    for p in old_peers {
        let keep = !key_changed
            && new
                .peers
                .iter()
                .any(|n| n.public_key == p.public_key && n.same_tunnel(p));
        if !keep {
            c.remove.push(p.public_key);
        }
    }
    for n in &new.peers {
        let unchanged = !key_changed
            && old_peers
                .iter()
                .any(|p| p.public_key == n.public_key && n.same_tunnel(p));
        if !unchanged {
            c.add.push(n.clone());
        }
    }
    let old_routes = old.map(Desired::routes).unwrap_or_default();
    let new_routes = new.routes();
    c.routes_add = new_routes.difference(&old_routes).copied().collect();
    c.routes_del = old_routes.difference(&new_routes).copied().collect();
    let old_addrs: BTreeSet<Prefix> = old
        .map(|o| o.addresses.iter().copied().collect())
        .unwrap_or_default();
    let new_addrs: BTreeSet<Prefix> = new.addresses.iter().copied().collect();
    c.addresses_add = new_addrs.difference(&old_addrs).copied().collect();
    c.addresses_del = old_addrs.difference(&new_addrs).copied().collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8, ips: &[&str]) -> PeerSpec {
        PeerSpec {
            name: format!("p{n}"),
            public_key: [n; 32],
            preshared_key: None,
            endpoint: None,
            allowed_ips: ips
                .iter()
                .filter_map(|s| alpharen_store::config::parse_cidr(s))
                .collect(),
            keepalive: None,
        }
    }

    fn desired(peers: Vec<PeerSpec>) -> Desired {
        Desired {
            interface: "arvpn0".into(),
            private_key: [9; 32],
            listen_port: 51820,
            addresses: vec![("10.8.0.1".parse().unwrap(), 24)],
            peers,
        }
    }

    #[test]
    fn fresh_device_gets_everything() {
        let d = desired(vec![peer(1, &["10.8.0.2/32"])]);
        let c = diff(None, &d);
        assert_eq!(c.private_key, Some([9; 32]));
        assert_eq!(c.listen_port, Some(51820));
        assert_eq!(c.add.len(), 1);
        assert_eq!(c.routes_add, vec![("10.8.0.2".parse().unwrap(), 32)]);
        assert_eq!(c.addresses_add.len(), 1);
    }

    #[test]
    fn untouched_peers_are_left_alone() {
        let old = desired(vec![peer(1, &["10.8.0.2/32"]), peer(2, &["10.8.0.3/32"])]);
        let mut new = old.clone();
        new.peers[1] = peer(2, &["10.8.0.3/32", "192.168.7.0/24"]);
        new.peers.push(peer(3, &["10.8.0.4/32"]));
        new.peers[0].name = "renamed".into();
        let c = diff(Some(&old), &new);
        assert_eq!(c.private_key, None);
        assert_eq!(c.listen_port, None);
        assert_eq!(c.remove, vec![[2; 32]]);
        assert_eq!(
            c.add.iter().map(|p| p.public_key[0]).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(c.routes_del, vec![]);
        assert_eq!(c.routes_add.len(), 2);
        assert!(diff(Some(&new), &new).is_empty());
    }

    #[test]
    fn removed_peer_loses_its_routes() {
        let old = desired(vec![
            peer(1, &["10.8.0.2/32"]),
            peer(2, &["192.168.7.9/24"]),
        ]);
        let new = desired(vec![peer(1, &["10.8.0.2/32"])]);
        let c = diff(Some(&old), &new);
        assert_eq!(c.remove, vec![[2; 32]]);
        assert!(c.add.is_empty());
        assert_eq!(c.routes_del, vec![("192.168.7.0".parse().unwrap(), 24)]);
    }

    #[test]
    fn default_route_is_not_installed() {
        let d = desired(vec![peer(1, &["0.0.0.0/0"])]);
        assert!(d.routes().is_empty());
    }
}
