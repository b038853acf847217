//! The UDP listener: one thread with a blocking socket and an answer cache
//! in front of hickory. hickory's per-query path (a task, a decode, a
//! catalog walk, an encode) costs tens of microseconds; an authoritative
//! server is asked the same questions over and over, so the encoded
//! answer of a question seen before is copied back with only the ID and
//! the question's letter case (0x20-randomising resolvers check it)
//! patched in. A first question, and anything that is not a plain
//! one-question query (UPDATE, TSIG, other opcodes, malformed bytes),
//! goes to hickory's catalog as hickory's own UDP listener hands it over.
//!
//! The cache belongs to the zone generation ([`Current`]): a change to the
//! zone serves from a new, empty one, so no answer outlives its zone.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{Catalog, MessageResponse, MessageResponseBuilder, Queries};
use nix::errno::Errno;
use nix::sys::socket::{
    MsgFlags, MultiHeaders, Shutdown, SockaddrStorage, recvmmsg, sendmmsg, shutdown,
};

use crate::server::{Core, Current};
use crate::{Error, io_err};

/// Largest request read, as hickory's UDP stream.
const MAX_REQUEST: usize = 4096;
/// Memory for cached answers (keys, answers and a per-entry allowance),
/// so random names cannot grow the process without limit.
pub(crate) const CACHE_BYTES: usize = 8 << 20;
/// Hash map and allocation overhead counted for each entry.
const ENTRY_OVERHEAD: usize = 64;
/// Datagrams taken from the socket per system call.
const BATCH: usize = 32;
/// How often the blocked receive looks at the stop flag, should the
/// wake-up in [`Worker::stop`] not arrive.
const STOP_POLL: Duration = Duration::from_secs(1);

/// Where the question of a cacheable query ends: the name is
/// `packet[12..name_end]`, type and class the next four bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Question {
    name_end: usize,
}

impl Question {
    fn end(self) -> usize {
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
fn reusable(answer: &[u8], query: &[u8], q: Question) -> bool {
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
    fn len(&self) -> usize {
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

/// The key and question of the packet in hand, kept from the lookup for
/// the insert after a miss.
#[derive(Default)]
pub(crate) struct Scratch {
    key: Vec<u8>,
    question: Option<Question>,
}

/// The cached answer to `packet` into `out`; false on a miss.
pub(crate) fn hit(cur: &Current, packet: &[u8], s: &mut Scratch, out: &mut Vec<u8>) -> bool {
    s.question = question(packet);
    let Some(q) = s.question else {
        return false;
    };
    key(packet, q, &mut s.key);
    cur.cache().answer(&s.key, packet, q, out)
}

/// After a miss: hickory's answer, kept for the next time when it may be.
pub(crate) async fn miss(
    cur: &Current,
    packet: &[u8],
    src: SocketAddr,
    s: &Scratch,
) -> Option<Vec<u8>> {
    let answer = resolve(cur.catalog(), packet, src).await?;
    if let Some(q) = s.question
        && reusable(&answer, packet, q)
    {
        cur.cache().insert(&s.key, &answer);
    }
    Some(answer)
}

/// What hickory's UDP listener does with a datagram: nothing for one
/// shorter than a header or a response, FORMERR when it does not parse,
/// else the catalog's answer.
pub(crate) async fn resolve(catalog: &Catalog, packet: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    let capture = Capture::default();
    match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
        Ok(request) => {
            if request.metadata.message_type == MessageType::Response {
                return None;
            }
            catalog
                .handle_request::<_, TokioTime>(&request, capture.clone())
                .await;
        }
        Err(_) => {
            let none = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
            let response = MessageResponseBuilder::new(&none, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            capture.clone().send_response(response).await.ok()?;
        }
    }
    capture.take()
}

/// Keeps the encoded response instead of sending it, sized for UDP as
/// hickory's own response handle does (the client's EDNS payload size,
/// else 512 bytes; truncated beyond).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

impl Capture {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let id = response.metadata().id;
        let max = response.edns().map_or(512, |e| e.max_payload().max(512));
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                // As hickory: a bare SERVFAIL when the answer cannot be encoded.
                tracing::error!(%error, "cannot encode a DNS response");
                bytes.clear();
                let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                header.emit(&mut BinEncoder::new(&mut bytes))?;
                ResponseInfo::from(header)
            }
        };
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(info)
    }
}

/// The UDP listener thread; [`Worker::stop`] ends it and frees the port.
pub(crate) struct Worker {
    socket: Arc<UdpSocket>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Serves `socket` on a new thread; must be called inside the tokio
    /// runtime, which drives the misses.
    pub fn start(socket: UdpSocket, core: Arc<Core>) -> Result<Worker, Error> {
        socket
            .set_read_timeout(Some(STOP_POLL))
            .map_err(io_err("udp socket timeout"))?;
        let socket = Arc::new(socket);
        let rt = tokio::runtime::Handle::current();
        let stop = Arc::new(AtomicBool::new(false));
        let (sock, flag) = (socket.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("dpx-udp".into())
            .spawn(move || serve(&sock, &core, &rt, &flag))
            .map_err(io_err("udp thread"))?;
        Ok(Worker {
            socket,
            stop,
            thread: Some(thread),
        })
    }

    /// Ends the thread at once: shutting the socket's read side wakes
    /// the blocked receive (Linux does so even for unconnected UDP,
    /// while reporting ENOTCONN), so the old port stops answering
    /// before a port change is reported done.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = shutdown(self.socket.as_raw_fd(), Shutdown::Read);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Receives and sends up to [`BATCH`] datagrams per system call
/// (recvmmsg/sendmmsg): under load the syscalls, not the lookups, are
/// what a cached answer costs.
fn serve(socket: &UdpSocket, core: &Core, rt: &tokio::runtime::Handle, stop: &AtomicBool) {
    let fd = socket.as_raw_fd();
    let mut bufs = vec![[0u8; MAX_REQUEST]; BATCH];
    let mut outs: Vec<Vec<u8>> = vec![Vec::new(); BATCH];
    let mut received: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
    let mut replies: Vec<(usize, SockaddrStorage)> = Vec::with_capacity(BATCH);
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut s = Scratch::default();
    while !stop.load(Ordering::Relaxed) {
        received.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> =
                bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            match recvmmsg(
                fd,
                &mut recv_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(msgs) => received.extend(msgs.map(|m| (m.bytes, m.address))),
                // The stop poll's timeout, or a signal.
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "udp receive");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let cur = core.current();
        replies.clear();
        for (i, (len, addr)) in received.iter().enumerate() {
            let Some((addr, src)) = addr.and_then(|a| Some((a, socket_addr(&a)?))) else {
                continue;
            };
            // As hickory: no answer to port 0.
            if src.port() == 0 {
                continue;
            }
            let packet = &bufs[i][..*len];
            if hit(&cur, packet, &mut s, &mut outs[i]) {
                replies.push((i, addr));
            } else if let Some(answer) = rt.block_on(miss(&cur, packet, src, &s)) {
                outs[i] = answer;
                replies.push((i, addr));
            }
        }
        send(fd, &mut send_headers, &outs, &replies);
    }
}

/// Sends every reply, skipping one the kernel refuses (an unreachable
/// source) rather than the rest of the batch.
fn send(
    fd: RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    outs: &[Vec<u8>],
    replies: &[(usize, SockaddrStorage)],
) {
    let mut from = 0;
    while from < replies.len() {
        let rest = &replies[from..];
        let iovs: Vec<[IoSlice<'_>; 1]> = rest
            .iter()
            .map(|(i, _)| [IoSlice::new(&outs[*i])])
            .collect();
        let addrs: Vec<Option<SockaddrStorage>> = rest.iter().map(|(_, a)| Some(*a)).collect();
        match sendmmsg(fd, headers, &iovs, &addrs, [], MsgFlags::empty()) {
            // The count stops at the first message the kernel refused.
            Ok(sent) => from += sent.count().max(1),
            Err(e) => {
                tracing::debug!(error = %e, "udp send");
                from += 1;
            }
        }
    }
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
        (Some(v4), _) => Some(SocketAddr::V4((*v4).into())),
        (_, Some(v6)) => Some(SocketAddr::V6((*v6).into())),
        _ => None,
    }
}

/// Handles one datagram like the listener, for the harness.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) async fn handle(core: &Core, packet: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
    let cur = core.current();
    let mut s = Scratch::default();
    let mut out = Vec::new();
    if hit(&cur, packet, &mut s, &mut out) {
        return Some(out);
    }
    miss(&cur, packet, src, &s).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::{Harness, KEY_NAME, KEY_SECRET, ZONE};
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
    use hickory_proto::rr::{Name, RData, RecordType, TSigner};

    fn query(id: u16, name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
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

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A signed update setting `b.dyn` to 192.0.2.`last`.
    fn set_b(last: u8) -> Vec<u8> {
        let mut m = Message::new(3, MessageType::Query, OpCode::Update);
        m.add_query(Query::query(
            Name::from_ascii(ZONE).unwrap(),
            RecordType::SOA,
        ));
        let name = Name::from_ascii(format!("b.dyn.{ZONE}")).unwrap();
        let mut delete = Record::update0(name.clone(), 0, RecordType::A);
        delete.dns_class = hickory_proto::rr::DNSClass::ANY;
        m.add_authority(delete);
        m.add_authority(Record::from_rdata(
            name,
            60,
            RData::A(A([192, 0, 2, last].into())),
        ));
        let key = Name::from_ascii(format!("{KEY_NAME}.")).unwrap();
        let signer =
            TSigner::new(KEY_SECRET.to_vec(), TsigAlgorithm::HmacSha256, key, 300).unwrap();
        m.finalize(&signer, alpharen_store::now_unix() as u64)
            .unwrap();
        m.to_vec().unwrap()
    }

    #[test]
    fn a_zone_change_starts_from_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        rt().block_on(async {
            let h = Harness::new(dir.path()).unwrap();
            let ask = |id| query(id, &format!("B.dyn.{ZONE}"), RecordType::A, true);
            let rcode = |a: &[u8]| Message::from_vec(a).unwrap().metadata.response_code;
            let addr = |a: &[u8]| {
                Message::from_vec(a)
                    .unwrap()
                    .answers
                    .iter()
                    .map(|r| r.data.to_string())
                    .collect::<Vec<_>>()
            };
            for id in 1..3 {
                assert_eq!(
                    rcode(&h.handle(&ask(id)).await.unwrap()),
                    ResponseCode::NXDomain
                );
            }
            assert_eq!(h.core.current().cache().len(), 1, "the NXDOMAIN is cached");
            for last in [7, 8] {
                let r = h.handle(&set_b(last)).await.unwrap();
                assert_eq!(rcode(&r), ResponseCode::NoError);
                for id in 10..12 {
                    let a = h.handle(&ask(id)).await.unwrap();
                    assert_eq!(addr(&a), [format!("192.0.2.{last}")]);
                    assert_eq!(Message::from_vec(&a).unwrap().metadata.id, id);
                }
            }
        });
    }

    #[test]
    fn cached_answers_are_hickorys_answers() {
        let dir = tempfile::tempdir().unwrap();
        rt().block_on(async {
            let h = Harness::new(dir.path()).unwrap();
            let names = ["www", "WWW", "nx", "Nx", "ns1", "_arsrv._tcp", "@"];
            let types = [
                RecordType::A,
                RecordType::AAAA,
                RecordType::SOA,
                RecordType::SRV,
                RecordType::NS,
                RecordType::ANY,
            ];
            let mut id = 0;
            for round in 0..2 {
                for n in names {
                    let name = if n == "@" {
                        ZONE.to_string()
                    } else {
                        format!("{n}.{ZONE}")
                    };
                    for t in types {
                        for edns in [false, true] {
                            id += 1;
                            let q = query(id, &name, t, edns);
                            let got = h.handle(&q).await;
                            assert_eq!(
                                got,
                                h.uncached(&q).await,
                                "{name} {t} edns={edns} round {round}"
                            );
                            let got = got.unwrap();
                            assert_eq!(got[..2], q[..2]);
                            assert_eq!(got[12..12 + name.len() + 1], q[12..12 + name.len() + 1]);
                        }
                    }
                }
            }
            assert!(h.core.current().cache().len() > 40);
        });
    }
}
