//! RFC 2136 UPDATE, as pure functions over record lists: the per-key
//! policy, the prerequisite checks (§3.2) and the update section (§3.4).
//! Only dynamic records change; configured records and the apex SOA/NS
//! belong to the configuration and are never touched by an update.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::zone::{ZoneError, absolute};

/// What one TSIG key may change.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Exact names, or for `*.x` every name strictly below `x`.
    names: Vec<(bool, Name)>,
    types: Vec<RecordType>,
}

/// Types an update may add or remove when the key's list is empty.
const DEFAULT_TYPES: [RecordType; 6] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::TXT,
    RecordType::MX,
    RecordType::SRV,
];

impl Policy {
    pub fn new(names: &[String], types: &[String], origin: &Name) -> Result<Policy, ZoneError> {
        let names = names
            .iter()
            .map(|n| match n.strip_prefix("*.") {
                Some(base) => Ok((true, absolute(base, origin)?)),
                None => Ok((false, absolute(n, origin)?)),
            })
            .collect::<Result<_, ZoneError>>()?;
        let types = if types.is_empty() {
            DEFAULT_TYPES.to_vec()
        } else {
            types
                .iter()
                .filter_map(|t| t.parse::<RecordType>().ok())
                .filter(|t| DEFAULT_TYPES.contains(t))
                .collect()
        };
        Ok(Policy { names, types })
    }

    fn allows_name(&self, name: &Name) -> bool {
        self.names.iter().any(|(below, n)| {
            if *below {
                n.zone_of(name) && n.num_labels() < name.num_labels()
            } else {
                n == name
            }
        })
    }

    /// An `ANY` type (delete everything at a name) needs every type.
    fn allows_type(&self, t: RecordType) -> bool {
        if t == RecordType::ANY {
            DEFAULT_TYPES.iter().all(|d| self.types.contains(d))
        } else {
            self.types.contains(&t)
        }
    }
}

/// §3.4.1 prescan plus the key's policy: every update record must be in
/// the zone (NOTZONE), well formed (FORMERR) and allowed (REFUSED).
pub fn check(policy: &Policy, origin: &Name, updates: &[Record]) -> Result<(), ResponseCode> {
    for rr in updates {
        if !origin.zone_of(&rr.name) {
            return Err(ResponseCode::NotZone);
        }
        let t = rr.record_type();
        let empty = matches!(rr.data, RData::Update0(_) | RData::NULL(_));
        let well_formed = match rr.dns_class {
            DNSClass::IN => !matches!(t, RecordType::ANY | RecordType::AXFR | RecordType::IXFR),
            DNSClass::ANY => {
                rr.ttl == 0 && empty && !matches!(t, RecordType::AXFR | RecordType::IXFR)
            }
            DNSClass::NONE => {
                rr.ttl == 0 && !matches!(t, RecordType::ANY | RecordType::AXFR | RecordType::IXFR)
            }
            _ => false,
        };
        if !well_formed {
            return Err(ResponseCode::FormErr);
        }
        if !policy.allows_name(&rr.name) || !policy.allows_type(t) {
            return Err(ResponseCode::Refused);
        }
    }
    Ok(())
}

fn same_rr(a: &Record, b: &Record) -> bool {
    a.name == b.name && a.record_type() == b.record_type() && a.data == b.data
}

/// §3.2.5: prerequisites against the whole zone as served now.
pub fn prerequisites(
    zone: &[Record],
    origin: &Name,
    prereqs: &[Record],
) -> Result<(), ResponseCode> {
    for rr in prereqs {
        let at = |name: &Name| zone.iter().filter(|r| r.name == *name).collect::<Vec<_>>();
        if rr.ttl != 0 {
            return Err(ResponseCode::FormErr);
        }
        if !origin.zone_of(&rr.name) {
            return Err(ResponseCode::NotZone);
        }
        let t = rr.record_type();
        match (rr.dns_class, t) {
            (DNSClass::ANY, RecordType::ANY) => {
                if at(&rr.name).is_empty() {
                    return Err(ResponseCode::NXDomain);
                }
            }
            (DNSClass::ANY, _) => {
                if !at(&rr.name).iter().any(|r| r.record_type() == t) {
                    return Err(ResponseCode::NXRRSet);
                }
            }
            (DNSClass::NONE, RecordType::ANY) => {
                if !at(&rr.name).is_empty() {
                    return Err(ResponseCode::YXDomain);
                }
            }
            (DNSClass::NONE, _) => {
                if at(&rr.name).iter().any(|r| r.record_type() == t) {
                    return Err(ResponseCode::YXRRSet);
                }
            }
            (DNSClass::IN, _) => {
                // Value-dependent: the zone's RRset must equal the one given.
                let want: Vec<&Record> = prereqs
                    .iter()
                    .filter(|p| {
                        p.dns_class == DNSClass::IN && p.name == rr.name && p.record_type() == t
                    })
                    .collect();
                let have: Vec<&Record> = at(&rr.name)
                    .into_iter()
                    .filter(|r| r.record_type() == t)
                    .collect();
                let equal = want.len() == have.len()
                    && want.iter().all(|w| have.iter().any(|h| h.data == w.data));
                if !equal {
                    return Err(ResponseCode::NXRRSet);
                }
            }
            _ => return Err(ResponseCode::FormErr),
        }
    }
    Ok(())
}

/// §3.4.2: applies the update section to the dynamic records; true when
/// anything changed.
pub fn apply(dynamic: &mut Vec<Record>, updates: &[Record]) -> bool {
    let before = dynamic.clone();
    for rr in updates {
        let t = rr.record_type();
        match rr.dns_class {
            DNSClass::ANY if t == RecordType::ANY => dynamic.retain(|r| r.name != rr.name),
            DNSClass::ANY => dynamic.retain(|r| !(r.name == rr.name && r.record_type() == t)),
            DNSClass::NONE => dynamic.retain(|r| !same_rr(r, rr)),
            _ => {
                let at_name = |r: &&Record| r.name == rr.name;
                let cname_here = dynamic
                    .iter()
                    .filter(at_name)
                    .any(|r| r.record_type() == RecordType::CNAME);
                let other_here = dynamic
                    .iter()
                    .filter(at_name)
                    .any(|r| r.record_type() != RecordType::CNAME);
                if (t == RecordType::CNAME && other_here) || (t != RecordType::CNAME && cname_here)
                {
                    continue;
                }
                if t == RecordType::CNAME {
                    dynamic.retain(|r| !(r.name == rr.name && r.record_type() == t));
                }
                let mut added = rr.clone();
                added.dns_class = DNSClass::IN;
                match dynamic.iter_mut().find(|r| same_rr(r, rr)) {
                    Some(existing) => existing.ttl = rr.ttl,
                    None => dynamic.push(added),
                }
            }
        }
    }
    *dynamic != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, TXT};

    fn origin() -> Name {
        Name::from_ascii("z.example.").unwrap()
    }

    fn name(s: &str) -> Name {
        absolute(s, &origin()).unwrap()
    }

    fn a(n: &str, ip: &str) -> Record {
        Record::from_rdata(name(n), 60, RData::A(A(ip.parse().unwrap())))
    }

    fn delete(n: &str, t: RecordType) -> Record {
        let mut r = Record::update0(name(n), 0, t);
        r.dns_class = DNSClass::ANY;
        r
    }

    fn policy(names: &[&str], types: &[&str]) -> Policy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Policy::new(&s(names), &s(types), &origin()).unwrap()
    }

    #[test]
    fn policy_limits_names_and_types() {
        let p = policy(&["host", "*.dyn"], &["A"]);
        assert_eq!(check(&p, &origin(), &[a("host", "192.0.2.1")]), Ok(()));
        assert_eq!(check(&p, &origin(), &[a("x.dyn", "192.0.2.1")]), Ok(()));
        assert_eq!(
            check(&p, &origin(), &[a("dyn", "192.0.2.1")]),
            Err(ResponseCode::Refused)
        );
        assert_eq!(
            check(&p, &origin(), &[a("other", "192.0.2.1")]),
            Err(ResponseCode::Refused)
        );
        let txt = Record::from_rdata(name("host"), 60, RData::TXT(TXT::new(vec!["x".into()])));
        assert_eq!(check(&p, &origin(), &[txt]), Err(ResponseCode::Refused));
        assert_eq!(
            check(&p, &origin(), &[delete("host", RecordType::ANY)]),
            Err(ResponseCode::Refused)
        );
        let outside = Record::from_rdata(
            Name::from_ascii("a.other.").unwrap(),
            60,
            RData::A(A([192, 0, 2, 1].into())),
        );
        assert_eq!(check(&p, &origin(), &[outside]), Err(ResponseCode::NotZone));
    }

    #[test]
    fn add_replace_and_delete() {
        let mut d = Vec::new();
        assert!(apply(&mut d, &[a("h", "192.0.2.1"), a("h", "192.0.2.2")]));
        assert_eq!(d.len(), 2);
        assert!(
            !apply(&mut d, &[a("h", "192.0.2.1")]),
            "same record twice is no change"
        );
        let mut gone = a("h", "192.0.2.1");
        gone.dns_class = DNSClass::NONE;
        gone.ttl = 0;
        assert!(apply(&mut d, &[gone]));
        assert_eq!(d, vec![a("h", "192.0.2.2")]);
        assert!(apply(
            &mut d,
            &[delete("h", RecordType::A), a("h", "192.0.2.9")]
        ));
        assert_eq!(d, vec![a("h", "192.0.2.9")]);
        assert!(apply(&mut d, &[delete("h", RecordType::ANY)]));
        assert!(d.is_empty());
    }

    #[test]
    fn cname_and_other_data_do_not_mix() {
        let mut d = vec![a("h", "192.0.2.1")];
        let cname = Record::from_rdata(name("h"), 60, RData::CNAME(CNAME(name("x"))));
        assert!(!apply(&mut d, &[cname]));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn prerequisites_follow_rfc_2136() {
        let zone = vec![a("h", "192.0.2.1")];
        let mut exists = Record::update0(name("h"), 0, RecordType::ANY);
        exists.dns_class = DNSClass::ANY;
        assert_eq!(prerequisites(&zone, &origin(), &[exists.clone()]), Ok(()));
        exists.name = name("nope");
        assert_eq!(
            prerequisites(&zone, &origin(), &[exists]),
            Err(ResponseCode::NXDomain)
        );
        let mut absent = Record::update0(name("h"), 0, RecordType::A);
        absent.dns_class = DNSClass::NONE;
        assert_eq!(
            prerequisites(&zone, &origin(), &[absent]),
            Err(ResponseCode::YXRRSet)
        );
        let mut value = a("h", "192.0.2.1");
        value.ttl = 0;
        assert_eq!(prerequisites(&zone, &origin(), &[value]), Ok(()));
        let mut other = a("h", "192.0.2.7");
        other.ttl = 0;
        assert_eq!(
            prerequisites(&zone, &origin(), &[other]),
            Err(ResponseCode::NXRRSet)
        );
    }
}
