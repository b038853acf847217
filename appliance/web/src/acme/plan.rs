//! When to order a certificate: pure decisions on times, so the renewal
//! schedule and the retry backoff are tested without a clock or a CA.

/// Seconds.
pub type Secs = i64;

const DAY: Secs = 86_400;
/// First retry after a failed order; doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Secs = 60;
/// Longest wait between tries (a CA's rate limits count failed orders).
const MAX_BACKOFF: Secs = 6 * 3600;

/// The certificate being served from the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub not_before: Secs,
    pub not_after: Secs,
    /// Its DNS names, lower case.
    pub names: Vec<String>,
}

/// Failed orders since the last success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub last_at: Secs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Order now.
    Order,
    /// Nothing to do until then (unix seconds).
    WaitUntil(Secs),
}

/// When a certificate is due for renewal: `renew_before_days` before it
/// ends, but never earlier than two thirds into its lifetime (a CA that
/// issues 6-day certificates gets a renewal after 4, not a new order
/// every time the plan is looked at).
pub fn renew_at(held: &Held, renew_before_days: u32) -> Secs {
    let lifetime = held.not_after - held.not_before;
    held.not_after - (Secs::from(renew_before_days) * DAY).min(lifetime / 3)
}

/// Wait after `count` failures in a row: 1, 2, 4 … minutes, at most 6 hours.
pub fn backoff(count: u32) -> Secs {
    if count == 0 {
        return 0;
    }
    FIRST_BACKOFF
        .saturating_mul(1 << (count - 1).min(20))
        .min(MAX_BACKOFF)
}

/// Whether `held` covers exactly the configured domains.
pub fn covers(held: &Held, domains: &[String]) -> bool {
    let mut want: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    let mut have = held.names.clone();
    want.sort();
    want.dedup();
    have.sort();
    have.dedup();
    want == have
}

/// What to do now: order when there is no certificate, when it does not
/// cover the domains, when it is due, or when `forced` — but after a
/// failure, not before its backoff is over (a forced order skips it).
pub fn next_step(
    now: Secs,
    held: Option<&Held>,
    domains: &[String],
    renew_before_days: u32,
    failures: &Failures,
    forced: bool,
) -> Step {
    if forced {
        return Step::Order;
    }
    let due = match held {
        Some(h) if covers(h, domains) => renew_at(h, renew_before_days),
        _ => now,
    };
    let retry = if failures.count > 0 {
        failures.last_at + backoff(failures.count)
    } else {
        due
    };
    let at = due.max(retry);
    if at <= now {
        Step::Order
    } else {
        Step::WaitUntil(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(not_before: Secs, days: Secs) -> Held {
        Held {
            not_before,
            not_after: not_before + days * DAY,
            names: vec!["a.example".into()],
        }
    }

    fn domains() -> Vec<String> {
        vec!["A.example".into()]
    }

    #[test]
    fn a_90_day_certificate_renews_30_days_before_its_end() {
        let h = held(0, 90);
        assert_eq!(renew_at(&h, 30), 60 * DAY);
        let none = Failures::default();
        assert_eq!(
            next_step(DAY, Some(&h), &domains(), 30, &none, false),
            Step::WaitUntil(60 * DAY)
        );
        assert_eq!(
            next_step(60 * DAY, Some(&h), &domains(), 30, &none, false),
            Step::Order
        );
    }

    #[test]
    fn a_short_lived_certificate_renews_at_two_thirds() {
        // Pebble's default is 5 years; some CAs issue 6-day certificates.
        let h = held(0, 6);
        assert_eq!(renew_at(&h, 30), 4 * DAY);
        // A long one renews when the operator said.
        assert_eq!(renew_at(&held(0, 365), 30), 335 * DAY);
    }

    #[test]
    fn missing_or_wrong_names_order_now() {
        let none = Failures::default();
        assert_eq!(
            next_step(5, None, &domains(), 30, &none, false),
            Step::Order
        );
        let mut h = held(0, 90);
        h.names.push("b.example".into());
        assert_eq!(
            next_step(5, Some(&h), &domains(), 30, &none, false),
            Step::Order
        );
    }

    #[test]
    fn failures_back_off_exponentially_and_a_forced_order_skips_it() {
        assert_eq!(backoff(1), 60);
        assert_eq!(backoff(2), 120);
        assert_eq!(backoff(4), 480);
        assert_eq!(backoff(40), MAX_BACKOFF);
        let f = Failures {
            count: 3,
            last_at: 1000,
        };
        assert_eq!(
            next_step(1000, None, &domains(), 30, &f, false),
            Step::WaitUntil(1240)
        );
        assert_eq!(
            next_step(1240, None, &domains(), 30, &f, false),
            Step::Order
        );
        assert_eq!(next_step(1000, None, &domains(), 30, &f, true), Step::Order);
        // A failure long ago does not delay a renewal that is not due yet.
        let h = held(0, 90);
        let old = Failures {
            count: 1,
            last_at: 0,
        };
        assert_eq!(
            next_step(DAY, Some(&h), &domains(), 30, &old, false),
            Step::WaitUntil(60 * DAY)
        );
    }
}
