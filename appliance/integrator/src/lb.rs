//! Load balancer decisions: which servers this node balances over (the
//! local one, `integrator.servers`, and in a cluster every member that is
//! up and offers its :11223 in its heartbeat), and which of them takes a
//! request. Pure, so the policy is tested without sockets.

use alpharen_cluster::members::Member;

/// A server besides this one, as the member list and configuration say.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// `http://host:port` or `https://host:port`.
    pub base: String,
    /// The member it was discovered from; `None` for `integrator.servers`.
    pub node: Option<String>,
    /// SHA-256 of the certificate it must present (https members).
    pub pin: Option<[u8; 32]>,
    /// Leaving: it finishes what it has but takes nothing new.
    pub draining: bool,
}

/// The servers to balance over besides this node (`me`): every entry of
/// `integrator.servers`, then every member that is up and offers a load
/// balancer (an https one only with a certificate fingerprint to pin),
/// once per address. A member that drains stays (its requests in flight
/// are counted) but is marked so; a member that is down is dropped.
pub fn peers(servers: &[String], members: &[Member], me: &str) -> Vec<Peer> {
    let mut out: Vec<Peer> = servers
        .iter()
        .map(|base| Peer {
            base: base.trim_end_matches('/').to_string(),
            node: None,
            pin: None,
            draining: false,
        })
        .collect();
    for m in members {
        let h = &m.heartbeat;
        let Some(lb) = h.lb.as_ref() else { continue };
        if h.node == me || m.state != "up" || out.iter().any(|p| p.base == lb.url) {
            continue;
        }
        let pin = match lb.cert_sha256.as_deref().map(parse_sha256) {
            Some(Some(fp)) => Some(fp),
            Some(None) => continue,
            None if lb.url.starts_with("https://") => continue,
            None => None,
        };
        out.push(Peer {
            base: lb.url.clone(),
            node: Some(h.node.clone()),
            pin,
            draining: h.draining,
        });
    }
    out
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What the balancer knows about one server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub healthy: bool,
    /// Requests it is handling for us now.
    pub in_flight: u32,
    /// Smoothed round-trip time of health checks / requests, microseconds.
    pub rtt_us: f64,
}

/// The expected wait at a candidate: `(in_flight + 1) × rtt`.
fn expected_wait(c: &Candidate) -> f64 {
    (f64::from(c.in_flight) + 1.0) * c.rtt_us.max(1.0)
}

/// Least loaded by RTT: the healthy candidate with the smallest expected
/// wait; ties go to the lowest index. `None` when none is healthy.
pub fn choose(candidates: &[Candidate]) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.healthy)
        .map(|(i, c)| (i, expected_wait(c)))
        .fold(None, |best: Option<(usize, f64)>, (i, score)| match best {
            Some((_, s)) if s <= score => best,
            _ => Some((i, score)),
        })
        .map(|(i, _)| i)
}

/// The balancer's server for a request: index 0 is this server, the rest
/// its peers. A request leaves this server only when [`choose`] would send
/// it away (a healthy peer's expected wait is shorter, or this server is
/// not healthy). It then goes to one of the peers that beat this server,
/// each with a chance in proportion to `1 / expected wait` (`roll`, in
/// `0..1`, draws), not always to the fastest: round trips from health
/// checks are noisy, and a member that measures a little slower (one that
/// just joined is busy catching up) would otherwise get nothing at all,
/// however long it stays that way. `None` when no server is healthy.
pub fn balance(candidates: &[Candidate], roll: f64) -> Option<usize> {
    let chosen = choose(candidates)?;
    if chosen == 0 {
        return Some(0);
    }
    let here = candidates
        .first()
        .filter(|c| c.healthy)
        .map_or(f64::INFINITY, expected_wait);
    let faster: Vec<(usize, f64)> = candidates
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, c)| c.healthy)
        .map(|(i, c)| (i, 1.0 / expected_wait(c)))
        .filter(|&(_, speed)| speed > 1.0 / here)
        .collect();
    let mut left = roll.clamp(0.0, 1.0) * faster.iter().map(|(_, s)| s).sum::<f64>();
    for &(i, speed) in &faster {
        if left < speed {
            return Some(i);
        }
        left -= speed;
    }
    faster.last().map(|&(i, _)| i)
}

/// Whether a server's answer to a forwarded request says it has no
/// channel or service for it (421 with the marker header): nothing ran
/// there, so the request is served here. A 421 without the marker is the
/// application's answer and goes to the client.
pub fn not_here(status: u16, marked: bool) -> bool {
    status == 421 && marked
}

/// Exponentially weighted moving average; the first sample is taken as is.
pub fn ewma(old: f64, sample: f64) -> f64 {
    if old <= 0.0 {
        sample
    } else {
        old * 0.8 + sample * 0.2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpharen_cluster::members::{Heartbeat, Lb};

    fn member(
        node: &str,
        state: &'static str,
        url: &str,
        cert: Option<&str>,
        draining: bool,
    ) -> Member {
        Member {
            heartbeat: Heartbeat {
                node: node.into(),
                route: format!("{node}:6222"),
                version: "0.1.0".into(),
                rss_kib: 1,
                at_ms: 0,
                lb: (!url.is_empty()).then(|| Lb {
                    url: url.into(),
                    cert_sha256: cert.map(str::to_string),
                }),
                draining,
            },
            state,
            age_s: 0,
        }
    }

    #[test]
    fn only_a_marked_421_sends_a_forwarded_request_back() {
        assert!(not_here(421, true));
        assert!(!not_here(421, false));
        assert!(!not_here(404, true));
        assert!(!not_here(200, false));
    }

    #[test]
    fn peers_are_the_members_that_are_up_but_not_this_one() {
        let fp = "ab".repeat(32);
        let members = [
            member("a", "up", "https://10.0.0.1:11223", Some(&fp), false),
            member("b", "up", "http://10.0.0.2:11223", None, false),
            member("c", "down", "http://10.0.0.3:11223", None, false),
            member("d", "up", "", None, false),
            member("e", "up", "https://10.0.0.5:11223", None, false),
            member("f", "up", "https://10.0.0.6:11223", Some("xyz"), false),
        ];
        let p = peers(&[], &members, "b");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].base, "https://10.0.0.1:11223");
        assert_eq!(p[0].node.as_deref(), Some("a"));
        assert_eq!(p[0].pin, Some([0xab; 32]));
    }

    #[test]
    fn static_servers_come_first_and_once() {
        let members = [
            member("a", "up", "http://10.0.0.1:11223", None, false),
            member("b", "up", "http://10.0.0.2:11223", None, false),
        ];
        let p = peers(&["http://10.0.0.1:11223/".into()], &members, "c");
        let bases: Vec<_> = p
            .iter()
            .map(|p| (p.base.as_str(), p.node.is_some()))
            .collect();
        assert_eq!(
            bases,
            [
                ("http://10.0.0.1:11223", false),
                ("http://10.0.0.2:11223", true)
            ]
        );
    }

    #[test]
    fn a_draining_member_stays_marked_until_it_is_gone() {
        let draining = [member("b", "up", "http://10.0.0.2:11223", None, true)];
        let p = peers(&[], &draining, "a");
        assert!(p[0].draining);
        let left = [member("b", "down", "http://10.0.0.2:11223", None, true)];
        assert!(peers(&[], &left, "a").is_empty());
    }

    fn c(healthy: bool, in_flight: u32, rtt_us: f64) -> Candidate {
        Candidate {
            healthy,
            in_flight,
            rtt_us,
        }
    }

    #[test]
    fn picks_least_loaded_by_rtt() {
        assert_eq!(choose(&[c(true, 3, 100.0), c(true, 0, 200.0)]), Some(1));
        assert_eq!(choose(&[c(true, 0, 100.0), c(true, 0, 200.0)]), Some(0));
        assert_eq!(choose(&[c(true, 1, 100.0), c(true, 0, 200.0)]), Some(0));
    }

    #[test]
    fn skips_unhealthy_and_reports_none() {
        assert_eq!(choose(&[c(false, 0, 1.0), c(true, 9, 900.0)]), Some(1));
        assert_eq!(choose(&[c(false, 0, 1.0)]), None);
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn unknown_rtt_counts_as_fast_and_ties_go_first() {
        assert_eq!(choose(&[c(true, 0, 0.0), c(true, 0, 0.0)]), Some(0));
    }

    /// How many of 1000 evenly spread rolls `balance` gives each index.
    fn shares(candidates: &[Candidate]) -> Vec<usize> {
        let mut out = vec![0; candidates.len()];
        for k in 0..1000 {
            if let Some(i) = balance(candidates, (f64::from(k) + 0.5) / 1000.0) {
                out[i] += 1;
            }
        }
        out
    }

    #[test]
    fn a_request_stays_here_unless_a_peer_is_faster() {
        // Idle here at 5 ms against peers at 13..16 ms; a tie stays too.
        let idle = [c(true, 0, 5e3), c(true, 0, 15e3), c(true, 0, 13e3)];
        assert_eq!(shares(&idle), [1000, 0, 0]);
        assert_eq!(shares(&[c(true, 0, 13e3), c(true, 0, 13e3)]), [1000, 0]);
    }

    #[test]
    fn every_peer_faster_than_here_shares_in_proportion_to_its_speed() {
        // The CI run at b302d43: busy here; b 15.4 ms, c 13.4 ms and d
        // (just joined) 16.2 ms. Always the fastest left d with nothing.
        let cands = [
            c(true, 1, 40e3),
            c(true, 0, 15.4e3),
            c(true, 0, 13.4e3),
            c(true, 0, 16.2e3),
        ];
        let s = shares(&cands);
        assert_eq!(s[0], 0, "{s:?}");
        assert!(s[3] > 250 && s[3] < s[1] && s[1] < s[2], "{s:?}");
        assert_eq!(s.iter().sum::<usize>(), 1000);
        // A peer with requests in flight counts as that much slower.
        let busy = [c(true, 9, 1e6), c(true, 3, 10e3), c(true, 0, 10e3)];
        assert_eq!(shares(&busy), [0, 200, 800]);
    }

    #[test]
    fn peers_slower_than_here_or_unhealthy_get_nothing() {
        // Here 2 × 10 ms: b (15 ms) is faster, c (25 ms) and d (down) not.
        let cands = [
            c(true, 1, 10e3),
            c(true, 0, 15e3),
            c(true, 0, 25e3),
            c(false, 0, 1e3),
        ];
        assert_eq!(shares(&cands), [0, 1000, 0, 0]);
    }

    #[test]
    fn with_this_server_unhealthy_every_healthy_peer_shares() {
        let cands = [c(false, 0, 1e3), c(true, 0, 10e3), c(true, 0, 10e3)];
        assert_eq!(shares(&cands), [0, 500, 500]);
        assert_eq!(balance(&[c(false, 0, 1e3), c(false, 0, 1e3)], 0.5), None);
        assert_eq!(balance(&[c(true, 0, 1e3)], 0.99), Some(0));
        assert_eq!(balance(&[c(false, 0, 1e3), c(true, 0, 1e3)], 1.0), Some(1));
    }

    #[test]
    fn ewma_smooths() {
        assert_eq!(ewma(0.0, 10.0), 10.0);
        assert_eq!(ewma(10.0, 20.0), 12.0);
    }
}
