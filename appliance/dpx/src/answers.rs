//! Positive answers encoded once per zone generation: for each name and
//! type whose hickory answer is the plain record set (A, AAAA, TXT at a
//! name with no CNAME or ANAME, not at or below a delegation), the answer
//! section as hickory's encoder writes it. A query for one of them is
//! answered with a header, its own question and those bytes, without
//! hickory's parse, lookup and encode, and without the answer cache's
//! lock; on a large zone the cache cannot hold every name, so before this
//! each name's first question (and every one once it had fallen out) took
//! hickory's whole path.
//!
//! A question the zone has no records for (the zone's [`Names`] decide)
//! is answered NXDOMAIN or NODATA with the SOA, also encoded beforehand.
//!
//! Anything else (other types, wildcards, EDNS versions hickory refuses,
//! answers too large for the client's payload) is left to the cache and
//! hickory, which answer it as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hickory_proto::op::{Edns, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use crate::cache::Question;
use crate::names::{Miss, Names, wire};

/// The types answered here: hickory adds nothing to their answers
/// (no additional records, no authority section) and their data holds
/// no names.
const TYPES: [RecordType; 3] = [RecordType::A, RecordType::AAAA, RecordType::TXT];
/// Header bits of a response: QR and AA (byte 2).
const QR_AA: u8 = 0x84;
/// The bits hickory copies from the query: RD (byte 2) and CD (byte 3).
const RD: u8 = 0x01;
const CD: u8 = 0x10;
/// The smallest EDNS payload hickory answers with, and the limit without EDNS.
const MIN_PAYLOAD: u16 = 512;

/// One question's answer section.
#[derive(Debug)]
struct Answer {
    count: u16,
    records: Box<[u8]>,
}

/// The encoded answers of one zone generation: record sets keyed by the
/// question's lowercased wire name followed by its type (as in a cache
/// key), and the SOA that answers a miss.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    by_question: HashMap<Box<[u8]>, Answer>,
    /// The SOA record as hickory writes it in the authority section
    /// after a question ending at offset `SHORTEST_QUESTION_END + i`:
    /// its names compress against itself, so only its offset changes it.
    soa: Vec<Box<[u8]>>,
}

/// Where the shortest question (the root name) ends, and the longest.
const SHORTEST_QUESTION_END: usize = 12 + 1 + 4;
const LONGEST_QUESTION_END: usize = 12 + 255 + 4;

impl Answers {
    /// The answers of the record sets hickory's handler holds; `names`
    /// (built from the same records) tells which hickory answers alone.
    pub fn build(
        records: &BTreeMap<RrKey, Arc<RecordSet>>,
        names: &Names,
        soa: &Record,
    ) -> Answers {
        let mut by_question = HashMap::new();
        for (key, set) in records {
            if !TYPES.contains(&key.record_type) {
                continue;
            }
            let mut question = wire(&key.name.clone().into());
            if !names.direct(&question) {
                continue;
            }
            question.extend_from_slice(&u16::from(key.record_type).to_be_bytes());
            if let Some((count, records)) = encode(&question, set.records_without_rrsigs()) {
                by_question.insert(question.into(), Answer { count, records });
            }
        }
        // The question's bytes do not matter (see `encode`), only its length.
        let soa = (SHORTEST_QUESTION_END..=LONGEST_QUESTION_END)
            .map_while(|end| {
                let question = vec![0; end - 12 - 2];
                encode(&question, std::iter::once(soa)).map(|(_, bytes)| bytes)
            })
            .collect();
        Answers { by_question, soa }
    }

    /// Writes the answer to `packet` (a plain query, [`Question`] `q`,
    /// cache key `key`) into `out`; false when it is not one of these.
    pub fn answer(&self, packet: &[u8], q: Question, key: &[u8], out: &mut Vec<u8>) -> bool {
        let (Some(class), Some(qkey)) = (
            packet.get(q.name_end + 2..q.end()),
            key.get(12..q.name_end + 2),
        ) else {
            return false;
        };
        if class != u16::from(DNSClass::IN).to_be_bytes() {
            return false;
        }
        match self.by_question.get(qkey) {
            Some(a) => respond(
                packet,
                q,
                ResponseCode::NoError,
                [a.count, 0],
                &a.records,
                out,
            ),
            None => false,
        }
    }

    /// Writes the answer to a question the zone has no records for
    /// (`miss`, from the zone's names): NXDOMAIN or NODATA with the SOA in
    /// the authority section, as hickory's catalog answers it.
    pub fn negative(&self, packet: &[u8], q: Question, miss: Miss, out: &mut Vec<u8>) -> bool {
        let Some(soa) = q
            .end()
            .checked_sub(SHORTEST_QUESTION_END)
            .and_then(|i| self.soa.get(i))
        else {
            return false;
        };
        let rcode = match miss {
            Miss::NoData => ResponseCode::NoError,
            Miss::NxDomain => ResponseCode::NXDomain,
        };
        respond(packet, q, rcode, [0, 1], soa, out)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_question.len()
    }
}

/// Writes a response to the plain query `packet` into `out`: the header
/// as hickory's catalog sets it, the query's own question, `section`
/// (`counts` records in the answer and authority sections) and the OPT
/// record when the query had one. False, leaving the query to hickory,
/// when the OPT is one hickory would not answer as version 0 or the
/// response would not fit the client's payload (hickory truncates).
fn respond(
    packet: &[u8],
    q: Question,
    rcode: ResponseCode,
    counts: [u16; 2],
    section: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let opt = &packet[q.end()..];
    let edns = match opt.len() {
        0 => None,
        _ => match request_edns(opt) {
            Some(e) => Some(e),
            None => return false,
        },
    };
    let max = edns.map_or(MIN_PAYLOAD, |(payload, _)| payload);
    let opt_len = if edns.is_some() { 11 } else { 0 };
    if q.end() + section.len() + opt_len > usize::from(max) {
        return false;
    }
    out.clear();
    out.extend_from_slice(&packet[..2]);
    out.push(QR_AA | (packet[2] & RD));
    out.push((packet[3] & CD) | rcode.low());
    out.extend_from_slice(&[0, 1]);
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
    out.extend_from_slice(&[0, u8::from(edns.is_some())]);
    out.extend_from_slice(&packet[12..q.end()]);
    out.extend_from_slice(section);
    if let Some((payload, dnssec_ok)) = edns {
        // OPT: root, type 41, payload, extended rcode 0, version 0, DO, no options.
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&payload.to_be_bytes());
        out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    }
    true
}

/// The payload size of the answer (the query's, at least 512) and the DO
/// bit of a query's OPT record (`opt`, the rest of a plain query), or `None` when hickory would not answer it as a
/// version 0 query: a higher version (BADVERS) or options it cannot read.
fn request_edns(opt: &[u8]) -> Option<(u16, bool)> {
    let record = Record::read(&mut BinDecoder::new(opt)).ok()?;
    let edns = Edns::from(&record);
    (edns.version() == 0).then(|| (edns.max_payload().max(MIN_PAYLOAD), edns.flags().dnssec_ok))
}

/// `records` as hickory writes them after the question `name_type`
/// (a wire name and type; class IN): the same encoder, with the same
/// offsets and compression candidates, so the bytes fit any query for the
/// name. hickory offers the question (with its type and class) as one
/// candidate, which no name matches, so names compress only against the
/// records. Their count and bytes.
fn encode<'a>(
    name_type: &[u8],
    records: impl Iterator<Item = &'a Record>,
) -> Option<(u16, Box<[u8]>)> {
    let mut question = name_type.to_vec();
    question.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
    let mut bytes = Vec::with_capacity(64);
    let mut encoder = BinEncoder::new(&mut bytes);
    // The header's place; its bytes are the query's.
    encoder.emit_vec(&[0; 12]).ok()?;
    let start = encoder.offset();
    encoder.emit_vec(&question).ok()?;
    encoder.store_label_pointer(start, encoder.offset());
    let mut count = 0u16;
    for record in records {
        record.emit(&mut encoder).ok()?;
        count = count.checked_add(1)?;
    }
    let records = bytes.get(start + question.len()..)?.into();
    Some((count, records))
}
