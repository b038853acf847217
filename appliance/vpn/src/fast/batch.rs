//! Outgoing datagrams laid end to end in one buffer, grouped for UDP
//! segmentation offload: a group is a run of datagrams to one endpoint
//! of one size (the last may be shorter), sent with a single `sendmsg`
//! carrying `UDP_SEGMENT` = that size. Encryption writes straight into
//! the buffer, so grouping costs no copy.

use std::net::SocketAddr;

/// The most a GSO send may carry (the UDP length field).
const MAX_GROUP_BYTES: usize = 65_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub dest: SocketAddr,
    pub start: usize,
    pub len: usize,
    /// Size of every datagram but possibly the last.
    pub stride: usize,
    pub segments: usize,
}

impl Group {
    /// Whether a datagram of `n` bytes to `dest` can extend this group.
    fn takes(&self, dest: SocketAddr, n: usize, max_segments: usize) -> bool {
        self.dest == dest
            && n <= self.stride
            // A shorter datagram ends a group: only the last may be short.
            && self.len == self.stride * self.segments
            && self.segments < max_segments
            && self.len + n <= MAX_GROUP_BYTES
    }
}

pub struct Batch {
    buf: Vec<u8>,
    used: usize,
    groups: Vec<Group>,
    max_segments: usize,
}

impl Batch {
    /// `capacity` bytes of datagrams per flush; `max_segments` = 1 turns
    /// grouping off (no GSO).
    pub fn new(capacity: usize, max_segments: usize) -> Batch {
        Batch {
            buf: vec![0; capacity],
            used: 0,
            groups: Vec::new(),
            max_segments: max_segments.max(1),
        }
    }

    /// Room for the next datagram, or `None` when the batch must be
    /// flushed first.
    pub fn room(&mut self, need: usize) -> Option<&mut [u8]> {
        self.buf.get_mut(self.used..self.used + need)
    }

    /// Records that `n` bytes were written at the start of [`Batch::room`].
    pub fn commit(&mut self, dest: SocketAddr, n: usize) {
        match self.groups.last_mut() {
            Some(g) if g.takes(dest, n, self.max_segments) => {
                g.len += n;
                g.segments += 1;
            }
            _ => self.groups.push(Group {
                dest,
                start: self.used,
                len: n,
                stride: n,
                segments: 1,
            }),
        }
        self.used += n;
    }

    pub fn groups(&self) -> impl Iterator<Item = (Group, &[u8])> {
        self.groups
            .iter()
            .map(|g| (*g, &self.buf[g.start..g.start + g.len]))
    }

    pub fn clear(&mut self) {
        self.used = 0;
        self.groups.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(b: &mut Batch, dest: SocketAddr, n: usize, byte: u8) {
        let room = b.room(n).unwrap();
        room.fill(byte);
        b.commit(dest, n);
    }

    #[test]
    fn groups_equal_sizes_per_destination() {
        let a: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let c: SocketAddr = "192.0.2.2:1".parse().unwrap();
        let mut b = Batch::new(10_000, 64);
        fill(&mut b, a, 100, 1);
        fill(&mut b, a, 100, 2);
        fill(&mut b, a, 60, 3); // short: closes the group
        fill(&mut b, a, 60, 4);
        fill(&mut b, c, 60, 5);
        fill(&mut b, c, 80, 6); // longer than the stride: new group
        let g: Vec<_> = b.groups().collect();
        let shape: Vec<_> = g
            .iter()
            .map(|(g, _)| (g.dest, g.segments, g.stride, g.len))
            .collect();
        assert_eq!(
            shape,
            vec![
                (a, 3, 100, 260),
                (a, 1, 60, 60),
                (c, 1, 60, 60),
                (c, 1, 80, 80)
            ]
        );
        assert_eq!(g[0].1[0], 1);
        assert_eq!(g[0].1[100], 2);
        assert_eq!(g[0].1[259], 3);
        assert_eq!(g[3].1, &[6u8; 80][..]);
        b.clear();
        assert_eq!(b.groups().count(), 0);
        assert!(b.room(10_000).is_some());
        assert!(b.room(10_001).is_none());
    }

    #[test]
    fn respects_segment_and_byte_limits() {
        let a: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let mut one = Batch::new(10_000, 1);
        fill(&mut one, a, 100, 0);
        fill(&mut one, a, 100, 0);
        assert_eq!(one.groups().count(), 2);
        let mut big = Batch::new(200_000, 1_000);
        for _ in 0..60 {
            fill(&mut big, a, 1452, 0);
        }
        let segs: Vec<_> = big.groups().map(|(g, _)| g.segments).collect();
        assert_eq!(segs, vec![44, 16]);
        assert!(big.groups().all(|(g, _)| g.len <= MAX_GROUP_BYTES));
    }
}
