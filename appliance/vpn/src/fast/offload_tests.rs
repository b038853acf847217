//! The contract the packet path relies on from tun-rs, at the boundary:
//! a TCP super-packet as the kernel hands it over (virtio_net_hdr with
//! partial checksum) comes out as MTU-sized packets with complete, valid
//! checksums and consecutive sequence numbers; and consecutive decrypted
//! segments of a flow, in our TUN write buffers, are coalesced back into
//! one super-packet that splits into the same packets.

use tun_rs::{VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_LEN, VirtioNetHdr, gso_split};

use super::crypt::ToTun;

const SEG: usize = 1000;

/// RFC 1071 one's complement sum, folded and inverted.
fn csum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            sum += hi | pair.get(1).map_or(0, |b| u32::from(*b));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo(pkt: &[u8]) -> Vec<u8> {
    let len = ((pkt.len() - 20) as u16).to_be_bytes();
    [&pkt[12..20], &[0, 6], &len[..]].concat()
}

fn tcp_ok(pkt: &[u8]) -> bool {
    csum(&[&pseudo(pkt), &pkt[20..]]) == 0
}

/// An IPv4/TCP packet 10.7.0.1:5201 → 10.7.0.2:40000 with `flags`;
/// `complete`: valid checksums (as decrypted off the wire), otherwise the
/// pseudo-header sum in the TCP checksum field (as the kernel hands a
/// super-packet over) and no IPv4 header checksum.
fn tcp4(id: u16, seq: u32, flags: u8, payload: &[u8], complete: bool) -> Vec<u8> {
    let total = 40 + payload.len();
    let mut pkt = vec![0u8; total];
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6] = 0x40; // DF
    pkt[8] = 64;
    pkt[9] = 6;
    pkt[12..16].copy_from_slice(&[10, 7, 0, 1]);
    pkt[16..20].copy_from_slice(&[10, 7, 0, 2]);
    pkt[20..22].copy_from_slice(&5201u16.to_be_bytes());
    pkt[22..24].copy_from_slice(&40000u16.to_be_bytes());
    pkt[24..28].copy_from_slice(&seq.to_be_bytes());
    pkt[28..32].copy_from_slice(&77u32.to_be_bytes());
    pkt[32] = 5 << 4;
    pkt[33] = flags;
    pkt[34..36].copy_from_slice(&500u16.to_be_bytes());
    pkt[40..].copy_from_slice(payload);
    if complete {
        let ip = csum(&[&pkt[..20]]);
        pkt[10..12].copy_from_slice(&ip.to_be_bytes());
        let tcp = csum(&[&pseudo(&pkt), &pkt[20..]]);
        pkt[36..38].copy_from_slice(&tcp.to_be_bytes());
    } else {
        let partial = !csum(&[&pseudo(&pkt)]);
        pkt[36..38].copy_from_slice(&partial.to_be_bytes());
    }
    pkt
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn split(pkt: &mut [u8], hdr: VirtioNetHdr) -> Vec<Vec<u8>> {
    let mut out = vec![vec![0u8; 2048]; 8];
    let mut sizes = vec![0usize; 8];
    let n = gso_split(pkt, hdr, &mut out, &mut sizes, 0, false).unwrap();
    out.iter()
        .zip(&sizes)
        .take(n)
        .map(|(b, &s)| b[..s].to_vec())
        .collect()
}

#[test]
fn tcp_super_packet_splits_into_valid_segments() {
    let payload = payload(3 * SEG - 300);
    // PSH|ACK: PSH only on the last segment after the split.
    let mut pkt = tcp4(9, 1000, 0x18, &payload, false);
    let hdr = VirtioNetHdr {
        flags: 1, // NEEDS_CSUM
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
        hdr_len: 40,
        gso_size: SEG as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    let mut wire = vec![0u8; VIRTIO_NET_HDR_LEN];
    hdr.encode(&mut wire).unwrap();
    let back = VirtioNetHdr::decode(&wire).unwrap();
    assert_eq!(
        (
            back.flags,
            back.gso_type,
            back.hdr_len,
            back.gso_size,
            back.csum_start,
            back.csum_offset
        ),
        (1, VIRTIO_NET_HDR_GSO_TCPV4, 40, SEG as u16, 20, 16)
    );

    let segs = split(&mut pkt, hdr);
    assert_eq!(segs.len(), 3);
    let mut seq = 1000u32;
    let mut joined = Vec::new();
    for (i, p) in segs.iter().enumerate() {
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        assert_eq!(csum(&[&p[..20]]), 0, "IPv4 header checksum of segment {i}");
        assert!(tcp_ok(p), "TCP checksum of segment {i}");
        assert_eq!(u32::from_be_bytes([p[24], p[25], p[26], p[27]]), seq);
        assert_eq!(
            p[33] & 0x08 != 0,
            i == segs.len() - 1,
            "PSH only on the last"
        );
        seq += (p.len() - 40) as u32;
        joined.extend_from_slice(&p[40..]);
    }
    assert_eq!(
        segs.iter().map(Vec::len).collect::<Vec<_>>(),
        [1040, 1040, 740]
    );
    assert_eq!(joined, payload);
}

/// What `decrypt` leaves in [`ToTun`] for four in-order segments of one
/// flow is coalesced into the first buffer (the others are not written),
/// with the virtio_net_hdr the kernel needs to split it again.
#[test]
fn decrypted_segments_coalesce_in_our_tun_buffers() {
    let data = payload(4 * SEG);
    let segs: Vec<Vec<u8>> = (0..4)
        .map(|k| {
            let flags = if k == 3 { 0x18 } else { 0x10 };
            let chunk = &data[k * SEG..(k + 1) * SEG];
            tcp4(9 + k as u16, 1000 + (k * SEG) as u32, flags, chunk, true)
        })
        .collect();
    let mut out = ToTun::new();
    for s in &segs {
        // A data message carries the packet plus 32 bytes.
        let buf = out.next(s.len() + 32);
        buf[VIRTIO_NET_HDR_LEN..VIRTIO_NET_HDR_LEN + s.len()].copy_from_slice(s);
        out.keep(s.len());
    }
    out.gro
        .apply_gro(&mut out.bufs[..out.n], VIRTIO_NET_HDR_LEN, false)
        .unwrap();

    let head = &mut out.bufs[0];
    assert_eq!(
        head.len(),
        VIRTIO_NET_HDR_LEN + 40 + 4 * SEG,
        "one super-packet"
    );
    let hdr = VirtioNetHdr::decode(&head[..VIRTIO_NET_HDR_LEN]).unwrap();
    assert_eq!(
        (hdr.flags, hdr.gso_type, hdr.hdr_len, hdr.gso_size),
        (1, VIRTIO_NET_HDR_GSO_TCPV4, 40, SEG as u16)
    );
    assert_eq!((hdr.csum_start, hdr.csum_offset), (20, 16));
    let pkt = &mut head[VIRTIO_NET_HDR_LEN..];
    assert_eq!(usize::from(u16::from_be_bytes([pkt[2], pkt[3]])), pkt.len());
    assert_eq!(csum(&[&pkt[..20]]), 0, "IPv4 header checksum");
    assert_eq!(pkt[33], 0x18, "the last segment's PSH");
    assert_eq!(&pkt[40..], &data[..]);
    // The kernel's split of it gives back the packets we decrypted.
    assert_eq!(split(pkt, hdr), segs);
}
