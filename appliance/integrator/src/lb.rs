//! Load balancer decisions: which of this node's servers (the local one
//! and any cluster peers in `integrator.servers`) takes a request. Pure,
//! so the policy is tested without sockets.

/// What the balancer knows about one server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub healthy: bool,
    /// Requests it is handling for us now.
    pub in_flight: u32,
    /// Smoothed round-trip time of health checks / requests, microseconds.
    pub rtt_us: f64,
}

/// Least loaded by RTT: the healthy candidate with the smallest expected
/// wait, `(in_flight + 1) × rtt`; ties go to the lowest index, so the local
/// server (index 0) wins when all else is equal. `None` when none is healthy.
pub fn choose(candidates: &[Candidate]) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.healthy)
        .map(|(i, c)| (i, (f64::from(c.in_flight) + 1.0) * c.rtt_us.max(1.0)))
        .fold(None, |best: Option<(usize, f64)>, (i, score)| match best {
            Some((_, s)) if s <= score => best,
            _ => Some((i, score)),
        })
        .map(|(i, _)| i)
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

    #[test]
    fn ewma_smooths() {
        assert_eq!(ewma(0.0, 10.0), 10.0);
        assert_eq!(ewma(10.0, 20.0), 12.0);
    }
}
