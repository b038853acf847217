//! Road-warrior address allocation: the lowest free host address of the
//! pool, skipping the node's own addresses and anything a peer routes.

use std::net::{IpAddr, Ipv4Addr};

use alpharen_store::config::cidrs_overlap;

/// First free host address of `pool` (network and broadcast excluded) not
/// covered by any `taken` prefix; `None` when the pool is exhausted.
pub fn allocate(pool: (Ipv4Addr, u8), taken: &[(IpAddr, u8)]) -> Option<Ipv4Addr> {
    let (net, prefix) = pool;
    if prefix > 30 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let first = (u32::from(net) & mask).checked_add(1)?;
    let last = (u32::from(net) | !mask).checked_sub(1)?;
    (first..=last).map(Ipv4Addr::from).find(|a| {
        !taken
            .iter()
            .any(|t| cidrs_overlap((IpAddr::V4(*a), 32), *t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4], p: u8) -> (IpAddr, u8) {
        (IpAddr::V4(Ipv4Addr::from(a)), p)
    }

    #[test]
    fn skips_node_and_peers() {
        let pool = (Ipv4Addr::new(10, 8, 0, 0), 24);
        let taken = [v4([10, 8, 0, 1], 24), v4([10, 8, 0, 2], 32)];
        // The node's 10.8.0.1/24 is an interface address, not a route: the
        // caller passes it as /32.
        let taken_fixed = [v4([10, 8, 0, 1], 32), taken[1]];
        assert_eq!(
            allocate(pool, &taken_fixed),
            Some(Ipv4Addr::new(10, 8, 0, 3))
        );
        assert_eq!(allocate(pool, &[]), Some(Ipv4Addr::new(10, 8, 0, 1)));
    }

    #[test]
    fn exhausted() {
        let pool = (Ipv4Addr::new(10, 8, 0, 0), 30);
        let taken = [v4([10, 8, 0, 1], 32), v4([10, 8, 0, 2], 32)];
        assert_eq!(allocate(pool, &taken), None);
        // A site route covering the whole pool exhausts it too.
        assert_eq!(allocate(pool, &[v4([10, 0, 0, 0], 8)]), None);
    }
}
