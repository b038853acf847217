//! Answers counted by the question's record type and by the response
//! code, since the service started: for `dpx.status`, the console's DNS
//! page and `/metrics`. The UDP threads count into a [`Tally`] of their
//! own and add it to the shared [`Counters`] once per batch of datagrams,
//! so the fast path takes no atomic operation per query.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

/// Record types counted on their own; the rest under "other".
const TYPES: [(u16, &str); 12] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (15, "MX"),
    (2, "NS"),
    (12, "PTR"),
    (6, "SOA"),
    (33, "SRV"),
    (16, "TXT"),
    (257, "CAA"),
    (65, "HTTPS"),
    (255, "ANY"),
];
const OTHER_TYPE: usize = TYPES.len();
/// Response codes 0..=5 by name, then "other".
const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

fn type_slot(qtype: Option<u16>) -> usize {
    qtype
        .and_then(|t| TYPES.iter().position(|(n, _)| *n == t))
        .unwrap_or(OTHER_TYPE)
}

fn rcode_slot(rcode: u16) -> usize {
    usize::from(rcode).min(RCODES.len() - 1)
}

/// A thread's counts not yet added to the shared ones.
#[derive(Default)]
pub(crate) struct Tally {
    types: [u64; TYPES.len() + 1],
    rcodes: [u64; RCODES.len()],
}

impl Tally {
    pub fn count(&mut self, qtype: Option<u16>, rcode: u16) {
        self.types[type_slot(qtype)] += 1;
        self.rcodes[rcode_slot(rcode)] += 1;
    }

    /// Counts an encoded reply by its own header and question (a reply
    /// repeats the question), whichever path wrote it.
    pub fn count_reply(&mut self, reply: &[u8]) {
        let (qtype, rcode) = reply_type_and_rcode(reply);
        self.count(qtype, rcode);
    }
}

/// The question's type (None without one) and the header's response code.
fn reply_type_and_rcode(reply: &[u8]) -> (Option<u16>, u16) {
    let rcode = reply.get(3).map_or(0, |b| u16::from(b & 0x0f));
    let qdcount = match reply.get(4..6) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    };
    if qdcount == 0 {
        return (None, rcode);
    }
    // The question's name: labels up to the root, or a pointer.
    let mut at = 12;
    let end = loop {
        match reply.get(at) {
            None => return (None, rcode),
            Some(0) => break at + 1,
            Some(b) if b & 0xc0 == 0xc0 => break at + 2,
            Some(len) => at += 1 + usize::from(*len),
        }
    };
    match reply.get(end..end + 2) {
        Some(&[hi, lo]) => (Some(u16::from_be_bytes([hi, lo])), rcode),
        _ => (None, rcode),
    }
}

/// The service's counts, shared by every listener.
#[derive(Default)]
pub struct Counters {
    types: [AtomicU64; TYPES.len() + 1],
    rcodes: [AtomicU64; RCODES.len()],
}

impl Counters {
    /// Adds `tally` and empties it.
    pub(crate) fn add(&self, tally: &mut Tally) {
        add(&self.types, &mut tally.types);
        add(&self.rcodes, &mut tally.rcodes);
    }

    /// `{"total", "by_type": {"A": n, ...}, "by_rcode": {"NOERROR": n, ...}}`
    /// with the counted names only.
    pub fn json(&self) -> Value {
        let names = TYPES.iter().map(|(_, n)| *n).chain(["other"]);
        let by_type = counted(names, &self.types);
        let by_rcode = counted(RCODES.iter().copied(), &self.rcodes);
        let total: u64 = self.rcodes.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        json!({"total": total, "by_type": by_type, "by_rcode": by_rcode})
    }
}

fn add(shared: &[AtomicU64], local: &mut [u64]) {
    for (s, l) in shared.iter().zip(local.iter_mut()) {
        if *l != 0 {
            s.fetch_add(*l, Ordering::Relaxed);
            *l = 0;
        }
    }
}

fn counted<'a>(names: impl Iterator<Item = &'a str>, counts: &[AtomicU64]) -> Map<String, Value> {
    names
        .zip(counts)
        .map(|(n, c)| (n, c.load(Ordering::Relaxed)))
        .filter(|(_, c)| *c != 0)
        .map(|(n, c)| (n.to_string(), json!(c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply header with `rcode` and one question for `name` of `qtype`.
    fn reply(rcode: u8, name: &[u8], qtype: u16) -> Vec<u8> {
        let mut r = vec![0x12, 0x34, 0x84, rcode, 0, 1, 0, 0, 0, 0, 0, 0];
        r.extend_from_slice(name);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1]);
        r
    }

    #[test]
    fn replies_are_counted_by_question_type_and_rcode() {
        let c = Counters::default();
        let mut t = Tally::default();
        t.count_reply(&reply(0, b"\x03www\x04test\x00", 1));
        t.count_reply(&reply(0, b"\x03www\x04test\x00", 1));
        t.count_reply(&reply(3, b"\x02no\x04test\x00", 28));
        t.count_reply(&reply(0, b"\x04test\x00", 99)); // SPF: other
        t.count_reply(&reply(9, b"\x04test\x00", 6)); // NOTAUTH: other
        // FORMERR without a question, and bytes too short for a header.
        t.count_reply(&[0x12, 0x34, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        t.count_reply(&[0x12]);
        c.add(&mut t);
        assert_eq!(
            c.json(),
            json!({
                "total": 7,
                "by_type": {"A": 2, "AAAA": 1, "SOA": 1, "other": 3},
                "by_rcode": {"NOERROR": 4, "FORMERR": 1, "NXDOMAIN": 1, "other": 1},
            })
        );
        // The tally was emptied: adding it again changes nothing.
        c.add(&mut t);
        assert_eq!(c.json()["total"], 7);
    }

    #[test]
    fn a_truncated_question_counts_as_other() {
        let mut t = Tally::default();
        t.count_reply(&reply(0, b"\x03www\x04te", 1)[..17]);
        let c = Counters::default();
        c.add(&mut t);
        assert_eq!(c.json()["by_type"], json!({"other": 1}));
    }
}
