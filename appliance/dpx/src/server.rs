//! The DNS server: a `Catalog` that holds one zone handler, answering TCP
//! through hickory's `Server` and UDP through [`crate::udp`] (an answer
//! cache in front of the same catalog). The zone is immutable once built;
//! every change (an UPDATE, a dyndns call, a SIGHUP) builds the next one
//! and swaps it in, so queries never wait for a writer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{LowerName, Name, Record, TSigResponseContext, TSigner};
use hickory_server::Server;
use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::server::{Request, RequestHandler, RequestInfo, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AuthLookup, AxfrPolicy, Catalog, LookupControlFlow, LookupError, LookupOptions, Nsec3QueryInfo,
    UpdateRequest, ZoneHandler, ZoneType,
};

use crate::answers::Answers;
use crate::names::{self, Miss, Names};
use crate::stats::{Counters, Tally};
use crate::update::{self, Policy};
use crate::{Error, cache, db, io_err, udp, zone};

/// A TSIG key with what it may change.
#[derive(Clone)]
pub(crate) struct Key {
    pub signer: TSigner,
    pub policy: Policy,
}

/// The zone as served now.
#[derive(Clone)]
pub(crate) struct Zone {
    pub origin: Name,
    pub primary: Name,
    /// From the configuration and the node itself; updates never touch them.
    pub statics: Vec<Record>,
    /// Added by RFC 2136 updates and dyndns, persisted in the store.
    pub dynamic: Vec<Record>,
    pub serial: u32,
    pub keys: Vec<Key>,
}

impl Zone {
    /// Every record served, SOA first.
    pub fn records(&self) -> Result<Vec<Record>, zone::ZoneError> {
        let mut all = vec![zone::soa(&self.origin, &self.primary, self.serial)?];
        all.extend(self.statics.iter().cloned());
        all.extend(self.dynamic.iter().cloned());
        Ok(all)
    }
}

/// One generation of the zone: what is served, its names, the answers
/// encoded when it was built and the UDP answers cached since, dropped
/// together at the next change.
pub(crate) struct Current {
    pub zone: Option<Zone>,
    catalog: Arc<Catalog>,
    names: Option<Arc<Names>>,
    answers: Answers,
    cache: Mutex<cache::Cache>,
}

impl Current {
    fn new(
        zone: Option<Zone>,
        catalog: Catalog,
        names: Option<Arc<Names>>,
        answers: Answers,
    ) -> Current {
        Current {
            zone,
            catalog: Arc::new(catalog),
            names,
            answers,
            cache: Mutex::new(cache::Cache::new(cache::CACHE_BYTES)),
        }
    }

    /// The answers encoded from the zone (A, AAAA, TXT, and the misses).
    pub fn answers(&self) -> &Answers {
        &self.answers
    }

    /// The zone's names; `None` without a zone.
    pub fn names(&self) -> Option<&Names> {
        self.names.as_deref()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn cache(&self) -> std::sync::MutexGuard<'_, cache::Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Shared by the listeners, the zone handler and the control socket.
pub(crate) struct Core {
    /// Held for the whole read-modify-write of a change, so changes are
    /// serialized and each sees the previous one.
    /// `dpx.db`.
    db: Mutex<rusqlite::Connection>,
    current: RwLock<Arc<Current>>,
    /// The DNS port in use, for `dpx.status`.
    port: AtomicU16,
    client: crate::client::Shared,
    /// Answers by type and response code since the service started.
    stats: Counters,
}

fn servfail(e: impl std::fmt::Display) -> ResponseCode {
    tracing::error!(error = %e, "cannot apply a change to the zone");
    ResponseCode::ServFail
}

impl Core {
    pub fn new(db: rusqlite::Connection) -> Arc<Core> {
        Arc::new(Core {
            db: Mutex::new(db),
            current: RwLock::new(Arc::new(Current::new(
                None,
                Catalog::new(),
                None,
                Answers::default(),
            ))),
            port: AtomicU16::new(0),
            client: Default::default(),
            stats: Counters::default(),
        })
    }

    pub fn current(&self) -> Arc<Current> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// The dyndns client's status, written by its task.
    pub fn client_status(&self) -> crate::client::Shared {
        self.client.clone()
    }

    pub fn stats(&self) -> &Counters {
        &self.stats
    }

    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the configured zone (or none) with its persisted dynamic
    /// records and serial, and serves it.
    pub fn reload(self: &Arc<Self>, configured: Option<Zone>) -> Result<(), Error> {
        let mut db = self.db();
        let zone = match configured {
            None => None,
            Some(mut z) => {
                let fp = zone::fingerprint(&z.origin, &z.statics);
                z.serial = db::serial_for(&mut db, &fp)?;
                z.dynamic = db::load_dynamic(&db)?
                    .into_iter()
                    .filter(|r| z.origin.zone_of(&r.name))
                    .collect();
                Some(z)
            }
        };
        self.install(zone)
    }

    fn install(self: &Arc<Self>, zone: Option<Zone>) -> Result<(), Error> {
        let mut catalog = Catalog::new();
        let mut zone_names = None;
        let mut answers = Answers::default();
        if let Some(z) = &zone {
            let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
                z.origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
                None,
            );
            let mut names = Names::new(&z.origin);
            for r in z.records()? {
                // A record the handler refuses (a CNAME beside other
                // data) must not count as a name either.
                if handler.upsert_mut(r.clone(), z.serial) {
                    names.add(&r);
                }
            }
            let soa = zone::soa(&z.origin, &z.primary, z.serial)?;
            answers = Answers::build(handler.records_get_mut(), &names, &soa);
            let names = Arc::new(names);
            let handler = DpxZone {
                inner: handler,
                names: names.clone(),
                core: Arc::downgrade(self),
            };
            catalog.upsert(LowerName::new(&z.origin), vec![Arc::new(handler)]);
            zone_names = Some(names);
        }
        let next = Arc::new(Current::new(zone, catalog, zone_names, answers));
        match self.current.write() {
            Ok(mut c) => *c = next,
            Err(p) => *p.into_inner() = next,
        }
        Ok(())
    }

    /// Runs `change` on a copy of the dynamic records; when it reports a
    /// change, persists them with the next serial and serves the result.
    pub fn commit(
        self: &Arc<Self>,
        by: &str,
        change: impl FnOnce(&Zone, &mut Vec<Record>) -> Result<bool, ResponseCode>,
    ) -> Result<bool, ResponseCode> {
        let mut db = self.db();
        let cur = self.current();
        let zone = cur.zone.as_ref().ok_or(ResponseCode::Refused)?;
        let mut dynamic = zone.dynamic.clone();
        if !change(zone, &mut dynamic)? {
            return Ok(false);
        }
        let serial = db::next_serial(zone.serial);
        db::save_dynamic(&mut db, &dynamic, serial, by).map_err(servfail)?;
        let next = Zone {
            dynamic,
            serial,
            ..zone.clone()
        };
        self.install(Some(next)).map_err(servfail)?;
        tracing::info!(by, serial, "zone changed");
        Ok(true)
    }

    /// RFC 2136 with TSIG: unsigned → REFUSED, unknown key or bad MAC →
    /// NOTAUTH, outside the key's policy → REFUSED; the answer is signed
    /// whenever the key is known.
    fn update(
        self: &Arc<Self>,
        request: &Request,
        now: u64,
    ) -> (Result<bool, ResponseCode>, Option<TSigResponseContext>) {
        let cur = self.current();
        let Some(zone) = cur.zone.as_ref() else {
            return (Err(ResponseCode::Refused), None);
        };
        let id = request.id();
        let Some(sig) = request.signature() else {
            tracing::warn!(src = %request.src(), "unsigned update refused");
            return (Err(ResponseCode::Refused), None);
        };
        let Some(key) = zone
            .keys
            .iter()
            .find(|k| k.signer.signer_name() == &sig.name)
        else {
            tracing::warn!(src = %request.src(), key = %sig.name, "update with an unknown key");
            return (
                Err(ResponseCode::NotAuth),
                Some(TSigResponseContext::unknown_key(id, now, sig.name.clone())),
            );
        };
        let Ok((_, _, valid)) = key
            .signer
            .verify_message_byte(request.as_slice(), None, true)
        else {
            tracing::warn!(src = %request.src(), key = %sig.name, "update with a bad signature");
            return (
                Err(ResponseCode::NotAuth),
                Some(TSigResponseContext::bad_signature(
                    id,
                    now,
                    key.signer.clone(),
                )),
            );
        };
        let signed = |error| {
            Some(TSigResponseContext::new(
                id,
                now,
                key.signer.clone(),
                sig.data.mac.clone(),
                error,
            ))
        };
        if !valid.contains(&now) {
            tracing::warn!(src = %request.src(), key = %sig.name, "update signed at the wrong time");
            return (Err(ResponseCode::NotAuth), signed(Some(TsigError::BadTime)));
        }
        if let Err(code) = update::check(&key.policy, &zone.origin, request.updates()) {
            tracing::warn!(src = %request.src(), key = %sig.name, %code, "update outside the key's policy");
            return (Err(code), signed(None));
        }
        let by = format!("tsig:{}", sig.name);
        let result = self.commit(&by, |zone, dynamic| {
            let all = zone.records().map_err(servfail)?;
            update::prerequisites(&all, &zone.origin, request.prerequisites())?;
            Ok(update::apply(dynamic, request.updates()))
        });
        (result, signed(None))
    }
}

/// The zone as hickory sees it: lookups go to the in-memory handler,
/// updates to [`Core::update`].
struct DpxZone {
    inner: InMemoryZoneHandler<TokioRuntimeProvider>,
    /// Answers the misses the handler would find by walking every record.
    names: Arc<Names>,
    core: Weak<Core>,
}

#[async_trait::async_trait]
impl ZoneHandler for DpxZone {
    fn zone_type(&self) -> ZoneType {
        ZoneType::Primary
    }

    fn axfr_policy(&self) -> AxfrPolicy {
        AxfrPolicy::Deny
    }

    async fn update(
        &self,
        request: &Request,
        now: u64,
    ) -> (Result<bool, ResponseCode>, Option<TSigResponseContext>) {
        match self.core.upgrade() {
            Some(core) => core.update(request, now),
            None => (Err(ResponseCode::ServFail), None),
        }
    }

    fn origin(&self) -> &LowerName {
        self.inner.origin()
    }

    async fn lookup(
        &self,
        name: &LowerName,
        rtype: RecordType,
        request_info: Option<&RequestInfo<'_>>,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        match self.names.miss(&names::wire(name), rtype) {
            Some(Miss::NoData) => LookupControlFlow::Continue(Err(LookupError::NameExists)),
            Some(Miss::NxDomain) => {
                LookupControlFlow::Continue(Err(LookupError::from(ResponseCode::NXDomain)))
            }
            None => {
                self.inner
                    .lookup(name, rtype, request_info, lookup_options)
                    .await
            }
        }
    }

    /// The handler's own search, but through [`DpxZone::lookup`].
    async fn search(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        let info = match request.request_info() {
            Ok(info) => info,
            Err(e) => return (LookupControlFlow::Break(Err(e)), None),
        };
        if info.query.query_type() == RecordType::AXFR {
            return self.inner.search(request, lookup_options).await;
        }
        let (name, rtype) = (info.query.name(), info.query.query_type());
        let found = self.lookup(name, rtype, Some(&info), lookup_options).await;
        (found, None)
    }

    async fn nsec_records(
        &self,
        name: &LowerName,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.inner.nsec_records(name, lookup_options).await
    }

    async fn nsec3_records(
        &self,
        info: Nsec3QueryInfo<'_>,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.inner.nsec3_records(info, lookup_options).await
    }

    fn nx_proof_kind(&self) -> Option<&NxProofKind> {
        None
    }
}

/// Hands each request to the catalog current when it arrived.
pub(crate) struct Dns(pub Arc<Core>);

#[async_trait::async_trait]
impl RequestHandler for Dns {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let catalog = self.0.current().catalog.clone();
        let info = catalog
            .handle_request::<R, T>(request, response_handle)
            .await;
        let qtype = request.queries.queries().first();
        let mut tally = Tally::default();
        tally.count(
            qtype.map(|q| u16::from(q.query_type())),
            u16::from(info.response_code),
        );
        self.0.stats.add(&mut tally);
        info
    }
}

/// The sockets of one port: TCP on hickory's `Server`, UDP on threads of
/// their own, each with a socket.
pub(crate) struct Listener {
    tcp: Server<Dns>,
    udp: Vec<udp::Worker>,
}

impl Listener {
    /// Stops both and frees the port.
    pub async fn shutdown(mut self) {
        stop(std::mem::take(&mut self.udp)).await;
        let _ = self.tcp.shutdown_gracefully().await;
    }

    /// Replaces the UDP workers with `count` new ones on the same port;
    /// the new sockets are bound before the old close, so UDP keeps
    /// answering, and on failure the old ones stay.
    pub async fn set_udp_workers(
        &mut self,
        core: &Arc<Core>,
        port: u16,
        dev: bool,
        count: usize,
    ) -> Result<(), Error> {
        let next = start(core, udp_sockets(address(port, dev), count)?).await?;
        stop(std::mem::replace(&mut self.udp, next)).await;
        Ok(())
    }
}

/// Stops each worker and closes its socket.
async fn stop(workers: Vec<udp::Worker>) {
    for w in workers {
        w.stop().await;
    }
}

/// Loopback in dev, every address on a node (`[::]`, which also takes
/// IPv4 on Linux; replies go back to the v4-mapped source they came from).
fn address(port: u16, dev: bool) -> SocketAddr {
    let ip = if dev {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, port)
}

/// A UDP socket with SO_REUSEPORT, so each worker has its own on the
/// same port and the kernel spreads clients over them by address hash.
fn reuseport_socket(addr: SocketAddr) -> Result<std::net::UdpSocket, Error> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, bind, setsockopt, socket, sockopt,
    };
    use std::os::fd::AsRawFd;
    let err = |e: nix::errno::Errno| Error::Io {
        what: format!("bind udp {addr}"),
        source: e.into(),
    };
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).map_err(err)?;
    setsockopt(&fd, sockopt::ReusePort, &true).map_err(err)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr)).map_err(err)?;
    Ok(fd.into())
}

/// `count` (at least one) UDP sockets on `addr`, or none.
fn udp_sockets(addr: SocketAddr, count: usize) -> Result<Vec<std::net::UdpSocket>, Error> {
    (0..count.max(1)).map(|_| reuseport_socket(addr)).collect()
}

/// A worker on each socket, or none: those started stop again if one fails.
async fn start(
    core: &Arc<Core>,
    sockets: Vec<std::net::UdpSocket>,
) -> Result<Vec<udp::Worker>, Error> {
    let mut started = Vec::with_capacity(sockets.len());
    for s in sockets {
        match udp::Worker::start(s, core.clone()) {
            Ok(w) => started.push(w),
            Err(e) => {
                stop(started).await;
                return Err(e);
            }
        }
    }
    Ok(started)
}

/// Binds TCP and `workers` UDP sockets on the port ([`address`]).
pub(crate) async fn listen(
    core: &Arc<Core>,
    port: u16,
    dev: bool,
    workers: usize,
) -> Result<Listener, Error> {
    let addr = address(port, dev);
    let sockets = udp_sockets(addr, workers)?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(io_err(format!("bind tcp {addr}")))?;
    let mut server = Server::new(Dns(core.clone()));
    server.register_listener(tcp, Duration::from_secs(10), 32);
    // Threads only once every socket is bound: a failed bind leaves none.
    let udp = start(core, sockets).await?;
    Ok(Listener { tcp: server, udp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_workers_share_the_port_and_a_taken_port_is_refused() {
        let first = udp_sockets(address(0, true), 1).unwrap();
        let addr = first[0].local_addr().unwrap();
        let more = udp_sockets(addr, 3).unwrap();
        assert_eq!(more.len(), 3);
        assert!(more.iter().all(|s| s.local_addr().unwrap() == addr));
        assert_eq!(udp_sockets(addr, 0).unwrap().len(), 1, "at least one");
        // A socket without SO_REUSEPORT keeps the port to itself.
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(udp_sockets(plain.local_addr().unwrap(), 1).is_err());
    }
}
