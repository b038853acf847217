//! DHCPv4 per interface with mozim: the client runs the protocol (DISCOVER,
//! REQUEST, renew at T1, rebind at T2); this module runs it as a task,
//! reports leases to the service loop, and keeps the timing facts the loop
//! needs to drop an expired lease even when the client is not running
//! (carrier down, link gone).

use std::net::Ipv4Addr;
use std::time::Duration;

use mozim::{DhcpV4Client, DhcpV4Config, DhcpV4Lease, DhcpV4State};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::plan::{Addr, LeaseInput};

/// Where a lease is in its life, from its timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Bound,
    Renewing,
    Rebinding,
    Expired,
}

/// The times of one lease, measured from when it was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseClock {
    pub acquired: Instant,
    pub t1: Duration,
    pub t2: Duration,
    pub lease: Duration,
}

impl LeaseClock {
    /// T1 and T2 default to 50% and 87.5% of the lease (RFC 2131 4.4.5)
    /// when the server sends none or nonsense.
    pub fn new(acquired: Instant, lease_secs: u32, t1_secs: u32, t2_secs: u32) -> LeaseClock {
        let lease = Duration::from_secs(u64::from(lease_secs));
        let mut t1 = Duration::from_secs(u64::from(t1_secs));
        let mut t2 = Duration::from_secs(u64::from(t2_secs));
        if t2.is_zero() || t2 >= lease {
            t2 = lease.mul_f64(0.875);
        }
        if t1.is_zero() || t1 >= t2 {
            t1 = lease / 2;
        }
        LeaseClock {
            acquired,
            t1,
            t2,
            lease,
        }
    }

    pub fn expires(&self) -> Instant {
        self.acquired + self.lease
    }

    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires().saturating_duration_since(now)
    }

    pub fn phase(&self, now: Instant) -> Phase {
        let age = now.saturating_duration_since(self.acquired);
        if age >= self.lease {
            Phase::Expired
        } else if age >= self.t2 {
            Phase::Rebinding
        } else if age >= self.t1 {
            Phase::Renewing
        } else {
            Phase::Bound
        }
    }
}

/// What the service keeps of a lease.
#[derive(Debug, Clone)]
pub struct Held {
    pub lease: DhcpV4Lease,
    pub clock: LeaseClock,
    pub state: String,
}

impl Held {
    pub fn input(&self) -> LeaseInput {
        let (router, routes) = match self.lease.classless_routes.as_deref() {
            Some(classless) if !classless.is_empty() => split_classless(
                classless
                    .iter()
                    .map(|r| (r.destination, r.prefix_length, r.router)),
            ),
            _ => (
                self.lease
                    .gateways
                    .as_ref()
                    .and_then(|g| g.first().copied()),
                Vec::new(),
            ),
        };
        LeaseInput {
            addr: Some(Addr {
                ip: self.lease.yiaddr.into(),
                prefix: prefix_len(self.lease.subnet_mask),
            }),
            router,
            routes,
            mtu: self.lease.mtu,
        }
    }
}

/// Option 121's routes as the default gateway (its 0.0.0.0/0 entry) and
/// the rest.
pub fn split_classless(
    routes: impl Iterator<Item = (Ipv4Addr, u8, Ipv4Addr)>,
) -> (Option<Ipv4Addr>, Vec<(Ipv4Addr, u8, Ipv4Addr)>) {
    let mut default = None;
    let mut rest = Vec::new();
    for (dest, prefix, via) in routes {
        if prefix == 0 {
            default = default.or(Some(via));
        } else {
            rest.push((dest, prefix, via));
        }
    }
    (default, rest)
}

pub fn prefix_len(mask: Ipv4Addr) -> u8 {
    u32::from(mask).leading_ones() as u8
}

/// Reports from a DHCP task to the service loop.
#[derive(Debug)]
pub enum Report {
    Lease(String, Box<DhcpV4Lease>),
    State(String, String),
    Expired(String),
}

/// A running client; dropping the stop sender without sending stops it
/// without a release.
pub struct Task {
    pub stop: oneshot::Sender<bool>,
    pub done: tokio::task::JoinHandle<()>,
}

/// Starts a client on `iface`; `prior` (a lease still held) is verified
/// with INIT-REBOOT instead of a new DISCOVER.
pub fn start(
    iface: String,
    hostname: String,
    prior: Option<DhcpV4Lease>,
    tx: mpsc::Sender<Report>,
) -> Task {
    let (stop, stop_rx) = oneshot::channel();
    let done = tokio::spawn(run(iface, hostname, prior, tx, stop_rx));
    Task { stop, done }
}

async fn run(
    iface: String,
    hostname: String,
    mut prior: Option<DhcpV4Lease>,
    tx: mpsc::Sender<Report>,
    mut stop: oneshot::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut cfg = DhcpV4Config::new(&iface);
        if !hostname.is_empty() {
            cfg.set_host_name(&hostname);
        }
        cfg.use_mac_as_client_id();
        cfg.set_timeout_sec(30);
        let mut current = prior.take();
        let mut cli = tokio::select! {
            c = DhcpV4Client::init(cfg, current.clone()) => match c {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(iface = %iface, error = %e, "dhcp client cannot start");
                    prior = current;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = &mut stop => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            },
            _ = &mut stop => return,
        };
        loop {
            tokio::select! {
                r = cli.run() => match r {
                    Ok(DhcpV4State::Done(lease)) => {
                        backoff = Duration::from_secs(1);
                        tracing::info!(iface = %iface, address = %lease.yiaddr, lease_secs = lease.lease_time_sec, server = %lease.srv_id, "dhcp lease bound");
                        current = Some((*lease).clone());
                        let _ = tx.send(Report::Lease(iface.clone(), lease)).await;
                    }
                    Ok(DhcpV4State::InitReboot) => {
                        if current.take().is_some() {
                            tracing::info!(iface = %iface, "dhcp lease expired");
                            let _ = tx.send(Report::Expired(iface.clone())).await;
                        }
                    }
                    Ok(state) => {
                        tracing::info!(iface = %iface, state = %state, "dhcp");
                        let _ = tx.send(Report::State(iface.clone(), state.to_string())).await;
                    }
                    Err(e) => {
                        tracing::info!(iface = %iface, error = %e, "dhcp attempt failed; retrying");
                        // The service loop keeps any lease until it expires.
                        cli.clean_up();
                        current = None;
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            release = &mut stop => {
                                let _ = release;
                                return;
                            }
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                },
                release = &mut stop => {
                    if release.unwrap_or(false)
                        && let Some(l) = current.take()
                    {
                        match tokio::time::timeout(Duration::from_secs(2), cli.release(&l)).await {
                            Ok(Ok(())) => tracing::info!(iface = %iface, address = %l.yiaddr, "dhcp lease released"),
                            Ok(Err(e)) => tracing::warn!(iface = %iface, error = %e, "dhcp release failed"),
                            Err(_) => tracing::warn!(iface = %iface, "dhcp release timed out"),
                        }
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn phases_follow_the_timers() {
        let c = LeaseClock::new(Instant::now(), 120, 60, 105);
        assert_eq!(c.phase(Instant::now()), Phase::Bound);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(c.phase(Instant::now()), Phase::Renewing);
        assert_eq!(c.remaining(Instant::now()), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(c.phase(Instant::now()), Phase::Rebinding);
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(c.phase(Instant::now()), Phase::Expired);
        assert_eq!(c.remaining(Instant::now()), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_sleep_wakes_at_lease_end() {
        let c = LeaseClock::new(Instant::now(), 120, 0, 0);
        let start = Instant::now();
        tokio::time::sleep_until(c.expires()).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(120));
        assert_eq!(c.phase(Instant::now()), Phase::Expired);
    }

    #[test]
    fn missing_or_bad_t1_t2_get_rfc_defaults() {
        let now = Instant::now();
        let c = LeaseClock::new(now, 100, 0, 0);
        assert_eq!(c.t1, Duration::from_secs(50));
        assert_eq!(c.t2, Duration::from_millis(87_500));
        let c = LeaseClock::new(now, 100, 90, 80);
        assert_eq!(c.t1, Duration::from_secs(50));
        assert_eq!(c.t2, Duration::from_secs(80));
    }

    #[test]
    fn classless_routes_replace_the_router_option() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let (default, rest) = split_classless(
            [
                (ip("10.0.0.0"), 8, ip("192.0.2.9")),
                (ip("0.0.0.0"), 0, ip("192.0.2.1")),
            ]
            .into_iter(),
        );
        assert_eq!(default, Some(ip("192.0.2.1")));
        assert_eq!(rest, vec![(ip("10.0.0.0"), 8, ip("192.0.2.9"))]);
        // No 0.0.0.0/0 entry: no default route at all (option 3 is ignored).
        let (default, rest) = split_classless([(ip("10.0.0.0"), 8, ip("192.0.2.9"))].into_iter());
        assert_eq!((default, rest.len()), (None, 1));
    }

    #[test]
    fn netmask_to_prefix() {
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 0)), 24);
        assert_eq!(prefix_len(Ipv4Addr::new(0, 0, 0, 0)), 0);
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 255)), 32);
    }
}
