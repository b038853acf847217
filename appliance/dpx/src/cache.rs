//! The UDP answer cache: which queries may be answered from it (their
//! bytes alone decide the answer), their keys, and the two-generation map
//! that holds the encoded answers within a memory budget.

use std::collections::HashMap;

/// Memory for cached answers (keys, answers and a per-entry allowance),
/// so random names cannot grow the process without limit.
pub(crate) const CACHE_BYTES: usize = 8 << 20;
/// Hash map and allocation overhead counted for each entry.
const ENTRY_OVERHEAD: usize = 64;

/// Where the question of a cacheable query ends: the name is
/// `packet[12..name_end]`, type and class the next four bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Question {
    pub name_end: usize,
}

impl Question {
    pub fn end(self) -> usize {
        self.name_end + 4
    }
}

/// A query whose answer depends only on its bytes (ID and letter case
/// aside): QR=0, opcode QUERY, exactly one question with an uncompressed
/// name and nothing else but at most one OPT record. TSIG, SIG(0) and
/// trailing bytes are not.
pub(crate) fn question(p: &[u8]) -> Option<Question> {
    let h = p.get(..12)?;
    let count = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    // QR and opcode are the top five bits of the third byte.
    if h[2] & 0xF8 != 0 || count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
        return None;
    }
    let mut i = 12;
    loop {
        let len = usize::from(*p.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        // Compression pointers and the reserved label types.
        if len > 63 {
            return None;
        }
        i += len;
        if i - 12 > 255 {
            return None;
        }
    }
    let q = Question { name_end: i };
    let rest = p.get(q.end()..)?;
    let plain = if count(10) == 0 {
        rest.is_empty()
    } else {
        // OPT: root name, type 41, class, TTL, RDLENGTH, RDATA to the end.
        rest.len() >= 11
            && rest[..3] == [0, 0, 41]
            && rest.len() == 11 + usize::from(u16::from_be_bytes([rest[9], rest[10]]))
    };
    plain.then_some(q)
}

/// The cache key: the query with the ID zeroed and the name lowercased
/// (label lengths are below 64, so lowercasing leaves them alone).
pub(crate) fn key(p: &[u8], q: Question, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(p);
    out[..2].fill(0);
    out[12..q.name_end].make_ascii_lowercase();
}

/// Whether hickory's `answer` to `query` may be served again to the same
/// key: a complete NOERROR or NXDOMAIN response echoing the question.
pub(crate) fn reusable(answer: &[u8], query: &[u8], q: Question) -> bool {
    answer.len() >= q.end()
        && answer[..2] == query[..2]
        && answer[2] & 0x82 == 0x80 // QR set, TC clear
        && matches!(answer[3] & 0x0F, 0 | 3)
        && answer[4..6] == [0, 1]
        && answer[12..q.end()].eq_ignore_ascii_case(&query[12..q.end()])
}

/// Answers by key, in two halves: new entries go to `young`; when it is
/// full it becomes `old` and the previous `old` is dropped. A hit in
/// `old` moves back to `young`, so answers in use survive a flood of
/// one-off names and memory stays under the budget.
pub(crate) struct Cache {
    young: HashMap<Box<[u8]>, Box<[u8]>>,
    old: HashMap<Box<[u8]>, Box<[u8]>>,
    young_bytes: usize,
    half: usize,
}

impl Cache {
    pub fn new(budget: usize) -> Cache {
        Cache {
            young: HashMap::new(),
            old: HashMap::new(),
            young_bytes: 0,
            half: budget / 2,
        }
    }

    fn cost(key: &[u8], answer: &[u8]) -> usize {
        key.len() + answer.len() + ENTRY_OVERHEAD
    }

    /// Writes the cached answer for `key` into `out`, with the ID and
    /// the name's case of `query`; false when there is none.
    pub fn answer(&mut self, key: &[u8], query: &[u8], q: Question, out: &mut Vec<u8>) -> bool {
        if let Some(a) = self.young.get(key) {
            patch(a, query, q, out);
            return true;
        }
        let Some((k, a)) = self.old.remove_entry(key) else {
            return false;
        };
        patch(&a, query, q, out);
        self.put(k, a);
        true
    }

    pub fn insert(&mut self, key: &[u8], answer: &[u8]) {
        self.put(key.into(), answer.into());
    }

    fn put(&mut self, key: Box<[u8]>, answer: Box<[u8]>) {
        let cost = Cache::cost(&key, &answer);
        if cost > self.half {
            return;
        }
        if self.young_bytes + cost > self.half {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += cost;
        let key_len = key.len();
        if let Some(prev) = self.young.insert(key, answer) {
            self.young_bytes -= key_len + prev.len() + ENTRY_OVERHEAD;
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        let sum = |m: &HashMap<Box<[u8]>, Box<[u8]>>| {
            m.iter().map(|(k, a)| Cache::cost(k, a)).sum::<usize>()
        };
        sum(&self.young) + sum(&self.old)
    }
}

fn patch(answer: &[u8], query: &[u8], q: Question, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(answer);
    out[..2].copy_from_slice(&query[..2]);
    out[12..q.name_end].copy_from_slice(&query[12..q.name_end]);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::harness::{KEY_NAME, KEY_SECRET};
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
    use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};

    pub(crate) fn query(id: u16, name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            m.edns = Some(e);
        }
        m.to_vec().unwrap()
    }

    fn key_of(p: &[u8]) -> Vec<u8> {
        let mut k = Vec::new();
        key(p, question(p).unwrap(), &mut k);
        k
    }

    #[test]
    fn plain_queries_are_cacheable_and_nothing_else() {
        let q = query(7, "www.fuzz.test.", RecordType::A, false);
        assert_eq!(question(&q), Some(Question { name_end: 12 + 15 }));
        assert!(question(&query(7, "www.fuzz.test.", RecordType::A, true)).is_some());

        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = q.clone();
            f(&mut p);
            question(&p)
        };
        assert_eq!(with(&|p| p[2] |= 0x80), None, "a response");
        assert_eq!(with(&|p| p[2] |= 5 << 3), None, "UPDATE");
        assert_eq!(with(&|p| p[5] = 2), None, "two questions");
        assert_eq!(with(&|p| p[7] = 1), None, "an answer section");
        assert_eq!(
            with(&|p| p[11] = 1),
            None,
            "an additional record but no OPT"
        );
        assert_eq!(with(&|p| p.push(0)), None, "trailing bytes");
        assert_eq!(with(&|p| p.truncate(p.len() - 1)), None, "cut short");
        assert_eq!(with(&|p| p[12] = 0xC0), None, "a compression pointer");

        // A TSIG record is an additional record that is not OPT.
        let mut m = Message::from_vec(&q).unwrap();
        let key = Name::from_ascii(format!("{KEY_NAME}.")).unwrap();
        let signer =
            TSigner::new(KEY_SECRET.to_vec(), TsigAlgorithm::HmacSha256, key, 300).unwrap();
        m.finalize(&signer, 1_700_000_000).unwrap();
        assert_eq!(question(&m.to_vec().unwrap()), None, "TSIG");
    }

    #[test]
    fn the_key_ignores_id_and_case_only() {
        let a = query(1, "www.fuzz.test.", RecordType::A, true);
        let b = query(2, "wWw.FUZZ.test.", RecordType::A, true);
        assert_eq!(key_of(&a), key_of(&b));
        assert_eq!(&key_of(&a)[..2], [0, 0]);
        assert_ne!(
            key_of(&a),
            key_of(&query(1, "www.fuzz.test.", RecordType::AAAA, true))
        );
        assert_ne!(
            key_of(&a),
            key_of(&query(1, "www.fuzz.test.", RecordType::A, false))
        );
        let mut no_rd = a.clone();
        no_rd[2] &= !1;
        assert_ne!(key_of(&a), key_of(&no_rd), "flags are part of the key");
    }

    #[test]
    fn a_hit_carries_the_query_id_and_case() {
        let first = query(1, "www.fuzz.test.", RecordType::A, false);
        let answer = {
            let mut m = Message::from_vec(&first).unwrap();
            m.metadata.message_type = MessageType::Response;
            m.add_answer(Record::from_rdata(
                Name::from_ascii("www.fuzz.test.").unwrap(),
                300,
                RData::A(A([192, 0, 2, 1].into())),
            ));
            m.to_vec().unwrap()
        };
        let q = question(&first).unwrap();
        assert!(reusable(&answer, &first, q));
        let mut cache = Cache::new(1 << 20);
        cache.insert(&key_of(&first), &answer);

        let second = query(0xBEEF, "WwW.fUzZ.TeSt.", RecordType::A, false);
        let mut out = Vec::new();
        assert!(cache.answer(&key_of(&second), &second, q, &mut out));
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 0xBEEF);
        assert_eq!(m.queries[0].name().to_string(), "WwW.fUzZ.TeSt.");
        assert_eq!(m.answers.len(), 1);
        assert_eq!(
            out[2..12],
            answer[2..12],
            "only the ID and the name's case change"
        );
        assert_eq!(out[q.name_end..], answer[q.name_end..]);
    }

    #[test]
    fn only_complete_noerror_and_nxdomain_answers_are_reused() {
        let qry = query(1, "www.fuzz.test.", RecordType::A, false);
        let q = question(&qry).unwrap();
        let mut answer = qry.clone();
        answer[2] |= 0x80;
        assert!(reusable(&answer, &qry, q));
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut a = answer.clone();
            f(&mut a);
            reusable(&a, &qry, q)
        };
        assert!(with(&|a| a[3] = 3), "NXDOMAIN");
        assert!(!with(&|a| a[3] = 2), "SERVFAIL");
        assert!(!with(&|a| a[3] = 5), "REFUSED");
        assert!(!with(&|a| a[2] |= 2), "truncated");
        assert!(!with(&|a| a[2] &= !0x80), "not a response");
        assert!(!with(&|a| a[1] ^= 1), "another ID");
        assert!(!with(&|a| a[13] = b'x'), "another question");
        assert!(!with(&|a| a.truncate(20)), "cut short");
    }

    #[test]
    fn the_cache_stays_within_its_budget_and_keeps_what_is_used() {
        let budget = 64 << 10;
        let mut cache = Cache::new(budget);
        let hot = query(1, "hot.fuzz.test.", RecordType::A, false);
        let hq = question(&hot).unwrap();
        cache.insert(&key_of(&hot), &hot);
        let mut out = Vec::new();
        for i in 0..20_000 {
            let q = query(1, &format!("n{i}.fuzz.test."), RecordType::A, false);
            cache.insert(&key_of(&q), &q);
            assert!(cache.bytes() <= budget, "{} bytes after {i}", cache.bytes());
            if i % 100 == 0 {
                assert!(
                    cache.answer(&key_of(&hot), &hot, hq, &mut out),
                    "hot entry lost at {i}"
                );
            }
        }
        assert!(cache.len() > 100);
        let early = query(1, "n0.fuzz.test.", RecordType::A, false);
        assert!(!cache.answer(&key_of(&early), &early, question(&early).unwrap(), &mut out));
        // Re-inserting a key does not count it twice.
        let mut again = Cache::new(budget);
        for _ in 0..10 {
            again.insert(&key_of(&hot), &hot);
        }
        assert_eq!(again.bytes(), again.young_bytes);
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn random_bytes_neither_panic_nor_make_keys_of_non_queries() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut k = Vec::new();
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 80) as usize;
            let mut p: Vec<u8> = (0..len)
                .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            if p.len() > 11 && x & 1 == 0 {
                // Mostly query-shaped headers, so the name parser is reached.
                p[2..12].copy_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, (x >> 9) as u8 & 1]);
            }
            if let Some(q) = question(&p) {
                key(&p, q, &mut k);
                assert_eq!(k.len(), p.len());
                assert!(q.end() <= p.len());
            }
        }
    }
}
