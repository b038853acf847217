//! Cryptokey routing: which peer owns an address (longest prefix wins).
//! One hash map per prefix length, so a lookup costs one probe per
//! distinct length in use, not one per peer.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::plan::{Prefix, network_of};

#[derive(Debug)]
pub struct Table<V> {
    /// (is IPv6, length) → network → owner; kept longest first.
    levels: Vec<((bool, u8), HashMap<IpAddr, V>)>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table { levels: Vec::new() }
    }
}

impl<V: Clone> Table<V> {
    pub fn insert(&mut self, (ip, len): Prefix, owner: V) {
        let key = (ip.is_ipv6(), len);
        let net = network_of(ip, len);
        match self.levels.iter_mut().find(|(k, _)| *k == key) {
            Some((_, map)) => {
                map.insert(net, owner);
            }
            None => {
                self.levels.push((key, HashMap::from([(net, owner)])));
                self.levels.sort_by_key(|(k, _)| std::cmp::Reverse(k.1));
            }
        }
    }

    /// Drops every prefix whose owner matches `is_owner`.
    pub fn remove_owner(&mut self, is_owner: impl Fn(&V) -> bool) {
        for (_, map) in &mut self.levels {
            map.retain(|_, v| !is_owner(v));
        }
        self.levels.retain(|(_, map)| !map.is_empty());
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<&V> {
        let v6 = ip.is_ipv6();
        self.levels
            .iter()
            .filter(|((is6, _), _)| *is6 == v6)
            .find_map(|((_, len), map)| map.get(&network_of(ip, *len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        let (ip, len) = s.split_once('/').unwrap();
        (ip.parse().unwrap(), len.parse().unwrap())
    }

    #[test]
    fn longest_prefix_wins_and_families_stay_apart() {
        let mut t = Table::default();
        t.insert(p("10.8.0.0/24"), 1);
        t.insert(p("10.8.0.7/32"), 2);
        t.insert(p("0.0.0.0/0"), 3);
        t.insert(p("fd00::/64"), 4);
        assert_eq!(t.lookup("10.8.0.7".parse().unwrap()), Some(&2));
        assert_eq!(t.lookup("10.8.0.9".parse().unwrap()), Some(&1));
        assert_eq!(t.lookup("192.0.2.1".parse().unwrap()), Some(&3));
        assert_eq!(t.lookup("fd00::1".parse().unwrap()), Some(&4));
        assert_eq!(t.lookup("fd01::1".parse().unwrap()), None);
        t.remove_owner(|v| *v == 2);
        assert_eq!(t.lookup("10.8.0.7".parse().unwrap()), Some(&1));
        t.remove_owner(|v| *v == 3);
        assert_eq!(t.lookup("192.0.2.1".parse().unwrap()), None);
    }
}
