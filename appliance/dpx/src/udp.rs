//! The UDP listener: threads with a blocking socket each. A query is
//! answered from the answers encoded with the zone ([`crate::answers`]:
//! A, AAAA, TXT), then from an answer cache ([`crate::cache`]), then, for
//! a name or type the zone lacks, NXDOMAIN or NODATA from the zone's
//! names; the rest goes to hickory. hickory's per-query path (a task, a
//! decode, a catalog walk, an encode) costs tens of microseconds; an
//! authoritative server is asked the same questions over and over, so the
//! cached answer of a question seen before is copied back with only the
//! ID and the question's letter case (0x20-randomising resolvers check
//! it) patched in. Any other first question, and anything that is not a
//! plain one-question query (UPDATE, TSIG, other opcodes, malformed
//! bytes), goes to hickory's catalog as hickory's own UDP listener hands
//! it over.
//!
//! The cache belongs to the zone generation ([`Current`]): a change to the
//! zone serves from a new, empty one, so no answer outlives its zone.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
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

use crate::cache::{Question, key, question, reusable};
use crate::server::{Core, Current};
use crate::stats::Tally;
use crate::{Error, io_err};

/// Largest request read, as hickory's UDP stream.
const MAX_REQUEST: usize = 4096;
/// Datagrams taken from the socket per system call.
const BATCH: usize = 32;
/// How often the blocked receive looks at the stop flag, should the
/// wake-up in [`Worker::stop`] not arrive.
const STOP_POLL: Duration = Duration::from_secs(1);

/// The key and question of the packet in hand, kept from the lookup for
/// the insert after a miss.
#[derive(Default)]
pub(crate) struct Scratch {
    key: Vec<u8>,
    question: Option<Question>,
}

/// The answer to `packet` encoded with the zone or cached into `out`;
/// false on a miss.
pub(crate) fn hit(cur: &Current, packet: &[u8], s: &mut Scratch, out: &mut Vec<u8>) -> bool {
    s.question = question(packet);
    let Some(q) = s.question else {
        return false;
    };
    key(packet, q, &mut s.key);
    cur.answers().answer(packet, q, &s.key, out) || cur.cache().answer(&s.key, packet, q, out)
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

/// A question the zone has no records for, answered into `out`
/// NXDOMAIN or NODATA with the SOA as hickory's catalog answers it, but
/// from the zone's [`Names`](crate::names::Names) and the encoded SOA
/// instead of its lookups; false when it is not one. Not cached: names
/// that never repeat would only push the used answers out.
pub(crate) fn negative(cur: &Current, packet: &[u8], s: &Scratch, out: &mut Vec<u8>) -> bool {
    let (Some(q), Some(names)) = (s.question, cur.names()) else {
        return false;
    };
    let (Some(&[hi, lo]), Some(name)) = (
        packet.get(q.name_end..q.name_end + 2),
        s.key.get(12..q.name_end),
    ) else {
        return false;
    };
    match names.miss(name, RecordType::from(u16::from_be_bytes([hi, lo]))) {
        Some(miss) => cur.answers().negative(packet, q, miss, out),
        None => false,
    }
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
        let (bytes, info) = encode(response)?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(info)
    }
}

/// The response as hickory's UDP response handle encodes it.
fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> Result<(Vec<u8>, ResponseInfo), NetError> {
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
    Ok((bytes, info))
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
    let mut tally = Tally::default();
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
            if hit(&cur, packet, &mut s, &mut outs[i]) || negative(&cur, packet, &s, &mut outs[i]) {
                replies.push((i, addr));
            } else if let Some(answer) = rt.block_on(miss(&cur, packet, src, &s)) {
                outs[i] = answer;
                replies.push((i, addr));
            }
        }
        for (i, _) in &replies {
            tally.count_reply(&outs[*i]);
        }
        core.stats().add(&mut tally);
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
    if hit(&cur, packet, &mut s, &mut out) || negative(&cur, packet, &s, &mut out) {
        return Some(out);
    }
    miss(&cur, packet, src, &s).await
}

/// [`negative`] alone, as the listener reaches it after a cache miss.
#[cfg(test)]
pub(crate) fn negative_only(core: &Core, packet: &[u8]) -> Option<Vec<u8>> {
    let mut s = Scratch {
        question: question(packet),
        ..Scratch::default()
    };
    key(packet, s.question?, &mut s.key);
    let mut out = Vec::new();
    negative(&core.current(), packet, &s, &mut out).then_some(out)
}

/// The [`Answers`](crate::answers::Answers) alone, as the listener asks
/// them first.
#[cfg(test)]
pub(crate) fn encoded_only(core: &Core, packet: &[u8]) -> Option<Vec<u8>> {
    let q = question(packet)?;
    let mut k = Vec::new();
    key(packet, q, &mut k);
    let mut out = Vec::new();
    core.current()
        .answers()
        .answer(packet, q, &k, &mut out)
        .then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::query;
    use crate::harness::{Harness, KEY_NAME, KEY_SECRET, ZONE};
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
    use hickory_proto::rr::{Name, RData, RecordType, TSigner};

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
            // A is encoded with the zone, ANY (answered with the A
            // records) goes to hickory and is cached.
            let ask = |id, t| query(id, &format!("B.dyn.{ZONE}"), t, true);
            let types = [RecordType::A, RecordType::ANY];
            let rcode = |a: &[u8]| Message::from_vec(a).unwrap().metadata.response_code;
            let addr = |a: &[u8]| {
                Message::from_vec(a)
                    .unwrap()
                    .answers
                    .iter()
                    .map(|r| r.data.to_string())
                    .collect::<Vec<_>>()
            };
            for (id, t) in (1..3).zip(types) {
                assert_eq!(
                    rcode(&h.handle(&ask(id, t)).await.unwrap()),
                    ResponseCode::NXDomain
                );
            }
            assert_eq!(
                h.core.current().cache().len(),
                0,
                "the NXDOMAIN comes from the names, not the cache"
            );
            for last in [7, 8] {
                let r = h.handle(&set_b(last)).await.unwrap();
                assert_eq!(rcode(&r), ResponseCode::NoError);
                for id in 10..14 {
                    let a = h
                        .handle(&ask(id, types[usize::from(id % 2)]))
                        .await
                        .unwrap();
                    assert_eq!(addr(&a), [format!("192.0.2.{last}")]);
                    assert_eq!(Message::from_vec(&a).unwrap().metadata.id, id);
                }
                assert_eq!(h.core.current().cache().len(), 1, "ANY");
                assert_eq!(h.core.current().answers().len(), 3, "www, ns1, b.dyn");
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
            // The answers with records; misses come from the names.
            assert!(h.core.current().cache().len() > 10);
        });
    }
}
