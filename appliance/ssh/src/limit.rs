//! Failed logins per client network: after [`MAX_FAILURES`] within
//! [`WINDOW`] of the first, every login from that network is refused
//! until the window ends. IPv4 counts per address, IPv6 per /64 (one
//! host usually holds a whole /64). Memory is bounded: at [`CAPACITY`]
//! networks the one whose window began first is forgotten.
//!
//! Plain data and functions of the time given: the service keeps one in
//! a mutex; a limiter shared with other services could replace it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(600);
pub const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: Instant,
}

#[derive(Debug)]
pub struct FailureLimit {
    max: u32,
    window: Duration,
    capacity: usize,
    entries: HashMap<IpAddr, Entry>,
}

impl Default for FailureLimit {
    fn default() -> Self {
        FailureLimit::new(MAX_FAILURES, WINDOW, CAPACITY)
    }
}

/// The network an address is counted in: itself for IPv4 (also when
/// written as IPv4-mapped IPv6), its /64 for IPv6.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl FailureLimit {
    pub fn new(max: u32, window: Duration, capacity: usize) -> FailureLimit {
        FailureLimit {
            max,
            window,
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    fn current(&self, net: &IpAddr, now: Instant) -> Option<Entry> {
        self.entries
            .get(net)
            .copied()
            .filter(|e| now.saturating_duration_since(e.since) < self.window)
    }

    /// Whether logins from `ip` are refused now.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.current(&network(ip), now)
            .is_some_and(|e| e.failures >= self.max)
    }

    /// Counts one failed login from `ip`.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        let net = network(ip);
        let entry = match self.current(&net, now) {
            Some(e) => Entry {
                failures: e.failures.saturating_add(1),
                ..e
            },
            None => {
                self.make_room(now);
                Entry {
                    failures: 1,
                    since: now,
                }
            }
        };
        self.entries.insert(net, entry);
    }

    /// A successful login forgets the network's failures.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.entries.remove(&network(ip));
    }

    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.capacity {
            return;
        }
        let window = self.window;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.since) < window);
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.since)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let mut l = FailureLimit::new(3, Duration::from_secs(60), 10);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(!l.blocked(ip("192.0.2.1"), t0), "after {i} failures");
            l.failed(ip("192.0.2.1"), t0 + Duration::from_secs(i));
        }
        assert!(l.blocked(ip("192.0.2.1"), t0 + Duration::from_secs(59)));
        assert!(
            !l.blocked(ip("192.0.2.2"), t0),
            "another address is not blocked"
        );
        assert!(!l.blocked(ip("192.0.2.1"), t0 + Duration::from_secs(60)));
        l.failed(ip("192.0.2.1"), t0 + Duration::from_secs(61));
        assert!(
            !l.blocked(ip("192.0.2.1"), t0 + Duration::from_secs(61)),
            "a new window starts counting from one"
        );
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let mut l = FailureLimit::new(2, Duration::from_secs(60), 10);
        let t0 = Instant::now();
        l.failed(ip("192.0.2.1"), t0);
        l.succeeded(ip("192.0.2.1"));
        l.failed(ip("192.0.2.1"), t0);
        assert!(!l.blocked(ip("192.0.2.1"), t0));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let mut l = FailureLimit::new(2, Duration::from_secs(60), 10);
        let t0 = Instant::now();
        l.failed(ip("2001:db8:1:2::1"), t0);
        l.failed(ip("2001:db8:1:2:ffff::9"), t0);
        assert!(l.blocked(ip("2001:db8:1:2::77"), t0));
        assert!(!l.blocked(ip("2001:db8:1:3::1"), t0));
        l.failed(ip("::ffff:192.0.2.7"), t0);
        l.failed(ip("192.0.2.7"), t0);
        assert!(l.blocked(ip("192.0.2.7"), t0));
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_network_goes_first() {
        let mut l = FailureLimit::new(1, Duration::from_secs(600), 3);
        let t0 = Instant::now();
        for i in 0..5u8 {
            l.failed(
                IpAddr::from([192, 0, 2, i]),
                t0 + Duration::from_secs(u64::from(i)),
            );
        }
        assert_eq!(l.len(), 3);
        assert!(!l.blocked(ip("192.0.2.0"), t0 + Duration::from_secs(5)));
        assert!(l.blocked(ip("192.0.2.4"), t0 + Duration::from_secs(5)));
    }
}
