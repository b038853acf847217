//! The zone's names and their record types, keyed by lowercased wire
//! name, to decide in a few hash lookups that a question has no records:
//! NXDOMAIN or NODATA. hickory's in-memory handler decides NODATA by
//! walking every record of the zone, so each miss cost the zone's size.
//! Built beside the handler at every change, from the records the handler
//! accepted, and following the handler's own rules (delegations, CNAME,
//! wildcards, ANY), so both give the same answer.

use std::collections::HashMap;

use hickory_proto::rr::{Name, Record, RecordType};

/// Why a question has no records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// The name exists (it owns records or names below it do): NOERROR.
    NoData,
    NxDomain,
}

#[derive(Debug)]
pub(crate) struct Names {
    origin: Box<[u8]>,
    /// Every owner in the zone and each of its ancestors down to the
    /// origin; an ancestor without records (empty non-terminal) has none.
    types: HashMap<Box<[u8]>, Vec<RecordType>>,
    /// Whether some name below the apex has NS records: only then are
    /// the ancestors of a question looked at.
    delegated: bool,
    /// Whether some owner's first label is `*`: only then are wildcards
    /// looked at.
    wildcards: bool,
}

/// `name` as uncompressed wire format, ASCII letters lowercased, as the
/// question's name appears in a cache key.
pub(crate) fn wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        // Labels are at most 63 bytes long.
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// The name one label up, or `None` for the root (or malformed bytes).
fn parent(name: &[u8]) -> Option<&[u8]> {
    let len = usize::from(*name.first()?);
    if len == 0 {
        return None;
    }
    name.get(1 + len..)
}

/// NS without SOA: a delegation, not the apex.
fn is_cut(types: &[RecordType]) -> bool {
    types.contains(&RecordType::NS) && !types.contains(&RecordType::SOA)
}

fn is_wildcard(name: &[u8]) -> bool {
    name.starts_with(&[1, b'*'])
}

impl Names {
    pub fn new(origin: &Name) -> Names {
        Names {
            origin: wire(origin).into(),
            types: HashMap::new(),
            delegated: false,
            wildcards: false,
        }
    }

    /// The name itself and its ancestors down to the origin, or `None`
    /// when it is outside the zone.
    fn in_zone<'a>(&self, name: &'a [u8]) -> Option<Vec<&'a [u8]>> {
        let mut chain = Vec::new();
        let mut at = name;
        while at.len() > self.origin.len() {
            chain.push(at);
            at = parent(at)?;
        }
        (at == &*self.origin).then(|| {
            chain.push(at);
            chain
        })
    }

    /// Counts a record the handler took.
    pub fn add(&mut self, record: &Record) {
        let name = wire(&record.name);
        let Some(chain) = self.in_zone(&name) else {
            return;
        };
        let rtype = record.record_type();
        for (i, n) in chain.iter().enumerate() {
            let types = self.types.entry((*n).into()).or_default();
            if i == 0 && !types.contains(&rtype) {
                types.push(rtype);
            }
        }
        self.delegated |= rtype == RecordType::NS && name.len() > self.origin.len();
        self.wildcards |= is_wildcard(&name);
    }

    /// Whether hickory answers a question for a type `name` (lowercased
    /// wire format) owns with that record set alone: the name is in the
    /// zone, has no CNAME or ANAME (which would be the answer instead)
    /// and is not at or below a delegation (a referral).
    pub fn direct(&self, name: &[u8]) -> bool {
        let Some(chain) = self.in_zone(name) else {
            return false;
        };
        let aliased = self.types.get(name).is_some_and(|t| {
            t.iter()
                .any(|t| matches!(t, RecordType::CNAME | RecordType::ANAME))
        });
        let delegated = self.delegated
            && chain
                .iter()
                .any(|n| self.types.get(*n).is_some_and(|t| is_cut(t)));
        !aliased && !delegated
    }

    /// Whether hickory's handler has no records for `qname` (lowercased
    /// wire format) and `qtype`, and why; `None` when it has some, or a
    /// referral, or the question is not this zone's or a zone transfer.
    pub fn miss(&self, qname: &[u8], qtype: RecordType) -> Option<Miss> {
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return None;
        }
        let chain = self.in_zone(qname)?;
        let node = self.types.get(qname);
        // As hickory: ANY is answered with one type the name has, else A.
        let qtype = match (qtype, node) {
            (RecordType::ANY, Some(types)) if !types.is_empty() => return None,
            (RecordType::ANY, _) => RecordType::A,
            (t, _) => t,
        };
        let cut = |name: &[u8], types: &[RecordType]| {
            is_cut(types) && !(qtype == RecordType::DS && name == qname)
        };
        if self.delegated
            && chain
                .iter()
                .any(|n| self.types.get(*n).is_some_and(|t| cut(n, t)))
        {
            return None;
        }
        let answers = |types: &[RecordType]| {
            types.iter().any(|&t| {
                t == qtype
                    || t == RecordType::CNAME
                    || (t == RecordType::ANAME && matches!(qtype, RecordType::A | RecordType::AAAA))
            })
        };
        if node.is_some_and(|t| answers(t)) {
            return None;
        }
        // hickory tries `*.<parent>` for every ancestor, even when the
        // name exists.
        if self.wildcards && !is_wildcard(qname) {
            let mut key = Vec::with_capacity(qname.len() + 2);
            let mut at = parent(qname);
            while let Some(p) = at.filter(|p| p != &[0]) {
                key.clear();
                key.extend_from_slice(&[1, b'*']);
                key.extend_from_slice(p);
                if let Some(t) = self.types.get(key.as_slice())
                    && (answers(t) || cut(&key, t))
                {
                    return None;
                }
                at = parent(p);
            }
        }
        Some(match node {
            Some(_) => Miss::NoData,
            None => Miss::NxDomain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::{A, CNAME, NS, SOA};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn names(records: &[(&str, RData)]) -> Names {
        let mut n = Names::new(&name("z.test."));
        for (owner, data) in records {
            n.add(&Record::from_rdata(name(owner), 300, data.clone()));
        }
        n
    }

    fn a() -> RData {
        RData::A(A([192, 0, 2, 1].into()))
    }

    fn miss(n: &Names, q: &str, t: RecordType) -> Option<Miss> {
        n.miss(&wire(&name(q)), t)
    }

    #[test]
    fn wire_names_are_lowercase_and_parents_walk_up() {
        let w = wire(&name("Www.Z.test."));
        assert_eq!(w, b"\x03www\x01z\x04test\x00");
        assert_eq!(parent(&w), Some(&b"\x01z\x04test\x00"[..]));
        assert_eq!(parent(b"\x00"), None);
        assert_eq!(parent(b"\x05ab"), None, "cut short");
        assert_eq!(parent(b""), None);
    }

    #[test]
    fn names_exist_with_their_ancestors() {
        let soa = RData::SOA(SOA::new(
            name("ns.z.test."),
            name("h.z.test."),
            1,
            1,
            1,
            1,
            1,
        ));
        let n = names(&[
            ("z.test.", soa),
            ("z.test.", RData::NS(NS(name("ns.z.test.")))),
            ("x.y.deep.z.test.", a()),
            (
                "alias.z.test.",
                RData::CNAME(CNAME(name("x.y.deep.z.test."))),
            ),
            ("out.example.", a()),
        ]);
        use Miss::*;
        use RecordType as T;
        assert_eq!(miss(&n, "x.y.deep.z.test.", T::A), None);
        assert_eq!(miss(&n, "X.Y.deep.z.test.", T::A), None, "case");
        assert_eq!(miss(&n, "x.y.deep.z.test.", T::AAAA), Some(NoData));
        assert_eq!(
            miss(&n, "y.deep.z.test.", T::A),
            Some(NoData),
            "empty non-terminal"
        );
        assert_eq!(miss(&n, "deep.z.test.", T::TXT), Some(NoData));
        assert_eq!(miss(&n, "nx.z.test.", T::A), Some(NxDomain));
        assert_eq!(miss(&n, "a.x.y.deep.z.test.", T::A), Some(NxDomain));
        assert_eq!(miss(&n, "alias.z.test.", T::MX), None, "a CNAME answers");
        assert_eq!(miss(&n, "z.test.", T::MX), Some(NoData));
        assert_eq!(miss(&n, "z.test.", T::ANY), None);
        assert_eq!(miss(&n, "deep.z.test.", T::ANY), Some(NoData));
        assert_eq!(miss(&n, "nx.z.test.", T::ANY), Some(NxDomain));
        assert_eq!(miss(&n, "z.test.", T::AXFR), None);
        assert_eq!(miss(&n, "out.example.", T::AAAA), None, "not this zone");
        assert_eq!(miss(&n, "test.", T::A), None);
        let direct = |q: &str| n.direct(&wire(&name(q)));
        assert!(direct("x.y.deep.z.test.") && direct("z.test."));
        assert!(!direct("alias.z.test."), "the CNAME answers");
        assert!(!direct("out.example."), "not this zone");
    }

    #[test]
    fn delegations_and_wildcards_answer_below_them() {
        let n = names(&[
            ("sub.z.test.", RData::NS(NS(name("ns.other.")))),
            ("*.wild.z.test.", a()),
            ("host.wild.z.test.", RData::NS(NS(name("ns.other.")))),
        ]);
        use Miss::*;
        use RecordType as T;
        assert_eq!(miss(&n, "a.b.sub.z.test.", T::A), None, "referral");
        assert_eq!(miss(&n, "sub.z.test.", T::TXT), None, "referral");
        assert_eq!(miss(&n, "sub.z.test.", T::DS), Some(NoData));
        assert_eq!(miss(&n, "a.b.wild.z.test.", T::A), None, "wildcard");
        assert_eq!(miss(&n, "a.b.wild.z.test.", T::TXT), Some(NxDomain));
        assert_eq!(miss(&n, "*.wild.z.test.", T::TXT), Some(NoData));
        assert_eq!(miss(&n, "wild.z.test.", T::A), Some(NoData));
        let direct = |q: &str| n.direct(&wire(&name(q)));
        assert!(!direct("sub.z.test.") && !direct("a.b.sub.z.test."));
        assert!(!direct("host.wild.z.test."), "a delegation too");
        assert!(direct("*.wild.z.test."));
    }
}
