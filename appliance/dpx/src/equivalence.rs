//! The misses dpx answers from the zone's names and the answers it
//! encodes with the zone are hickory's own answers, byte for byte: every
//! name of a zone with the cases hickory treats specially (CNAME, empty
//! non-terminals, a wildcard, a delegation, a record set too large for
//! 512 bytes), names below them, random names, with and without EDNS,
//! before and after updates.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};

use crate::harness::{Harness, KEY_NAME, KEY_SECRET};
use crate::udp;

const ZONE: &str = "eq.test.";
const CONFIG: &str = r#"
[node]
hostname = "ns1"
[dpx]
zone = "eq.test."
[[dpx.records]]
name = "www"
type = "A"
value = "192.0.2.1"
[[dpx.records]]
name = "www"
type = "AAAA"
value = "2001:db8::1"
[[dpx.records]]
name = "alias"
type = "CNAME"
value = "www"
[[dpx.records]]
name = "@"
type = "MX"
value = "10 www"
[[dpx.records]]
name = "@"
type = "TXT"
value = "v=spf1 -all"
[[dpx.records]]
name = "x.y.deep"
type = "A"
value = "192.0.2.2"
[[dpx.records]]
name = "*.wild"
type = "A"
value = "192.0.2.3"
[[dpx.records]]
name = "sub"
type = "NS"
value = "ns.other.example."
[[dpx.records]]
name = "_sip._tcp"
type = "SRV"
value = "0 5 5060 www"
[[dpx.records]]
name = "host.sub"
type = "A"
value = "192.0.2.4"
[[dpx.tsig_keys]]
name = "fuzz-key"
algorithm = "hmac-sha256"
names = ["*.dyn"]
types = ["A", "TXT"]
"#;

const TYPES: [RecordType; 14] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::MX,
    RecordType::TXT,
    RecordType::NS,
    RecordType::SOA,
    RecordType::CNAME,
    RecordType::SRV,
    RecordType::DS,
    RecordType::ANY,
    RecordType::PTR,
    RecordType::CAA,
    RecordType::OPT,
    RecordType::Unknown(65000),
];

/// xorshift64: deterministic, so a failure reproduces.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `name` with letters upper-cased at random, as 0x20 resolvers send.
fn mixed_case(name: &str, rng: &mut u64) -> String {
    name.chars()
        .map(|c| {
            if next(rng) & 1 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// The EDNS variants asked: none, plain, DNSSEC OK, a small payload with
/// an option (a cookie), and version 1 (hickory's BADVERS).
fn edns(variant: u8) -> Option<Edns> {
    let mut e = Edns::new();
    match variant {
        0 => return None,
        1 => {
            e.set_max_payload(1232);
        }
        2 => {
            e.set_max_payload(4096);
            e.set_dnssec_ok(true);
        }
        3 => {
            e.set_max_payload(100);
            e.options_mut()
                .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(
                    10,
                    vec![1, 2, 3, 4, 5, 6, 7, 8],
                ));
        }
        _ => {
            e.set_version(1);
        }
    }
    Some(e)
}

fn query(id: u16, name: &str, rtype: RecordType, class: DNSClass, variant: u8) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = !id.is_multiple_of(3);
    m.metadata.checking_disabled = id.is_multiple_of(5);
    let mut q = Query::query(Name::from_ascii(name).unwrap(), rtype);
    q.set_query_class(class);
    m.add_query(q);
    m.edns = edns(variant);
    m.to_vec().unwrap()
}

/// A miss as hickory answers it: NXDOMAIN, or NOERROR with no answer
/// and the SOA in authority (not a referral).
fn is_miss(answer: &[u8]) -> bool {
    let m = Message::from_vec(answer).unwrap();
    match m.metadata.response_code {
        ResponseCode::NXDomain => true,
        ResponseCode::NoError => {
            m.answers.is_empty()
                && m.authorities
                    .iter()
                    .any(|r| r.record_type() == RecordType::SOA)
        }
        _ => false,
    }
}

/// The names to ask: every owner, its ancestors, names below each, and
/// random ones.
fn names(h: &Harness, rng: &mut u64) -> Vec<String> {
    let zone = h.core.current().zone.clone().unwrap();
    let mut out = Vec::new();
    for r in zone.records().unwrap() {
        let mut n = r.name.clone();
        while n.num_labels() >= 2 {
            out.push(n.to_string());
            out.push(format!("nx.{n}"));
            out.push(format!("a.b.{n}"));
            n = n.base_name();
        }
    }
    for _ in 0..40 {
        out.push(format!("r{:x}.{ZONE}", next(rng)));
        out.push(format!("r{:x}.wild.{ZONE}", next(rng) % 1000));
        out.push(format!("r{:x}.deep.{ZONE}", next(rng) % 1000));
    }
    out.extend(["*.eq.test.", "*.deep.eq.test.", "other.example.", "test."].map(String::from));
    out.sort();
    out.dedup();
    out
}

/// 40 A records at `many.<zone>`: more than 512 bytes.
fn many() -> String {
    (1..=40)
        .map(|i| {
            format!("[[dpx.records]]\nname = \"many\"\ntype = \"A\"\nvalue = \"192.0.2.{i}\"\n")
        })
        .collect()
}

/// How the answers that equal hickory's were made.
#[derive(Debug, Default)]
struct Counts {
    /// Misses, from the zone's names.
    misses: usize,
    /// Record sets, encoded with the zone.
    encoded: usize,
}

/// Asks every name, type and EDNS variant of dpx and of plain hickory.
async fn compare(h: &Harness, rng: &mut u64, round: &str) -> Counts {
    let reference = h.hickory();
    let mut counts = Counts::default();
    let mut id = 0u16;
    for name in names(h, rng) {
        for t in TYPES {
            for variant in 0..5 {
                id = id.wrapping_add(1);
                let class = if id.is_multiple_of(7) {
                    DNSClass::CH
                } else {
                    DNSClass::IN
                };
                let q = query(id, &mixed_case(&name, rng), t, class, variant);
                let want = Harness::by_hickory(&reference, &q).await;
                let what = format!("{round}: {name} {t} {class} edns variant {variant}");
                assert_eq!(h.handle(&q).await, want, "{what}");
                assert_eq!(h.handle(&q).await, want, "{what}, asked again");
                let want = want.unwrap();
                let fast = udp::negative_only(&h.core, &q);
                if variant < 4 && is_miss(&want) {
                    assert_eq!(
                        fast.as_ref(),
                        Some(&want),
                        "{what}: not answered from the names"
                    );
                    counts.misses += 1;
                } else {
                    assert_eq!(fast, None, "{what}: answered from the names");
                }
                if let Some(encoded) = udp::encoded_only(&h.core, &q) {
                    assert_eq!(encoded, want, "{what}: encoded with the zone");
                    counts.encoded += 1;
                }
            }
        }
    }
    counts
}

/// A signed update: delete `name`'s `rtype` records, then add `add`.
fn update(name: &str, rtype: RecordType, add: Option<RData>) -> Vec<u8> {
    let mut m = Message::new(9, MessageType::Query, OpCode::Update);
    m.add_query(Query::query(
        Name::from_ascii(ZONE).unwrap(),
        RecordType::SOA,
    ));
    let owner = Name::from_ascii(format!("{name}.{ZONE}")).unwrap();
    let mut delete = Record::update0(owner.clone(), 0, rtype);
    delete.dns_class = DNSClass::ANY;
    m.add_authority(delete);
    if let Some(data) = add {
        m.add_authority(Record::from_rdata(owner, 60, data));
    }
    let key = Name::from_ascii(format!("{KEY_NAME}.")).unwrap();
    let signer = TSigner::new(KEY_SECRET.to_vec(), TsigAlgorithm::HmacSha256, key, 300).unwrap();
    m.finalize(&signer, alpharen_store::now_unix() as u64)
        .unwrap();
    m.to_vec().unwrap()
}

#[test]
fn misses_are_hickorys_answers_before_and_after_updates() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let h = Harness::with_config(dir.path(), &format!("{CONFIG}{}", many())).unwrap();
        let mut rng = 0x9E37_79B9_7F4A_7C15;
        let counts = compare(&h, &mut rng, "as configured").await;
        assert!(counts.misses > 1000 && counts.encoded > 20, "{counts:?}");
        // www A, AAAA; many A; the apex TXT; ns1, x.y.deep and the owner
        // `*.wild` A. Not host.sub (below a delegation), nor alias (CNAME).
        assert_eq!(h.core.current().answers().len(), 7);
        let changes = [
            update(
                "b.dyn",
                RecordType::A,
                Some(RData::A(A([192, 0, 2, 9].into()))),
            ),
            update(
                "t.x.dyn",
                RecordType::TXT,
                Some(RData::TXT(TXT::new(vec!["hello".into()]))),
            ),
            update("b.dyn", RecordType::A, None),
        ];
        for (i, change) in changes.iter().enumerate() {
            let answer = Message::from_vec(&h.handle(change).await.unwrap()).unwrap();
            assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
            let counts = compare(&h, &mut rng, &format!("after update {i}")).await;
            assert!(counts.misses > 1000 && counts.encoded > 20, "{counts:?}");
        }
    });
}
