//! Retry schedule of pub/sub deliveries and `invoke_async` work: the delay
//! before attempt n+1 doubles from `base_ms` and is capped, so a subscriber
//! that is down for a while is not hammered and still retried soon after.

/// Upper bound of one delay, whatever the attempt count.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Whether another attempt is allowed after `attempts` failed ones, and
/// the delay before it.
pub fn next_delay(attempts: u32, max_attempts: u32, base_ms: u64) -> Option<u64> {
    if attempts >= max_attempts {
        return None;
    }
    let shift = attempts.saturating_sub(1).min(20);
    Some(base_ms.saturating_mul(1 << shift).min(MAX_DELAY_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_caps_and_stops() {
        let got: Vec<Option<u64>> = (1..=6).map(|a| next_delay(a, 5, 500)).collect();
        assert_eq!(
            got,
            vec![Some(500), Some(1000), Some(2000), Some(4000), None, None]
        );
        assert_eq!(next_delay(10, 100, 1000), Some(MAX_DELAY_MS));
        assert_eq!(next_delay(99, 100, u64::MAX), Some(MAX_DELAY_MS));
        assert_eq!(next_delay(1, 1, 500), None);
        assert_eq!(next_delay(0, 3, 0), Some(0));
    }
}
