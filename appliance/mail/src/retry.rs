//! When to try a deferred message again: 1 min, 5 min, 15 min, 1 h, then
//! hourly until the message is older than `mail.max_queue_age`. Pure, so the
//! schedule is tested without clocks.

const STEPS: [i64; 4] = [60, 300, 900, 3600];
const HOURLY: i64 = 3600;

/// The time of the next attempt after `attempts` failed ones (1 = the first
/// failed), or `None` when the message has been queued too long and must
/// be bounced. The last attempt is made exactly at the deadline.
pub fn next_try(received: i64, attempts: u32, now: i64, max_age: u64) -> Option<i64> {
    let deadline = received.saturating_add(i64::try_from(max_age).unwrap_or(i64::MAX));
    if now >= deadline {
        return None;
    }
    let idx = attempts.saturating_sub(1) as usize;
    let delay = STEPS.get(idx).copied().unwrap_or(HOURLY);
    Some(now.saturating_add(delay).min(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY5: u64 = 5 * 86400;

    #[test]
    fn schedule_steps_then_hourly() {
        let delays: Vec<i64> = (1..=7)
            .map(|a| next_try(0, a, 1000, DAY5).unwrap() - 1000)
            .collect();
        assert_eq!(delays, vec![60, 300, 900, 3600, 3600, 3600, 3600]);
    }

    #[test]
    fn last_try_at_deadline_then_give_up() {
        let deadline = DAY5 as i64;
        assert_eq!(next_try(0, 9, deadline - 10, DAY5), Some(deadline));
        assert_eq!(next_try(0, 10, deadline, DAY5), None);
        assert_eq!(next_try(0, 1, deadline + 1, DAY5), None);
    }

    #[test]
    fn zero_attempts_is_like_first_and_huge_values_do_not_overflow() {
        assert_eq!(next_try(0, 0, 0, DAY5), Some(60));
        assert_eq!(
            next_try(i64::MAX - 5, u32::MAX, i64::MAX - 10, u64::MAX),
            Some(i64::MAX)
        );
    }
}
