//! SNTP (RFC 4330) client: one request per server, pure parsing and
//! selection so the rules (stratum, root distance, kiss-o'-death) are
//! tested without a network. Setting the clock is the caller's choice.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Seconds between 1900 (NTP era 0) and 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// Answers further than this from a reference are not used (RFC 5905 MAXDIST).
pub const MAX_ROOT_DISTANCE: f64 = 1.5;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SntpError {
    #[error("answer is {0} bytes, shorter than an NTP header")]
    Short(usize),
    #[error("answer is not a server reply (mode {0})")]
    Mode(u8),
    #[error("answer does not match our request")]
    Origin,
    #[error("server sent kiss-o'-death {0:?}")]
    Kiss(String),
    #[error("server is not synchronised (stratum {0}, leap {1})")]
    Unsynchronised(u8, u8),
    #[error("server has an empty transmit time")]
    NoTime,
}

/// One usable answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub server: String,
    pub stratum: u8,
    /// Seconds to add to our clock.
    pub offset: f64,
    pub delay: f64,
    pub root_distance: f64,
}

pub fn to_ntp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

fn ntp_secs(ts: u64) -> f64 {
    (ts >> 32) as f64 + (ts & 0xffff_ffff) as f64 / 4_294_967_296.0
}

/// A client request carrying `transmit` (which the server echoes back).
pub fn request(transmit: u64) -> [u8; 48] {
    let mut p = [0u8; 48];
    p[0] = 0x23; // LI 0, version 4, mode 3 (client)
    p[40..48].copy_from_slice(&transmit.to_be_bytes());
    p
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Checks a reply to the request sent at `t1` (NTP time) and received at
/// `t4`, and computes offset, delay and root distance.
pub fn parse(server: &str, buf: &[u8], t1: u64, t4: u64) -> Result<Sample, SntpError> {
    if buf.len() < 48 {
        return Err(SntpError::Short(buf.len()));
    }
    let leap = buf[0] >> 6;
    let mode = buf[0] & 7;
    let stratum = buf[1];
    if mode != 4 && mode != 5 {
        return Err(SntpError::Mode(mode));
    }
    if stratum == 0 {
        let code: String = buf[12..16]
            .iter()
            .filter(|c| c.is_ascii_graphic())
            .map(|&c| c as char)
            .collect();
        return Err(SntpError::Kiss(code));
    }
    if be64(&buf[24..32]) != t1 {
        return Err(SntpError::Origin);
    }
    if leap == 3 || stratum > 15 {
        return Err(SntpError::Unsynchronised(stratum, leap));
    }
    let t2 = be64(&buf[32..40]);
    let t3 = be64(&buf[40..48]);
    if t3 == 0 {
        return Err(SntpError::NoTime);
    }
    let root_delay = f64::from(be32(&buf[4..8])) / 65536.0;
    let root_disp = f64::from(be32(&buf[8..12])) / 65536.0;
    let (t1, t2, t3, t4) = (ntp_secs(t1), ntp_secs(t2), ntp_secs(t3), ntp_secs(t4));
    let offset = ((t2 - t1) + (t3 - t4)) / 2.0;
    let delay = ((t4 - t1) - (t3 - t2)).max(0.0);
    Ok(Sample {
        server: server.to_string(),
        stratum,
        offset,
        delay,
        root_distance: root_delay / 2.0 + root_disp + delay / 2.0,
    })
}

/// The best sample: within MAXDIST, lowest root distance, then stratum.
pub fn select(samples: &[Sample]) -> Option<&Sample> {
    samples
        .iter()
        .filter(|s| s.root_distance <= MAX_ROOT_DISTANCE)
        .min_by(|a, b| {
            a.root_distance
                .total_cmp(&b.root_distance)
                .then(a.stratum.cmp(&b.stratum))
        })
}

/// `host`, `ip` or `ip:port` / `host:port`, default port 123.
pub async fn resolve(server: &str) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(sa) = server.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    if let Ok(ip) = server.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, 123)]);
    }
    let target = if server.contains(':') {
        server.to_string()
    } else {
        format!("{server}:123")
    };
    Ok(tokio::net::lookup_host(target).await?.collect())
}

/// Asks one server once, with a bounded wait.
pub async fn query(server: &str, wait: Duration) -> Result<Sample, String> {
    let addrs = resolve(server)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let addr = *addrs
        .first()
        .ok_or_else(|| format!("{server}: no address"))?;
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().map_err(|_| "bind".to_string())?
    } else {
        "[::]:0".parse().map_err(|_| "bind".to_string())?
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let t1 = to_ntp(SystemTime::now());
    sock.send_to(&request(t1), addr)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let mut buf = [0u8; 128];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (n, from) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf))
            .await
            .map_err(|_| format!("{server}: no answer within {}s", wait.as_secs()))?
            .map_err(|e| format!("{server}: {e}"))?;
        let t4 = to_ntp(SystemTime::now());
        if from.ip() != addr.ip() {
            continue;
        }
        match parse(server, &buf[..n], t1, t4) {
            Err(SntpError::Origin) => continue,
            r => return r.map_err(|e| format!("{server}: {e}")),
        }
    }
}

/// Steps the realtime clock by `offset` seconds.
pub fn step_clock(offset: f64) -> std::io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(std::io::Error::other)?
        .as_secs_f64();
    let target = now + offset;
    let ts = libc::timespec {
        tv_sec: target.trunc() as libc::time_t,
        tv_nsec: (target.fract() * 1e9) as libc::c_long,
    };
    // SAFETY: `ts` is a valid, initialised timespec that outlives the call;
    // clock_settime only reads it.
    let rc = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: f64) -> u64 {
        let s = secs.trunc() as u64;
        let f = (secs.fract() * 4_294_967_296.0) as u64;
        (s << 32) | f
    }

    fn reply(
        stratum: u8,
        leap: u8,
        origin: u64,
        t2: f64,
        t3: f64,
        rdelay: u32,
        rdisp: u32,
    ) -> [u8; 48] {
        let mut p = [0u8; 48];
        p[0] = (leap << 6) | (4 << 3) | 4;
        p[1] = stratum;
        p[4..8].copy_from_slice(&rdelay.to_be_bytes());
        p[8..12].copy_from_slice(&rdisp.to_be_bytes());
        p[24..32].copy_from_slice(&origin.to_be_bytes());
        p[32..40].copy_from_slice(&ts(t2).to_be_bytes());
        p[40..48].copy_from_slice(&ts(t3).to_be_bytes());
        p
    }

    #[test]
    fn offset_and_delay() {
        // we send at 1000, server receives at 1010.5, answers at 1010.6, we get it at 1001.1
        let t1 = ts(1000.0);
        let r = reply(2, 0, t1, 1010.5, 1010.6, 0, 0);
        let s = parse("x", &r, t1, ts(1001.1)).unwrap();
        assert!((s.offset - 10.0).abs() < 1e-3, "{}", s.offset);
        assert!((s.delay - 1.0).abs() < 1e-3, "{}", s.delay);
        assert!((s.root_distance - 0.5).abs() < 1e-3);
    }

    #[test]
    fn kiss_of_death_is_refused_with_its_code() {
        let t1 = ts(1.0);
        let mut r = reply(0, 3, t1, 1.0, 1.0, 0, 0);
        r[12..16].copy_from_slice(b"RATE");
        assert_eq!(parse("x", &r, t1, t1), Err(SntpError::Kiss("RATE".into())));
    }

    #[test]
    fn unsynchronised_and_mismatched_answers_are_refused() {
        let t1 = ts(1.0);
        let r = reply(3, 3, t1, 1.0, 1.0, 0, 0);
        assert!(matches!(
            parse("x", &r, t1, t1),
            Err(SntpError::Unsynchronised(3, 3))
        ));
        let r = reply(16, 0, t1, 1.0, 1.0, 0, 0);
        assert!(matches!(
            parse("x", &r, t1, t1),
            Err(SntpError::Unsynchronised(16, 0))
        ));
        let r = reply(2, 0, ts(2.0), 1.0, 1.0, 0, 0);
        assert_eq!(parse("x", &r, t1, t1), Err(SntpError::Origin));
        assert_eq!(parse("x", &r[..20], t1, t1), Err(SntpError::Short(20)));
        let mut r = reply(2, 0, t1, 1.0, 1.0, 0, 0);
        r[0] = (4 << 3) | 3;
        assert_eq!(parse("x", &r, t1, t1), Err(SntpError::Mode(3)));
    }

    #[test]
    fn selection_prefers_root_distance_then_stratum_and_drops_far_ones() {
        let s = |n: &str, stratum, rd| Sample {
            server: n.into(),
            stratum,
            offset: 0.0,
            delay: 0.0,
            root_distance: rd,
        };
        let v = vec![
            s("a", 1, 0.2),
            s("b", 3, 0.05),
            s("c", 2, 0.05),
            s("d", 1, 2.0),
        ];
        assert_eq!(select(&v).unwrap().server, "c");
        assert!(select(&[s("far", 1, 1.6)]).is_none());
    }

    #[test]
    fn request_is_a_v4_client_packet() {
        let p = request(42);
        assert_eq!(p[0], 0x23);
        assert_eq!(be64(&p[40..48]), 42);
    }
}
