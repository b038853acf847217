//! DNS-01 through an external DNS server (`[acme.rfc2136]`): the
//! `_acme-challenge` TXT value is added and deleted by an RFC 2136 UPDATE
//! signed with a TSIG key (RFC 8945) from the secret store, and the answer
//! is checked to be served before the CA is told to look. The messages,
//! the signature and the judgement of the answer are plain functions;
//! only [`Updater::change`] and [`Updater::visible`] touch the network.

use std::net::SocketAddr;
use std::time::Duration;

use alpharen_store::config::{ACME_TSIG_SECRET, AcmeRfc2136, TsigAlgorithm};
use base64::Engine;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm as Alg;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};

/// Seconds the server's clock may differ from ours (RFC 8945 suggests 300).
const FUDGE: u16 = 300;
/// TTL of the published value: short, it is gone after the order.
const TTL: u32 = 10;
/// How long one answer may take, and how many times a request is sent.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
const TRIES: u32 = 3;
/// How often, and how far apart, the server is asked for the new value.
const VISIBLE_TRIES: u32 = 20;
const VISIBLE_PAUSE: Duration = Duration::from_millis(250);

/// The server, zone and key of `[acme.rfc2136]` with the key's secret.
pub struct Updater {
    server: SocketAddr,
    zone: Name,
    signer: TSigner,
    key_name: String,
}

impl Updater {
    /// From the configuration and the base64 secret `web.acme.tsig`; the
    /// error says which is missing or wrong.
    pub fn new(cfg: &AcmeRfc2136, secret: Option<&str>) -> Result<Updater, String> {
        let server = cfg
            .server_addr()
            .ok_or_else(|| format!("acme.rfc2136.server {:?} is not IP:PORT", cfg.server))?;
        let zone = absolute(&cfg.zone).map_err(|e| format!("acme.rfc2136.zone: {e}"))?;
        let secret = secret.ok_or_else(|| {
            format!("the TSIG key's secret {ACME_TSIG_SECRET} is not set (config apply with [secrets] \"{ACME_TSIG_SECRET}\" = \"BASE64\")")
        })?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|_| format!("the secret {ACME_TSIG_SECRET} is not base64"))?;
        if key.is_empty() {
            return Err(format!("the secret {ACME_TSIG_SECRET} is empty"));
        }
        let alg = match cfg.algorithm {
            TsigAlgorithm::HmacSha256 => Alg::HmacSha256,
            TsigAlgorithm::HmacSha512 => Alg::HmacSha512,
        };
        let name = absolute(&cfg.key_name).map_err(|e| format!("acme.rfc2136.key_name: {e}"))?;
        let signer = TSigner::new(key, alg, name, FUDGE).map_err(|e| e.to_string())?;
        Ok(Updater {
            server,
            zone,
            signer,
            key_name: cfg.key_name.clone(),
        })
    }

    /// Adds (`present`) or deletes the TXT value `value` at `name`.
    pub async fn change(&self, name: &str, value: &str, present: bool) -> Result<(), String> {
        let what = if present { "adding" } else { "deleting" };
        let fail = |e: String| format!("RFC 2136 update at {} {what} {name} TXT: {e}", self.server);
        let owner = absolute(name).map_err(&fail)?;
        let id = rand::random::<u16>();
        let msg = update(&self.zone, &owner, value, present, id).map_err(&fail)?;
        let (bytes, mut verifier) =
            sign(msg, &self.signer, alpharen_store::now_unix() as u64).map_err(&fail)?;
        let answer = exchange(self.server, &bytes, id).await.map_err(&fail)?;
        judge(&answer, &mut verifier, &self.key_name).map_err(fail)
    }

    /// Whether the server answers `value` among `name`'s TXT records, asked
    /// until it does (a bounded number of times).
    pub async fn visible(&self, name: &str, value: &str) -> Result<(), String> {
        let owner = absolute(name)?;
        for _ in 0..VISIBLE_TRIES {
            let id = rand::random::<u16>();
            let mut q = Message::new(id, MessageType::Query, OpCode::Query);
            q.add_query(Query::query(owner.clone(), RecordType::TXT));
            let bytes = q.to_vec().map_err(|e| e.to_string())?;
            if let Ok(answer) = exchange(self.server, &bytes, id).await
                && has_txt(&answer, value)
            {
                return Ok(());
            }
            tokio::time::sleep(VISIBLE_PAUSE).await;
        }
        Err(format!(
            "{} accepted the update but does not answer the new {name} TXT value",
            self.server
        ))
    }
}

/// `name` as an absolute DNS name.
fn absolute(name: &str) -> Result<Name, String> {
    Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| format!("{name:?} is not a DNS name: {e}"))
}

/// The UPDATE for `zone` adding (class IN, TTL 10) or deleting (class
/// NONE, TTL 0: RFC 2136 §2.5.4, only this value) one TXT value.
fn update(
    zone: &Name,
    owner: &Name,
    value: &str,
    present: bool,
    id: u16,
) -> Result<Message, String> {
    if !zone.zone_of(owner) {
        return Err(format!("{owner} is not inside the zone {zone}"));
    }
    let mut m = Message::new(id, MessageType::Query, OpCode::Update);
    let mut zq = Query::query(zone.clone(), RecordType::SOA);
    zq.set_query_class(DNSClass::IN);
    m.add_query(zq);
    let txt = RData::TXT(TXT::new(vec![value.to_string()]));
    let mut rec = Record::from_rdata(owner.clone(), if present { TTL } else { 0 }, txt);
    if !present {
        rec.dns_class = DNSClass::NONE;
    }
    m.add_authority(rec);
    Ok(m)
}

/// The message signed at `now`, and what checks the answer's signature.
fn sign(
    mut msg: Message,
    signer: &TSigner,
    now: u64,
) -> Result<(Vec<u8>, Option<hickory_proto::rr::TSigVerifier>), String> {
    let verifier = msg
        .finalize(signer, now)
        .map_err(|e| format!("cannot sign: {e}"))?;
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    Ok((bytes, verifier))
}

/// The server's answer to an UPDATE: NOERROR signed with our key, or an
/// error naming the RCODE and (for a refused key) the TSIG error.
fn judge(
    answer: &[u8],
    verifier: &mut Option<hickory_proto::rr::TSigVerifier>,
    key_name: &str,
) -> Result<(), String> {
    let m = Message::from_vec(answer).map_err(|e| format!("the answer does not parse: {e}"))?;
    let rcode = m.metadata.response_code;
    if rcode != ResponseCode::NoError {
        let tsig = m.signature().and_then(|s| s.data.error);
        return Err(match tsig {
            Some(e) => format!(
                "the server refused it: {rcode}, TSIG error {e:?} (the server does not accept key {key_name:?} with the secret {ACME_TSIG_SECRET})"
            ),
            None if rcode == ResponseCode::NotAuth || rcode == ResponseCode::Refused => format!(
                "the server refused it: {rcode} (key {key_name:?} may not change this name, or the server is not the zone's primary)"
            ),
            None => format!("the server refused it: {rcode}"),
        });
    }
    let v = verifier
        .as_mut()
        .ok_or("no TSIG verifier for the request")?;
    v.verify(answer).map(|_| ()).map_err(|e| {
        format!("the answer's TSIG signature does not verify with key {key_name:?}: {e}")
    })
}

/// Whether an answer holds `value` as a TXT record.
fn has_txt(answer: &[u8], value: &str) -> bool {
    let Ok(m) = Message::from_vec(answer) else {
        return false;
    };
    m.answers.iter().any(|r| match &r.data {
        RData::TXT(t) => t.txt_data.iter().any(|d| d.as_ref() == value.as_bytes()),
        _ => false,
    })
}

/// One request over UDP, sent up to three times; the answer with our id.
async fn exchange(server: SocketAddr, request: &[u8], id: u16) -> Result<Vec<u8>, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    for _ in 0..TRIES {
        sock.send(request).await.map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        // Bounded by the deadline: stray datagrams with another id are skipped.
        while let Ok(got) = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            let n = got.map_err(|e| format!("no answer: {e}"))?;
            if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return Ok(buf[..n].to_vec());
            }
        }
    }
    Err(format!(
        "no answer in {TRIES} tries of {} s",
        ANSWER_TIMEOUT.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::tsig::{TSIG, TsigError, make_tsig_record};

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signer() -> TSigner {
        TSigner::new(
            KEY.to_vec(),
            Alg::HmacSha256,
            absolute("acme-key").unwrap(),
            FUDGE,
        )
        .unwrap()
    }

    fn cfg(secret: &str) -> Result<Updater, String> {
        let c = AcmeRfc2136 {
            server: "127.0.0.1:5353".into(),
            zone: "ext.example".into(),
            key_name: "acme-key".into(),
            algorithm: TsigAlgorithm::HmacSha256,
        };
        Updater::new(&c, Some(secret))
    }

    #[test]
    fn the_secret_must_be_set_and_base64() {
        assert!(cfg("c2VjcmV0").is_ok());
        assert!(cfg("not base64!").err().unwrap().contains(ACME_TSIG_SECRET));
        assert!(cfg("").err().unwrap().contains("empty"));
        let c = AcmeRfc2136 {
            server: "127.0.0.1".into(),
            zone: "ext.example".into(),
            key_name: "k".into(),
            algorithm: TsigAlgorithm::HmacSha512,
        };
        let e = Updater::new(&c, None).err().unwrap();
        assert!(e.contains("web.acme.tsig") && e.contains("not set"), "{e}");
    }

    #[test]
    fn an_add_and_a_delete_are_signed_updates_of_one_value() {
        let zone = absolute("ext.example").unwrap();
        let owner = absolute("_acme-challenge.ext.example").unwrap();
        for present in [true, false] {
            let m = update(&zone, &owner, "tok-value", present, 7).unwrap();
            let (bytes, verifier) = sign(m, &signer(), 1_700_000_000).unwrap();
            assert!(verifier.is_some());
            let back = Message::from_vec(&bytes).unwrap();
            assert_eq!(back.metadata.op_code, OpCode::Update);
            assert_eq!(back.queries[0].name(), &zone);
            assert_eq!(back.queries[0].query_type(), RecordType::SOA);
            assert_eq!(back.authorities.len(), 1);
            let rec = &back.authorities[0];
            assert_eq!(rec.name, owner);
            assert_eq!(rec.data.to_string(), "tok-value");
            let (class, ttl) = if present {
                (DNSClass::IN, TTL)
            } else {
                (DNSClass::NONE, 0)
            };
            assert_eq!((rec.dns_class, rec.ttl), (class, ttl));
            // The server's check: the MAC verifies with the key, and not
            // with another.
            let sig = back.signature().unwrap();
            assert_eq!(sig.name, absolute("acme-key").unwrap());
            signer().verify_message_byte(&bytes, None, true).unwrap();
            let other = TSigner::new(
                b"another key".to_vec(),
                Alg::HmacSha256,
                absolute("acme-key").unwrap(),
                FUDGE,
            )
            .unwrap();
            assert!(other.verify_message_byte(&bytes, None, true).is_err());
        }
        let outside = absolute("_acme-challenge.other.example").unwrap();
        assert!(update(&zone, &outside, "v", true, 1).is_err());
    }

    /// A response to `id` with `rcode`, signed by `signer` against the
    /// request's MAC, or carrying only a TSIG error.
    fn response(id: u16, rcode: ResponseCode, tsig_error: Option<TsigError>) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Response, OpCode::Update);
        m.metadata.response_code = rcode;
        if let Some(e) = tsig_error {
            let t = TSIG::new(
                Alg::HmacSha256,
                1_700_000_000,
                FUDGE,
                Vec::new(),
                id,
                Some(e),
                Vec::new(),
            );
            m.set_signature(Box::new(make_tsig_record(absolute("acme-key").unwrap(), t)));
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn a_refused_key_is_named_in_the_error() {
        let mut v = None;
        let e = judge(
            &response(1, ResponseCode::NotAuth, Some(TsigError::BadSig)),
            &mut v,
            "acme-key",
        )
        .unwrap_err();
        assert!(
            e.contains("BadSig") && e.contains("acme-key") && e.contains(ACME_TSIG_SECRET),
            "{e}"
        );
        let e = judge(
            &response(1, ResponseCode::Refused, None),
            &mut v,
            "acme-key",
        )
        .unwrap_err();
        assert!(e.contains("may not change"), "{e}");
        // A NOERROR that is not signed with our key is not believed.
        let zone = absolute("ext.example").unwrap();
        let owner = absolute("_acme-challenge.ext.example").unwrap();
        let m = update(&zone, &owner, "v", true, 9).unwrap();
        let (_, mut verifier) = sign(m, &signer(), alpharen_store::now_unix() as u64).unwrap();
        let e = judge(
            &response(9, ResponseCode::NoError, None),
            &mut verifier,
            "acme-key",
        )
        .unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
    }

    #[test]
    fn a_txt_answer_is_found_by_its_value() {
        let mut m = Message::new(3, MessageType::Response, OpCode::Query);
        m.answers.push(Record::from_rdata(
            absolute("_acme-challenge.ext.example").unwrap(),
            10,
            RData::TXT(TXT::new(vec!["abc".into()])),
        ));
        let bytes = m.to_vec().unwrap();
        assert!(has_txt(&bytes, "abc"));
        assert!(!has_txt(&bytes, "abd"));
        assert!(!has_txt(b"junk", "abc"));
    }
}
