//! The three packet loops. Each waits at most [`TICK_MS`] in `poll`, so
//! it notices the device being dropped.

use std::io::{ErrorKind, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};
use tun_rs::{GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use super::batch::Batch;
use super::{Identity, Inner, Peer, Udp};

const TICK_MS: i32 = 250;
/// Largest plain packet the interface passes (its MTU is 1420).
const MAX_PACKET: usize = 2048;
/// WireGuard data header + tag, and the smallest buffer `Tunn` accepts.
const OVERHEAD: usize = 32;
const MIN_OUT: usize = 148;
/// Datagrams (each up to 64 KiB with GRO) per `recvmmsg`.
const RECV_BATCH: usize = 16;

/// Waits until `fd` is ready for `events`, up to one tick.
fn ready(fd: &impl AsRawFd, events: i16) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, TICK_MS) > 0 }
}

/// Turns off UDP GRO, which quinn-udp enables (for `ALPHAREN_VPN_OFFLOAD=0`).
pub(super) fn disable_udp_gro(sock: &UdpSocket) -> std::io::Result<()> {
    let off: libc::c_int = 0;
    // SAFETY: a valid socket and an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&raw const off).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOPROTOOPT) {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One send (a GSO group or a single datagram), waiting while the
/// socket's buffer is full.
fn send(udp: &Udp, dest: SocketAddr, contents: &[u8], segment: usize) {
    let destination = match dest {
        SocketAddr::V4(a) if udp.v6 => SocketAddr::from((a.ip().to_ipv6_mapped(), a.port())),
        d => d,
    };
    let t = quinn_udp::Transmit {
        destination,
        ecn: None,
        contents,
        segment_size: (contents.len() > segment).then_some(segment),
        src_ip: None,
    };
    for _ in 0..100 {
        match udp.state.try_send((&udp.sock).into(), &t) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                ready(&udp.sock, libc::POLLOUT);
            }
            Err(e) => {
                tracing::debug!(%dest, error = %e, "vpn send failed");
                return;
            }
            Ok(()) => return,
        }
    }
}

fn flush(udp: &Udp, batch: &mut Batch) {
    for (g, bytes) in batch.groups() {
        send(udp, g.dest, bytes, g.stride);
    }
    batch.clear();
}

/// TUN → encrypt → UDP. A read returns one GSO super-packet split into
/// segments (or one packet without offloads); their ciphertexts are
/// grouped per endpoint and sent with UDP segmentation offload.
pub(super) fn tun_to_udp(inner: &Inner) {
    let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65_535];
    let mut bufs = vec![vec![0u8; MAX_PACKET]; IDEAL_BATCH_SIZE];
    let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
    let mut batch: Option<(Batch, usize)> = None;
    while !inner.stop.load(Ordering::Relaxed) {
        if !ready(&inner.tun, libc::POLLIN) {
            continue;
        }
        let n = match inner
            .tun
            .recv_multiple(&mut original, &mut bufs, &mut sizes, 0)
        {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::debug!(error = %e, "tun read");
                continue;
            }
        };
        let Some(udp) = inner.udp() else { continue };
        // A rebound socket may have another GSO limit.
        if batch
            .as_ref()
            .is_none_or(|(_, segs)| *segs != udp.gso_segments)
        {
            let b = Batch::new(IDEAL_BATCH_SIZE * (MAX_PACKET + OVERHEAD), udp.gso_segments);
            batch = Some((b, udp.gso_segments));
        }
        let Some((batch, _)) = batch.as_mut() else {
            continue;
        };
        let peers = match inner.peers.read() {
            Ok(p) => p,
            Err(_) => return,
        };
        let mut last: Option<(IpAddr, Arc<Peer>)> = None;
        for (buf, &size) in bufs.iter().zip(&sizes).take(n) {
            let packet = &buf[..size];
            let Some(dst) = Tunn::dst_address(packet) else {
                continue;
            };
            let peer = match &last {
                Some((ip, p)) if *ip == dst => p.clone(),
                _ => match peers.routes.lookup(dst) {
                    Some(p) => {
                        last = Some((dst, p.clone()));
                        p.clone()
                    }
                    None => continue,
                },
            };
            let Some(endpoint) = peer.endpoint() else {
                continue;
            };
            let need = (size + OVERHEAD).max(MIN_OUT);
            if batch.room(need).is_none() {
                flush(&udp, batch);
            }
            let Some(room) = batch.room(need) else {
                continue;
            };
            let Ok(mut tunn) = peer.tunn.lock() else {
                return;
            };
            if let TunnResult::WriteToNetwork(out) = tunn.encapsulate(packet, room) {
                let len = out.len();
                batch.commit(endpoint, len);
            }
        }
        drop(peers);
        flush(&udp, batch);
    }
}

/// Where a verified datagram goes: its peer, found by the initiator's
/// static key (handshake initiation) or by the receiver index.
fn peer_of(inner: &Inner, id: &Identity, packet: &Packet) -> Option<Arc<Peer>> {
    let peers = inner.peers.read().ok()?;
    match packet {
        Packet::HandshakeInit(p) => {
            let hh = parse_handshake_anon(&id.secret, &id.public, p).ok()?;
            peers.by_key.get(&hh.peer_static_public).cloned()
        }
        Packet::HandshakeResponse(p) => peers.by_index.get(&(p.receiver_idx >> 8)).cloned(),
        Packet::PacketCookieReply(p) => peers.by_index.get(&(p.receiver_idx >> 8)).cloned(),
        Packet::PacketData(p) => peers.by_index.get(&(p.receiver_idx >> 8)).cloned(),
    }
}

/// Plain packets decrypted from one `recvmmsg`, written to the TUN
/// together so tun-rs can coalesce TCP/UDP flows into super-packets.
struct ToTun {
    bufs: Vec<Vec<u8>>,
    n: usize,
    gro: GROTable,
}

impl ToTun {
    fn flush(&mut self, inner: &Inner) {
        if self.n == 0 {
            return;
        }
        if let Err(e) =
            inner
                .tun
                .send_multiple(&mut self.gro, &mut self.bufs[..self.n], VIRTIO_NET_HDR_LEN)
        {
            tracing::debug!(error = %e, "tun write");
        }
        self.n = 0;
    }
}

/// Decrypts one datagram from `from`; replies (handshake, cookie) go
/// straight back, plain packets into `out`.
fn receive(
    inner: &Inner,
    udp: &Udp,
    id: &Identity,
    from: SocketAddr,
    datagram: &[u8],
    out: &mut ToTun,
    scratch: &mut [u8],
) {
    let packet = match id.limiter.verify_packet(Some(from.ip()), datagram, scratch) {
        Ok(p) => p,
        Err(TunnResult::WriteToNetwork(cookie)) => {
            let n = cookie.len();
            send(udp, from, &scratch[..n], n);
            return;
        }
        Err(_) => return,
    };
    let Some(peer) = peer_of(inner, id, &packet) else {
        return;
    };
    if out.n == out.bufs.len() {
        out.flush(inner);
    }
    let buf = &mut out.bufs[out.n];
    buf.resize(VIRTIO_NET_HDR_LEN + datagram.len().max(MIN_OUT), 0);
    let Ok(mut tunn) = peer.tunn.lock() else {
        return;
    };
    let plain = match tunn.decapsulate(Some(from.ip()), datagram, &mut buf[VIRTIO_NET_HDR_LEN..]) {
        TunnResult::Done => None,
        TunnResult::Err(_) => return,
        TunnResult::WriteToNetwork(reply) => {
            let n = reply.len();
            send(
                udp,
                from,
                &buf[VIRTIO_NET_HDR_LEN..VIRTIO_NET_HDR_LEN + n],
                n,
            );
            // Packets queued while the handshake ran.
            while let TunnResult::WriteToNetwork(p) = tunn.decapsulate(None, &[], scratch) {
                let n = p.len();
                send(udp, from, &scratch[..n], n);
            }
            None
        }
        TunnResult::WriteToTunnelV4(p, src) => Some((p.len(), IpAddr::V4(src))),
        TunnResult::WriteToTunnelV6(p, src) => Some((p.len(), IpAddr::V6(src))),
    };
    drop(tunn);
    peer.seen_from(from);
    if let Some((len, src)) = plain {
        // Cryptokey routing: the source must be one of this peer's.
        let owner = inner
            .peers
            .read()
            .ok()
            .and_then(|p| p.routes.lookup(src).cloned());
        if owner.is_some_and(|o| Arc::ptr_eq(&o, &peer)) {
            buf.truncate(VIRTIO_NET_HDR_LEN + len);
            out.n += 1;
        }
    }
}

/// UDP → decrypt → TUN, a `recvmmsg` batch at a time; a GRO datagram is
/// cut at its stride back into WireGuard messages.
pub(super) fn udp_to_tun(inner: &Inner) {
    let mut bufs = vec![vec![0u8; 65_536]; RECV_BATCH];
    let mut metas = [quinn_udp::RecvMeta::default(); RECV_BATCH];
    let mut scratch = vec![0u8; MAX_PACKET + OVERHEAD];
    let mut out = ToTun {
        bufs: (0..IDEAL_BATCH_SIZE)
            .map(|_| Vec::with_capacity(VIRTIO_NET_HDR_LEN + MAX_PACKET))
            .collect(),
        n: 0,
        gro: GROTable::default(),
    };
    while !inner.stop.load(Ordering::Relaxed) {
        let Some(udp) = inner.udp() else {
            std::thread::sleep(Duration::from_millis(TICK_MS as u64));
            continue;
        };
        if !ready(&udp.sock, libc::POLLIN) {
            continue;
        }
        let Some(id) = inner.identity() else { continue };
        let mut slices: Vec<IoSliceMut> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let n = match udp.state.recv((&udp.sock).into(), &mut slices, &mut metas) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::debug!(error = %e, "udp read");
                continue;
            }
        };
        drop(slices);
        for (meta, buf) in metas.iter().zip(&bufs).take(n) {
            let from = SocketAddr::new(meta.addr.ip().to_canonical(), meta.addr.port());
            let stride = if meta.stride == 0 {
                meta.len
            } else {
                meta.stride
            };
            for datagram in buf[..meta.len].chunks(stride.max(1)) {
                receive(inner, &udp, &id, from, datagram, &mut out, &mut scratch);
            }
        }
        out.flush(inner);
    }
}

/// Handshake retries, keepalives, session expiry (every tick), and the
/// handshake rate limiter's reset (every second).
pub(super) fn timers(inner: &Inner) {
    let mut scratch = vec![0u8; MAX_PACKET];
    let mut last_reset = Instant::now();
    while !inner.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(TICK_MS as u64));
        if last_reset.elapsed() >= Duration::from_secs(1) {
            if let Some(id) = inner.identity() {
                id.limiter.reset_count();
            }
            last_reset = Instant::now();
        }
        let Some(udp) = inner.udp() else { continue };
        let peers: Vec<Arc<Peer>> = match inner.peers.read() {
            Ok(p) => p.by_key.values().cloned().collect(),
            Err(_) => return,
        };
        for peer in peers {
            let Ok(mut tunn) = peer.tunn.lock() else {
                return;
            };
            if let TunnResult::WriteToNetwork(p) = tunn.update_timers(&mut scratch)
                && let Some(ep) = peer.endpoint()
            {
                let n = p.len();
                send(&udp, ep, &scratch[..n], n);
            }
        }
    }
}
