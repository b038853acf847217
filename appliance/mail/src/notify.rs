//! Admin notifications, rate-limited: at most one mail per interval. The
//! first notification after a quiet interval goes out at once; those that
//! arrive within the interval are grouped into one digest sent when it
//! ends, identical ones counted rather than repeated. Pure state, driven by
//! the caller's clock.

/// Distinct notifications kept for one digest; beyond, they are counted.
const MAX_PENDING: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Note {
    subject: String,
    body: String,
    first: i64,
    count: u32,
}

/// One mail to send to the admin recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct Notifier {
    interval: i64,
    last_sent: Option<i64>,
    pending: Vec<Note>,
    dropped: u32,
}

impl Notifier {
    pub fn new(interval_secs: u64) -> Notifier {
        Notifier {
            interval: i64::try_from(interval_secs).unwrap_or(i64::MAX),
            last_sent: None,
            pending: Vec::new(),
            dropped: 0,
        }
    }

    pub fn set_interval(&mut self, interval_secs: u64) {
        self.interval = i64::try_from(interval_secs).unwrap_or(i64::MAX);
    }

    fn window_open(&self, now: i64) -> bool {
        self.last_sent
            .is_none_or(|t| now.saturating_sub(t) >= self.interval)
    }

    /// Takes a notification; returns a mail to send now, or `None` when it
    /// was held for the next digest.
    pub fn offer(&mut self, now: i64, subject: &str, body: &str) -> Option<Digest> {
        if let Some(n) = self
            .pending
            .iter_mut()
            .find(|n| n.subject == subject && n.body == body)
        {
            n.count += 1;
        } else if self.pending.len() < MAX_PENDING {
            self.pending.push(Note {
                subject: subject.into(),
                body: body.into(),
                first: now,
                count: 1,
            });
        } else {
            self.dropped += 1;
        }
        self.due(now)
    }

    /// When the held notifications are to be sent, if any are held.
    pub fn next_due(&self) -> Option<i64> {
        if self.pending.is_empty() && self.dropped == 0 {
            return None;
        }
        Some(
            self.last_sent
                .map_or(i64::MIN, |t| t.saturating_add(self.interval)),
        )
    }

    /// The digest of held notifications if the interval has passed.
    pub fn due(&mut self, now: i64) -> Option<Digest> {
        if (self.pending.is_empty() && self.dropped == 0) || !self.window_open(now) {
            return None;
        }
        self.last_sent = Some(now);
        let notes = std::mem::take(&mut self.pending);
        let dropped = std::mem::take(&mut self.dropped);
        Some(render(&notes, dropped))
    }
}

fn render(notes: &[Note], dropped: u32) -> Digest {
    let times = |n: &Note| {
        if n.count > 1 {
            format!(" (x{})", n.count)
        } else {
            String::new()
        }
    };
    if let [n] = notes
        && dropped == 0
    {
        return Digest {
            subject: format!("{}{}", n.subject, times(n)),
            body: n.body.clone(),
        };
    }
    let total: u32 = notes.iter().map(|n| n.count).sum::<u32>() + dropped;
    let mut body = String::new();
    for n in notes {
        body.push_str(&format!(
            "== {}{} (first at {})\n{}\n\n",
            n.subject,
            times(n),
            crate::message::rfc5322_date(n.first),
            n.body.trim_end()
        ));
    }
    if dropped > 0 {
        body.push_str(&format!("... and {dropped} more notifications not shown\n"));
    }
    Digest {
        subject: format!(
            "{total} notifications: {}",
            notes.first().map_or("", |n| &n.subject)
        ),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_goes_out_then_grouped_until_interval_ends() {
        let mut n = Notifier::new(300);
        let d = n.offer(1000, "disk full", "sda1 at 99%").unwrap();
        assert_eq!(d.subject, "disk full");
        assert!(n.offer(1010, "svc failed", "net").is_none());
        assert!(n.offer(1020, "svc failed", "net").is_none());
        assert!(n.offer(1030, "disk full", "again").is_none());
        assert_eq!(n.next_due(), Some(1300));
        assert!(n.due(1299).is_none());
        let d = n.due(1300).unwrap();
        assert_eq!(d.subject, "3 notifications: svc failed");
        assert!(d.body.contains("svc failed (x2)"), "{}", d.body);
        assert!(d.body.contains("again"));
        assert_eq!(n.next_due(), None);
        assert!(n.due(5000).is_none());
    }

    #[test]
    fn single_held_note_keeps_its_subject_with_count() {
        let mut n = Notifier::new(60);
        n.offer(0, "a", "b");
        n.offer(1, "x", "y");
        n.offer(2, "x", "y");
        let d = n.due(60).unwrap();
        assert_eq!(d.subject, "x (x2)");
        assert_eq!(d.body, "y");
    }

    #[test]
    fn flood_is_bounded() {
        let mut n = Notifier::new(60);
        n.offer(0, "first", "");
        for i in 0..1000 {
            assert!(n.offer(1, &format!("s{i}"), "").is_none());
        }
        let d = n.due(61).unwrap();
        assert!(d.subject.starts_with("1000 notifications"));
        assert!(d.body.contains("950 more"));
    }
}
