//! Encryption and decryption of one peer's packets, either in the two
//! reader threads or on a pool of crypto threads. boringtun's `Tunn`
//! takes `&mut self` for every packet (its nonce counter, timers and
//! session state live behind that one borrow, and its session type is
//! private), so one peer's packets in one direction are encrypted on one
//! thread at a time. What runs in parallel is peers: each peer has one
//! crypto thread per direction (chosen by its session index), so its
//! packets keep their order, and the threads of different peers run at
//! the same time.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::Duration;

use boringtun::noise::TunnResult;
use tun_rs::{GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use super::batch::Batch;
use super::io::{self, MAX_PACKET, MIN_OUT, OVERHEAD, TICK_MS};
use super::{Inner, Peer, Udp};

/// Jobs queued per crypto thread before a reader waits.
pub(super) const QUEUE: usize = 4;

/// Which way a job goes through `Tunn`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Dir {
    /// Plain packets from the TUN, to encrypt and send to `addr`.
    Encrypt,
    /// Datagrams from `addr`, to decrypt and write to the TUN.
    Decrypt,
}

/// The crypto thread of a peer for one direction: a peer's two
/// directions land on different threads when there are two or more.
pub(super) fn shard(peer: &Peer, dir: Dir, threads: usize) -> usize {
    let i = peer.index as usize + usize::from(dir == Dir::Decrypt);
    i % threads.max(1)
}

/// Packets of one reader's batch bound for one crypto thread, in the
/// order they were read; handed back to the reader once done.
pub(super) struct Job {
    dir: Dir,
    data: Vec<u8>,
    items: Vec<(Arc<Peer>, SocketAddr, Range<usize>)>,
    back: Sender<Job>,
}

/// A reader's side of the pool: one open job per crypto thread, and the
/// finished jobs coming back for reuse.
pub(super) struct Dispatch {
    dir: Dir,
    open: Vec<Option<Job>>,
    back: Sender<Job>,
    done: Receiver<Job>,
}

impl Dispatch {
    pub fn new(dir: Dir, threads: usize) -> Dispatch {
        let (back, done) = mpsc::channel();
        Dispatch {
            dir,
            open: (0..threads).map(|_| None).collect(),
            back,
            done,
        }
    }

    pub fn push(&mut self, peer: &Arc<Peer>, addr: SocketAddr, bytes: &[u8]) {
        let threads = self.open.len();
        let slot = &mut self.open[shard(peer, self.dir, threads)];
        let job = slot.get_or_insert_with(|| match self.done.try_recv() {
            Ok(mut j) => {
                j.data.clear();
                j.items.clear();
                j
            }
            Err(_) => Job {
                dir: self.dir,
                data: Vec::with_capacity(65_536),
                items: Vec::with_capacity(IDEAL_BATCH_SIZE),
                back: self.back.clone(),
            },
        });
        let start = job.data.len();
        job.data.extend_from_slice(bytes);
        job.items
            .push((peer.clone(), addr, start..start + bytes.len()));
    }

    /// Hands the open jobs to their threads (waiting while a queue is full).
    pub fn submit(&mut self, queues: &[SyncSender<Job>]) {
        for (slot, q) in self.open.iter_mut().zip(queues) {
            if let Some(job) = slot.take() {
                let _ = q.send(job);
            }
        }
    }
}

/// The send buffer of one encrypting thread, rebuilt when the socket
/// (and so its GSO limit) changes.
#[derive(Default)]
pub(super) struct Out {
    batch: Option<(Batch, usize)>,
}

impl Out {
    pub fn batch(&mut self, udp: &Udp) -> &mut Batch {
        let segs = udp.gso_segments;
        if self.batch.as_ref().is_some_and(|(_, s)| *s != segs) {
            self.batch = None;
        }
        let (b, _) = self.batch.get_or_insert_with(|| {
            let b = Batch::new(IDEAL_BATCH_SIZE * (MAX_PACKET + OVERHEAD), segs);
            (b, segs)
        });
        b
    }
}

/// Encrypts one packet for `peer` into the send buffer (flushing it
/// first when full).
pub(super) fn encrypt(
    udp: &Udp,
    batch: &mut Batch,
    peer: &Peer,
    endpoint: SocketAddr,
    packet: &[u8],
) {
    let need = (packet.len() + OVERHEAD).max(MIN_OUT);
    if batch.room(need).is_none() {
        io::flush(udp, batch);
    }
    let Some(room) = batch.room(need) else {
        return;
    };
    let Ok(mut tunn) = peer.tunn.lock() else {
        return;
    };
    if let TunnResult::WriteToNetwork(out) = tunn.encapsulate(packet, room) {
        let len = out.len();
        batch.commit(endpoint, len);
    }
}

/// Room for a coalesced write: tun-rs appends the next segments of a
/// flow to the buffer of its first packet, and only if that buffer's
/// capacity holds twice the header plus the whole super-packet.
const TUN_BUF_CAPACITY: usize = 2 * VIRTIO_NET_HDR_LEN + 65_535;

/// Plain packets decrypted from one batch, written to the TUN together
/// so tun-rs can coalesce TCP/UDP flows into super-packets.
pub(super) struct ToTun {
    pub(super) bufs: Vec<Vec<u8>>,
    pub(super) n: usize,
    pub(super) gro: GROTable,
}

impl ToTun {
    pub fn new() -> ToTun {
        ToTun {
            bufs: (0..IDEAL_BATCH_SIZE)
                .map(|_| Vec::with_capacity(TUN_BUF_CAPACITY))
                .collect(),
            n: 0,
            gro: GROTable::default(),
        }
    }

    pub fn is_full(&self) -> bool {
        self.n == self.bufs.len()
    }

    /// The next buffer (the caller flushes first when full), sized for a
    /// packet decrypted from `datagram_len` bytes after the
    /// virtio_net_hdr; [`ToTun::keep`] makes it part of the next write.
    pub fn next(&mut self, datagram_len: usize) -> &mut Vec<u8> {
        let buf = &mut self.bufs[self.n];
        buf.clear();
        buf.resize(VIRTIO_NET_HDR_LEN + datagram_len.max(MIN_OUT), 0);
        buf
    }

    /// Keeps the first `len` plain bytes of the buffer [`ToTun::next`] gave.
    pub fn keep(&mut self, len: usize) {
        self.bufs[self.n].truncate(VIRTIO_NET_HDR_LEN + len);
        self.n += 1;
    }

    pub fn flush(&mut self, inner: &Inner) {
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

/// Decrypts one verified datagram of `peer` from `from`; replies
/// (handshake, cookie) go straight back, plain packets into `out`.
pub(super) fn decrypt(
    inner: &Inner,
    udp: &Udp,
    peer: &Arc<Peer>,
    from: SocketAddr,
    datagram: &[u8],
    out: &mut ToTun,
    scratch: &mut [u8],
) {
    if out.is_full() {
        out.flush(inner);
    }
    let buf = out.next(datagram.len());
    let Ok(mut tunn) = peer.tunn.lock() else {
        return;
    };
    let plain = match tunn.decapsulate(Some(from.ip()), datagram, &mut buf[VIRTIO_NET_HDR_LEN..]) {
        TunnResult::Done => None,
        TunnResult::Err(_) => return,
        TunnResult::WriteToNetwork(reply) => {
            let n = reply.len();
            io::send(
                udp,
                from,
                &buf[VIRTIO_NET_HDR_LEN..VIRTIO_NET_HDR_LEN + n],
                n,
            );
            // Packets queued while the handshake ran.
            while let TunnResult::WriteToNetwork(p) = tunn.decapsulate(None, &[], scratch) {
                let n = p.len();
                io::send(udp, from, &scratch[..n], n);
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
        if owner.is_some_and(|o| Arc::ptr_eq(&o, peer)) {
            out.keep(len);
        }
    }
}

/// A crypto thread: runs jobs in the order they come, until the device
/// is dropped.
pub(super) fn worker(inner: &Inner, jobs: Receiver<Job>) {
    let mut out = Out::default();
    let mut to_tun = ToTun::new();
    let mut scratch = vec![0u8; MAX_PACKET + OVERHEAD];
    while !inner.stop.load(Ordering::Relaxed) {
        let job = match jobs.recv_timeout(Duration::from_millis(TICK_MS as u64)) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if let Some(udp) = inner.udp() {
            match job.dir {
                Dir::Encrypt => {
                    let batch = out.batch(&udp);
                    for (peer, endpoint, r) in &job.items {
                        encrypt(&udp, batch, peer, *endpoint, &job.data[r.clone()]);
                    }
                    io::flush(&udp, batch);
                }
                Dir::Decrypt => {
                    for (peer, from, r) in &job.items {
                        let d = &job.data[r.clone()];
                        decrypt(inner, &udp, peer, *from, d, &mut to_tun, &mut scratch);
                    }
                    to_tun.flush(inner);
                }
            }
        }
        let back = job.back.clone();
        let _ = back.send(job);
    }
}
