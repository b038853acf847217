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
    /// Fixed per certificate (from its SHA-256): picks its jitter and its
    /// point in an ARI window, so a restart does not pick again.
    pub seed: u64,
}

/// Longest jitter: a fleet spreads over a few hours, not days.
const MAX_JITTER: Secs = 6 * 3600;
/// Bounds on the wait before the CA's renewal window is asked again.
pub const ARI_MIN_RECHECK: Secs = 3600;
pub const ARI_MAX_RECHECK: Secs = 86_400;

/// The CA's suggested renewal window (RFC 9773), unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Secs,
    pub end: Secs,
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
/// Then it is moved earlier by [`jitter`], so that nodes holding
/// certificates of the same age do not all order in the same minute.
pub fn renew_at(held: &Held, renew_before_days: u32) -> Secs {
    let lifetime = held.not_after - held.not_before;
    held.not_after - (Secs::from(renew_before_days) * DAY).min(lifetime / 3) - jitter(held)
}

/// How much earlier than the schedule this certificate renews: between 0
/// and a twentieth of its lifetime, at most 6 hours, picked by its seed.
pub fn jitter(held: &Held) -> Secs {
    let span = ((held.not_after - held.not_before) / 20).clamp(0, MAX_JITTER);
    pick(held.seed, span)
}

/// A point in `0..=span` fixed by `seed`.
fn pick(seed: u64, span: Secs) -> Secs {
    if span <= 0 {
        return 0;
    }
    (seed % (span as u64 + 1)) as Secs
}

/// When to renew inside the CA's window: a point fixed by the
/// certificate's seed (RFC 9773 §4.2 asks for a random one), never after
/// the certificate ends; a point already past means now.
pub fn ari_renew_at(window: Window, held: &Held, now: Secs) -> Secs {
    let at = window.start + pick(held.seed, window.end - window.start);
    at.min(held.not_after).max(now)
}

/// When to ask for the window again: after the CA's Retry-After, but no
/// sooner than an hour and no later than a day.
pub fn ari_recheck(now: Secs, retry_after: Secs) -> Secs {
    now + retry_after.clamp(ARI_MIN_RECHECK, ARI_MAX_RECHECK)
}

/// When `held` is due: inside the CA's window when there is one, else by
/// its lifetime ([`renew_at`]).
pub fn due_at(held: &Held, renew_before_days: u32, window: Option<Window>, now: Secs) -> Secs {
    match window {
        Some(w) => ari_renew_at(w, held, now),
        None => renew_at(held, renew_before_days),
    }
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
    window: Option<Window>,
    failures: &Failures,
    forced: bool,
) -> Step {
    if forced {
        return Step::Order;
    }
    let due = match held {
        Some(h) if covers(h, domains) => due_at(h, renew_before_days, window, now),
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
            seed: 0,
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
            next_step(DAY, Some(&h), &domains(), 30, None, &none, false),
            Step::WaitUntil(60 * DAY)
        );
        assert_eq!(
            next_step(60 * DAY, Some(&h), &domains(), 30, None, &none, false),
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
            next_step(5, None, &domains(), 30, None, &none, false),
            Step::Order
        );
        let mut h = held(0, 90);
        h.names.push("b.example".into());
        assert_eq!(
            next_step(5, Some(&h), &domains(), 30, None, &none, false),
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
            next_step(1000, None, &domains(), 30, None, &f, false),
            Step::WaitUntil(1240)
        );
        assert_eq!(
            next_step(1240, None, &domains(), 30, None, &f, false),
            Step::Order
        );
        assert_eq!(
            next_step(1000, None, &domains(), 30, None, &f, true),
            Step::Order
        );
        // A failure long ago does not delay a renewal that is not due yet.
        let h = held(0, 90);
        let old = Failures {
            count: 1,
            last_at: 0,
        };
        assert_eq!(
            next_step(DAY, Some(&h), &domains(), 30, None, &old, false),
            Step::WaitUntil(60 * DAY)
        );
    }

    #[test]
    fn jitter_is_earlier_bounded_and_fixed_per_certificate() {
        let mut h = held(0, 90);
        for seed in [1, 77, 12_345, u64::MAX] {
            h.seed = seed;
            let j = jitter(&h);
            assert!((0..=MAX_JITTER).contains(&j), "{j}");
            assert_eq!(renew_at(&h, 30), 60 * DAY - j);
            // The same certificate gets the same offset every time.
            assert_eq!(jitter(&h), j);
        }
        // Two seeds, two offsets: nodes spread out.
        h.seed = 1;
        let a = jitter(&h);
        h.seed = 2;
        assert_ne!(a, jitter(&h));
        // A 6-day certificate moves by at most a twentieth of its life.
        let mut short = held(0, 6);
        short.seed = u64::MAX;
        assert!(jitter(&short) <= 6 * DAY / 20);
        assert!(renew_at(&short, 30) >= 4 * DAY - 6 * DAY / 20);
    }

    #[test]
    fn an_ari_window_in_the_future_picks_a_fixed_point_inside_it() {
        let mut h = held(0, 90);
        let w = Window {
            start: 50 * DAY,
            end: 51 * DAY,
        };
        for seed in [0, 5, 999_999, u64::MAX] {
            h.seed = seed;
            let at = ari_renew_at(w, &h, DAY);
            assert!(at >= w.start && at <= w.end, "{at}");
            assert_eq!(ari_renew_at(w, &h, 2 * DAY), at);
        }
        h.seed = 0;
        let none = Failures::default();
        assert_eq!(
            next_step(DAY, Some(&h), &domains(), 30, Some(w), &none, false),
            Step::WaitUntil(50 * DAY)
        );
        // The window wins over the lifetime schedule (60 days).
        assert_eq!(due_at(&h, 30, Some(w), DAY), 50 * DAY);
        assert_eq!(due_at(&h, 30, None, DAY), 60 * DAY);
    }

    #[test]
    fn an_ari_window_in_the_past_renews_now() {
        let mut h = held(0, 90);
        h.seed = 42;
        let w = Window {
            start: 10 * DAY,
            end: 11 * DAY,
        };
        let now = 20 * DAY;
        assert_eq!(ari_renew_at(w, &h, now), now);
        let none = Failures::default();
        assert_eq!(
            next_step(now, Some(&h), &domains(), 30, Some(w), &none, false),
            Step::Order
        );
        // A window that reaches past the end renews before the end.
        let late = Window {
            start: 89 * DAY,
            end: 200 * DAY,
        };
        h.seed = u64::MAX - 1;
        assert!(ari_renew_at(late, &h, DAY) <= 90 * DAY);
    }

    #[test]
    fn retry_after_is_bounded_between_an_hour_and_a_day() {
        assert_eq!(ari_recheck(100, 0), 100 + 3600);
        assert_eq!(ari_recheck(100, 7200), 100 + 7200);
        assert_eq!(ari_recheck(100, 30 * DAY), 100 + DAY);
        assert_eq!(ari_recheck(100, -5), 100 + 3600);
    }
}
