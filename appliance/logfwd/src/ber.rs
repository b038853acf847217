//! A minimal BER encoder for SNMP traps (RFC 3416 `SNMPv2-Trap-PDU`, in
//! an RFC 1901 community message or, through `usm`, an SNMPv3 message): the few types a trap carries, as pure
//! functions checked byte for byte against hand-decoded messages.

/// One variable binding's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Oid(Vec<u32>),
    /// Hundredths of a second (`sysUpTime`).
    TimeTicks(u32),
}

/// `sysUpTime.0`
pub const SYS_UPTIME: &[u32] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
/// `snmpTrapOID.0`
pub const SNMP_TRAP_OID: &[u32] = &[1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0];

pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(body);
    out
}

/// Two's-complement, shortest form (INTEGER and its application types).
fn int_body(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// An INTEGER's whole TLV.
pub fn integer(v: i64) -> Vec<u8> {
    tlv(0x02, &int_body(v))
}

/// TimeTicks and other unsigned 32-bit types: never negative on the wire.
fn uint_body(v: u32) -> Vec<u8> {
    int_body(i64::from(v))
}

fn oid_body(oid: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    let (first, rest) = match oid {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        [a] => (a * 40, &[][..]),
        [] => (0, &[][..]),
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            chunk.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        out.extend(chunk.into_iter().rev());
    }
    out
}

fn value(v: &Value) -> Vec<u8> {
    match v {
        Value::Text(s) => tlv(0x04, s.as_bytes()),
        Value::Oid(o) => tlv(0x06, &oid_body(o)),
        Value::TimeTicks(t) => tlv(0x43, &uint_body(*t)),
    }
}

/// An `SNMPv2-Trap-PDU`: `sysUpTime.0` and `snmpTrapOID.0` first, as
/// RFC 3416 section 4.2.6 requires, then `binds`.
pub fn trap_pdu(
    request_id: i32,
    uptime: u32,
    trap: &[u32],
    binds: &[(Vec<u32>, Value)],
) -> Vec<u8> {
    let mut list = Vec::new();
    let head = [
        (SYS_UPTIME.to_vec(), Value::TimeTicks(uptime)),
        (SNMP_TRAP_OID.to_vec(), Value::Oid(trap.to_vec())),
    ];
    for (oid, v) in head.iter().chain(binds) {
        let mut bind = tlv(0x06, &oid_body(oid));
        bind.extend(value(v));
        list.extend(tlv(0x30, &bind));
    }
    let mut pdu = integer(i64::from(request_id));
    pdu.extend(integer(0)); // error-status
    pdu.extend(integer(0)); // error-index
    pdu.extend(tlv(0x30, &list));
    tlv(0xa7, &pdu) // [7] IMPLICIT: SNMPv2-Trap-PDU
}

/// An SNMPv2c trap message around `pdu` (`trap_pdu`).
pub fn v2c_message(community: &str, pdu: &[u8]) -> Vec<u8> {
    let mut msg = integer(1); // version: v2c
    msg.extend(tlv(0x04, community.as_bytes()));
    msg.extend_from_slice(pdu);
    tlv(0x30, &msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_shortest_twos_complement() {
        assert_eq!(int_body(0), [0]);
        assert_eq!(int_body(127), [0x7f]);
        assert_eq!(int_body(128), [0x00, 0x80]);
        assert_eq!(int_body(256), [0x01, 0x00]);
        assert_eq!(int_body(-1), [0xff]);
        assert_eq!(int_body(-129), [0xff, 0x7f]);
        assert_eq!(uint_body(u32::MAX), [0x00, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn oids_pack_the_first_two_arcs_and_base128_the_rest() {
        assert_eq!(oid_body(&[1, 3, 6, 1]), [0x2b, 6, 1]);
        // 32473 = 0x7ed9 -> 0x81 0xfd 0x59
        assert_eq!(
            oid_body(&[1, 3, 6, 1, 4, 1, 32473]),
            [0x2b, 6, 1, 4, 1, 0x81, 0xfd, 0x59]
        );
        assert_eq!(oid_body(&[2, 999]), [0x88, 0x37]);
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let t = tlv(0x04, &[b'a'; 200]);
        assert_eq!(&t[..3], &[0x04, 0x81, 200]);
        let t = tlv(0x04, &[b'a'; 300]);
        assert_eq!(&t[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn a_trap_message_has_the_rfc_3416_shape() {
        let pdu = trap_pdu(
            1,
            100,
            &[1, 3, 6, 1, 4, 1, 32473, 1, 0, 1],
            &[(
                vec![1, 3, 6, 1, 4, 1, 32473, 1, 1, 1],
                Value::Text("net".into()),
            )],
        );
        let m = v2c_message("public", &pdu);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            0x30, 0x56,
              0x02, 0x01, 0x01,                                   // version 1 (v2c)
              0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c',     // community
              0xa7, 0x49,                                         // SNMPv2-Trap-PDU
                0x02, 0x01, 0x01,                                 // request-id
                0x02, 0x01, 0x00, 0x02, 0x01, 0x00,               // error-status, -index
                0x30, 0x3e,
                  0x30, 0x0d, 0x06, 0x08, 0x2b, 6, 1, 2, 1, 1, 3, 0, 0x43, 0x01, 100,
                  0x30, 0x19, 0x06, 0x0a, 0x2b, 6, 1, 6, 3, 1, 1, 4, 1, 0,
                    0x06, 0x0b, 0x2b, 6, 1, 4, 1, 0x81, 0xfd, 0x59, 1, 0, 1,
                  0x30, 0x12, 0x06, 0x0b, 0x2b, 6, 1, 4, 1, 0x81, 0xfd, 0x59, 1, 1, 1,
                    0x04, 0x03, b'n', b'e', b't',
        ];
        assert_eq!(m, want);
    }
}
