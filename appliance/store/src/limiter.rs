//! Failed-authentication limiting, as plain data and decisions (no clock,
//! no I/O: callers pass `now`), so it is tested with made-up instants.
//!
//! The supervisor keeps one [`LoginLimiter`] for every door that checks a
//! node user's password (web login, SMTP AUTH, ssh), so failures at one door
//! count at the others. The same [`Window`] also keys the first-boot setup
//! code's lockout by client network, and the integrator's :11223 failures.
//!
//! Clients are counted per network ([`client_net`]): an IPv4 address is its
//! own /32 (a /24 would let one host lock out its neighbours behind the same
//! router), an IPv6 address counts as its /64 (one host usually owns a whole
//! /64, so counting single addresses would be no limit at all).
//!
//! Memory is bounded: each window holds at most `cap` keys. A new key at the
//! cap first drops keys whose failures have all aged out, then evicts the
//! key whose last failure is oldest. Nothing is ever refused for lack of
//! room, and pushing a locked key out takes `cap` newer failures, each of
//! which paid for a password check.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Keys kept per window before the oldest are evicted.
pub const DEFAULT_CAP: usize = 10_000;

/// The network a client is counted in: IPv4 /32, IPv6 /64 (an IPv4-mapped
/// IPv6 address counts as its IPv4 address).
pub fn client_net(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Failures per key in a sliding window: a key with `max` failures in the
/// last `window` is refused until its oldest one ages out.
#[derive(Debug)]
pub struct Window<K> {
    max: usize,
    window: Duration,
    cap: usize,
    failures: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq + Clone> Window<K> {
    pub fn new(max: usize, window: Duration, cap: usize) -> Window<K> {
        Window {
            max: max.max(1),
            window,
            cap: cap.max(1),
            failures: HashMap::new(),
        }
    }

    fn fresh(&self, t: Instant, now: Instant) -> bool {
        now.saturating_duration_since(t) < self.window
    }

    /// `Err(wait)` while `key` is locked out.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let Some(q) = self.failures.get(key) else {
            return Ok(());
        };
        let recent = q.iter().filter(|t| self.fresh(**t, now));
        let oldest = recent.clone().next();
        match oldest {
            Some(oldest) if recent.count() >= self.max => Err(self
                .window
                .saturating_sub(now.saturating_duration_since(*oldest))),
            _ => Ok(()),
        }
    }

    pub fn failure(&mut self, key: &K, now: Instant) {
        if !self.failures.contains_key(key) && self.failures.len() >= self.cap {
            self.make_room(now);
        }
        let window = self.window;
        let q = self.failures.entry(key.clone()).or_default();
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            q.pop_front();
        }
        q.push_back(now);
        while q.len() > self.max {
            q.pop_front();
        }
    }

    pub fn success(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// Drops aged-out keys; if none did, the one whose last failure is oldest.
    fn make_room(&mut self, now: Instant) {
        let window = self.window;
        self.failures.retain(|_, q| {
            q.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
        });
        if self.failures.len() < self.cap {
            return;
        }
        let oldest = self
            .failures
            .iter()
            .min_by_key(|(_, q)| q.back().copied())
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.failures.remove(&k);
        }
    }

    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Failed password checks per user name and per client network.
#[derive(Debug)]
pub struct LoginLimiter {
    users: Window<String>,
    nets: Window<IpAddr>,
}

/// Failures allowed per user name in `LOGIN_WINDOW`, from anywhere.
pub const LOGIN_MAX_PER_USER: usize = 5;
/// Failures allowed per client network in `LOGIN_WINDOW`, for any user.
pub const LOGIN_MAX_PER_NET: usize = 20;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);

impl Default for LoginLimiter {
    fn default() -> LoginLimiter {
        LoginLimiter::new(
            LOGIN_MAX_PER_USER,
            LOGIN_MAX_PER_NET,
            LOGIN_WINDOW,
            DEFAULT_CAP,
        )
    }
}

impl LoginLimiter {
    pub fn new(per_user: usize, per_net: usize, window: Duration, cap: usize) -> LoginLimiter {
        LoginLimiter {
            users: Window::new(per_user, window, cap),
            nets: Window::new(per_net, window, cap),
        }
    }

    /// `Err(wait)` while the user or the client's network is locked out.
    /// `client` is `None` for local callers (no network to count).
    pub fn check(&self, user: &str, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let by_user = self.users.check(&user.to_string(), now);
        let by_net = client.map_or(Ok(()), |ip| self.nets.check(&client_net(ip), now));
        match (by_user, by_net) {
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(a), Ok(())) | (Ok(()), Err(a)) => Err(a),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    /// Records a password check's result. A success clears the user's
    /// failures, not the network's (one good login must not reset a
    /// network guessing other users' passwords).
    pub fn record(&mut self, user: &str, client: Option<IpAddr>, ok: bool, now: Instant) {
        let user = user.to_string();
        if ok {
            self.users.success(&user);
            return;
        }
        self.users.failure(&user, now);
        if let Some(ip) = client {
            self.nets.failure(&client_net(ip), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn window_locks_after_max_failures_and_recovers() {
        let mut w = Window::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(w.check(&"a", t0).is_ok());
            w.failure(&"a", t0);
        }
        let wait = w.check(&"a", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(w.check(&"b", t0).is_ok(), "other keys unaffected");
        assert!(w.check(&"a", t0 + Duration::from_secs(60)).is_ok());
        w.success(&"a");
        assert!(w.is_empty());
    }

    #[test]
    fn full_window_evicts_expired_keys_first_then_the_oldest() {
        let mut w = Window::new(2, Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        w.failure(&"old", t0);
        w.failure(&"locked", t0 + s(30));
        w.failure(&"locked", t0 + s(30));
        w.failure(&"mid", t0 + s(40));
        // Full: "old" has aged out by t0+70 and goes first.
        w.failure(&"new", t0 + s(70));
        assert_eq!(w.len(), 3);
        assert!(
            w.check(&"locked", t0 + s(70)).is_err(),
            "a locked key stays locked"
        );
        // Nothing aged out: the key with the oldest last failure goes.
        w.failure(&"newer", t0 + s(75));
        assert_eq!(w.len(), 3);
        assert!(w.check(&"new", t0 + s(75)).is_ok());
        assert!(
            w.failures.contains_key(&"newer"),
            "new keys are never refused"
        );
    }

    #[test]
    fn a_flood_of_keys_stays_within_the_cap() {
        let mut w = Window::new(5, Duration::from_secs(60), 50);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            w.failure(&i, t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(w.len(), 50);
    }

    #[test]
    fn ipv6_counts_per_64_and_ipv4_per_address() {
        assert_eq!(client_net(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(client_net(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_net(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn user_failures_from_anywhere_lock_the_user() {
        let mut l = LoginLimiter::new(3, 10, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..3 {
            let client = ip(&format!("192.0.2.{i}"));
            assert!(l.check("admin", Some(client), t0).is_ok());
            l.record("admin", Some(client), false, t0);
        }
        assert!(l.check("admin", Some(ip("198.51.100.1")), t0).is_err());
        assert!(l.check("admin", None, t0).is_err(), "local callers too");
        assert!(l.check("other", Some(ip("192.0.2.0")), t0).is_ok());
    }

    #[test]
    fn one_ipv6_network_is_limited_across_its_addresses_and_users() {
        let mut l = LoginLimiter::new(100, 3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..3 {
            let client = ip(&format!("2001:db8::{i}"));
            l.record(&format!("user{i}"), Some(client), false, t0);
        }
        assert!(l.check("someone", Some(ip("2001:db8::ffff")), t0).is_err());
        assert!(l.check("someone", Some(ip("2001:db8:0:1::1")), t0).is_ok());
    }

    #[test]
    fn success_clears_the_user_but_not_the_network() {
        let mut l = LoginLimiter::new(2, 2, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let c = Some(ip("192.0.2.1"));
        l.record("a", c, false, t0);
        l.record("b", c, false, t0);
        l.record("a", c, true, t0);
        assert!(l.check("a", None, t0).is_ok());
        assert!(
            l.check("a", c, t0).is_err(),
            "the network still failed twice"
        );
    }
}
