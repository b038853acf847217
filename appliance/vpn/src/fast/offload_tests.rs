//! The contract the packet path relies on from tun-rs: a TCP super-packet
//! as the kernel hands it over (virtio_net_hdr with partial checksum)
//! comes out as MTU-sized packets with complete, valid checksums and
//! consecutive sequence numbers.

use tun_rs::{VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_LEN, VirtioNetHdr, gso_split};

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

fn tcp_ok(pkt: &[u8]) -> bool {
    let tcp = &pkt[20..];
    let len = (tcp.len() as u16).to_be_bytes();
    let pseudo = [&pkt[12..20], &[0, 6], &len[..]].concat();
    csum(&[&pseudo, tcp]) == 0
}

#[test]
fn tcp_super_packet_splits_into_valid_segments() {
    const SEG: usize = 1000;
    let payload: Vec<u8> = (0..3 * SEG - 300).map(|i| i as u8).collect();
    let total = 40 + payload.len();
    let mut pkt = vec![0u8; total];
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    pkt[8] = 64;
    pkt[9] = 6;
    pkt[12..16].copy_from_slice(&[10, 7, 0, 1]);
    pkt[16..20].copy_from_slice(&[10, 7, 0, 2]);
    pkt[20..22].copy_from_slice(&5201u16.to_be_bytes());
    pkt[22..24].copy_from_slice(&40000u16.to_be_bytes());
    pkt[24..28].copy_from_slice(&1000u32.to_be_bytes());
    pkt[32] = 5 << 4;
    pkt[33] = 0x18; // PSH|ACK: PSH only on the last segment after the split
    pkt[40..].copy_from_slice(&payload);
    // The kernel leaves the pseudo-header sum in the TCP checksum field.
    let len = ((total - 20) as u16).to_be_bytes();
    let partial = !csum(&[&pkt[12..20], &[0, 6], &len[..]]);
    pkt[36..38].copy_from_slice(&partial.to_be_bytes());
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

    let mut out = vec![vec![0u8; 2048]; 8];
    let mut sizes = vec![0usize; 8];
    let n = gso_split(&mut pkt, hdr, &mut out, &mut sizes, 0, false).unwrap();
    assert_eq!(n, 3);
    let mut seq = 1000u32;
    let mut joined = Vec::new();
    for (i, (buf, &size)) in out.iter().zip(&sizes).take(n).enumerate() {
        let p = &buf[..size];
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), size);
        assert_eq!(csum(&[&p[..20]]), 0, "IPv4 header checksum of segment {i}");
        assert!(tcp_ok(p), "TCP checksum of segment {i}");
        assert_eq!(u32::from_be_bytes([p[24], p[25], p[26], p[27]]), seq);
        assert_eq!(p[33] & 0x08 != 0, i == n - 1, "PSH only on the last");
        seq += (size - 40) as u32;
        joined.extend_from_slice(&p[40..]);
    }
    assert_eq!(sizes[..n], [1040, 1040, 740]);
    assert_eq!(joined, payload);
}
