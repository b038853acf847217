//! The tunnel's packet path, around boringtun's protocol core
//! (`noise::Tunn`, one per peer). The TUN device is opened with
//! `IFF_VNET_HDR` and TSO/USO offloads (tun-rs, ported from
//! wireguard-go), so the kernel hands over and accepts 64 KiB
//! super-packets; the UDP socket uses segmentation offload and GRO with
//! batched `recvmmsg` (quinn-udp). Three threads: TUN → UDP (encrypt),
//! UDP → TUN (decrypt), timers. A peer's `Tunn` is behind its own lock,
//! so packets of one peer keep their order in each direction.
//! `ALPHAREN_VPN_OFFLOAD=0` turns every offload off (plain TUN, one
//! datagram per syscall-segment); missing kernel features are turned off
//! one by one, and what is on is logged.

mod batch;
mod io;
#[cfg(test)]
mod offload_tests;
mod route;

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use boringtun::noise::Tunn;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::x25519::{PublicKey, StaticSecret};

use crate::backend::{Backend, BackendError, PeerStatus};
use crate::keys::Key;
use crate::plan::PeerSpec;

/// Handshakes per second before cookies are demanded (boringtun's value).
const HANDSHAKE_RATE_LIMIT: u64 = 100;

/// Whether offloads may be used (`ALPHAREN_VPN_OFFLOAD=0` says no).
fn offload_allowed() -> bool {
    std::env::var("ALPHAREN_VPN_OFFLOAD").map_or(true, |v| v != "0")
}

pub(crate) struct Peer {
    key: Key,
    tunn: Mutex<Tunn>,
    endpoint: RwLock<Option<SocketAddr>>,
}

impl Peer {
    fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint.read().ok().and_then(|e| *e)
    }

    /// Roaming: the last address an authenticated packet came from.
    fn seen_from(&self, addr: SocketAddr) {
        if self.endpoint() != Some(addr)
            && let Ok(mut e) = self.endpoint.write()
        {
            *e = Some(addr);
        }
    }
}

#[derive(Default)]
pub(crate) struct Peers {
    by_key: HashMap<Key, Arc<Peer>>,
    /// Session index (upper 24 bits of receiver indices) → peer.
    by_index: HashMap<u32, Arc<Peer>>,
    routes: route::Table<Arc<Peer>>,
    next_index: u32,
}

pub(crate) struct Identity {
    secret: StaticSecret,
    public: PublicKey,
    limiter: Arc<RateLimiter>,
}

/// The UDP socket and its offload state.
pub(crate) struct Udp {
    sock: UdpSocket,
    state: quinn_udp::UdpSocketState,
    /// Datagrams per `sendmsg` (1 = no segmentation offload).
    gso_segments: usize,
    v6: bool,
}

impl Udp {
    fn bind(port: u16, offload: bool) -> std::io::Result<Udp> {
        use socket2::{Domain, Protocol, Socket, Type};
        let dual = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).and_then(|s| {
            s.set_only_v6(false)?;
            s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
            Ok(s)
        });
        let (sock, v6) = match dual {
            Ok(s) => (s, true),
            // No IPv6 in this kernel: IPv4 only.
            Err(_) => {
                let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
                s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
                (s, false)
            }
        };
        let sock: UdpSocket = sock.into();
        let state = quinn_udp::UdpSocketState::new((&sock).into())?;
        // Room for a burst of 64 KiB GRO datagrams.
        let _ = state.set_recv_buffer_size((&sock).into(), 8 << 20);
        let _ = state.set_send_buffer_size((&sock).into(), 8 << 20);
        let gso_segments = if offload {
            state.max_gso_segments()
        } else {
            io::disable_udp_gro(&sock)?;
            1
        };
        let gro = if offload { state.gro_segments() } else { 1 };
        tracing::info!(
            port,
            ipv6 = v6,
            udp_gso_segments = gso_segments,
            udp_gro_segments = gro,
            "vpn socket"
        );
        Ok(Udp {
            sock,
            state,
            gso_segments,
            v6,
        })
    }
}

pub(crate) struct Inner {
    tun: tun_rs::SyncDevice,
    udp: RwLock<Option<Arc<Udp>>>,
    peers: RwLock<Peers>,
    identity: RwLock<Option<Arc<Identity>>>,
    offload: bool,
    stop: AtomicBool,
}

impl Inner {
    fn udp(&self) -> Option<Arc<Udp>> {
        self.udp.read().ok().and_then(|u| u.clone())
    }

    fn identity(&self) -> Option<Arc<Identity>> {
        self.identity.read().ok().and_then(|i| i.clone())
    }
}

pub struct FastPath {
    inner: Arc<Inner>,
    port: Option<u16>,
    threads: Vec<JoinHandle<()>>,
}

/// Opens the TUN device, with offloads if allowed and the kernel has them.
fn open_tun(name: &str, offload: bool) -> Result<tun_rs::SyncDevice, BackendError> {
    let build = |off: bool| {
        tun_rs::DeviceBuilder::new()
            .name(name)
            .offload(off)
            .build_sync()
    };
    let dev = if offload {
        build(true).or_else(|e| {
            tracing::warn!(error = %e, "tun offloads refused by the kernel: plain TUN");
            build(false)
        })
    } else {
        build(false)
    };
    let dev = dev.map_err(|e| BackendError::Create {
        name: name.to_string(),
        reason: e.to_string(),
    })?;
    tracing::info!(
        interface = name,
        vnet_hdr = dev.tcp_gso(),
        tso = dev.tcp_gso(),
        uso = dev.udp_gso(),
        "tun device"
    );
    Ok(dev)
}

impl FastPath {
    pub fn create(name: &str) -> Result<FastPath, BackendError> {
        let offload = offload_allowed();
        if !offload {
            tracing::info!("ALPHAREN_VPN_OFFLOAD=0: tun and udp offloads off");
        }
        let tun = open_tun(name, offload)?;
        let inner = Arc::new(Inner {
            tun,
            udp: RwLock::new(None),
            peers: RwLock::new(Peers::default()),
            identity: RwLock::new(None),
            offload,
            stop: AtomicBool::new(false),
        });
        let mut threads = Vec::new();
        type Loop = fn(&Inner);
        let loops: [(&str, Loop); 3] = [
            ("vpn-tun", io::tun_to_udp),
            ("vpn-udp", io::udp_to_tun),
            ("vpn-timers", io::timers),
        ];
        for (tname, f) in loops {
            let i = inner.clone();
            let h = std::thread::Builder::new()
                .name(tname.into())
                .spawn(move || f(&i))?;
            threads.push(h);
        }
        Ok(FastPath {
            inner,
            port: None,
            threads,
        })
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

fn poisoned() -> BackendError {
    BackendError::Protocol("a packet thread panicked".into())
}

impl Backend for FastPath {
    fn kind(&self) -> &'static str {
        "boringtun"
    }

    fn set_device(
        &mut self,
        private_key: Option<&Key>,
        listen_port: Option<u16>,
    ) -> Result<(), BackendError> {
        if let Some(port) = listen_port
            && self.port != Some(port)
        {
            // The old socket closes when the last packet thread lets go.
            let udp = Udp::bind(port, self.inner.offload)?;
            *self.inner.udp.write().map_err(|_| poisoned())? = Some(Arc::new(udp));
            self.port = Some(port);
        }
        if let Some(key) = private_key {
            let secret = StaticSecret::from(*key);
            let public = PublicKey::from(&secret);
            let limiter = Arc::new(RateLimiter::new(&public, HANDSHAKE_RATE_LIMIT));
            let peers = self.inner.peers.read().map_err(|_| poisoned())?;
            for p in peers.by_key.values() {
                let mut t = p.tunn.lock().map_err(|_| poisoned())?;
                t.set_static_private(secret.clone(), public, Some(limiter.clone()));
            }
            *self.inner.identity.write().map_err(|_| poisoned())? = Some(Arc::new(Identity {
                secret,
                public,
                limiter,
            }));
        }
        Ok(())
    }

    fn remove_peer(&mut self, key: &Key) -> Result<(), BackendError> {
        let mut peers = self.inner.peers.write().map_err(|_| poisoned())?;
        if peers.by_key.remove(key).is_some() {
            peers.by_index.retain(|_, p| p.key != *key);
            peers.routes.remove_owner(|p| p.key == *key);
        }
        Ok(())
    }

    fn add_peer(&mut self, spec: &PeerSpec) -> Result<(), BackendError> {
        let id = self.inner.identity().ok_or(BackendError::Refused {
            what: "add peer before the private key",
            errno: libc::EINVAL,
        })?;
        let mut peers = self.inner.peers.write().map_err(|_| poisoned())?;
        // 24-bit session index, never reused while the device lives.
        let index = peers.next_index & 0x00ff_ffff;
        peers.next_index = peers.next_index.wrapping_add(1);
        let tunn = Tunn::new(
            id.secret.clone(),
            PublicKey::from(spec.public_key),
            spec.preshared_key,
            spec.keepalive,
            index,
            Some(id.limiter.clone()),
        );
        let peer = Arc::new(Peer {
            key: spec.public_key,
            tunn: Mutex::new(tunn),
            endpoint: RwLock::new(spec.endpoint),
        });
        peers.by_key.insert(spec.public_key, peer.clone());
        peers.by_index.insert(index, peer.clone());
        for prefix in &spec.allowed_ips {
            peers.routes.insert(*prefix, peer.clone());
        }
        Ok(())
    }

    fn status(&mut self) -> Result<Vec<PeerStatus>, BackendError> {
        let peers = self.inner.peers.read().map_err(|_| poisoned())?;
        let mut out = Vec::new();
        for p in peers.by_key.values() {
            let (handshake_age, tx, rx, _, _) = p.tunn.lock().map_err(|_| poisoned())?.stats();
            out.push(PeerStatus {
                public_key: p.key,
                endpoint: p.endpoint(),
                handshake_age,
                rx_bytes: rx as u64,
                tx_bytes: tx as u64,
            });
        }
        Ok(out)
    }
}
