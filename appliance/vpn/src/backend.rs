//! Where WireGuard runs. Today: boringtun in this process, driven over
//! its UAPI protocol on a private socketpair (no `/var/run/wireguard`
//! socket, no signal handlers taken from us). The kernel module would be a
//! second implementation over genetlink; the build machines have no
//! WireGuard module and cannot load one, so it is not written yet.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use boringtun::device::{DeviceConfig, DeviceHandle};

use crate::keys::{Key, from_hex};
use crate::plan::{PeerSpec, uapi_add, uapi_device, uapi_remove};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot create the tunnel device {name}: {reason}")]
    Create { name: String, reason: String },
    #[error("tunnel control channel: {0}")]
    Io(#[from] std::io::Error),
    #[error("the tunnel refused the change ({what}): errno {errno} ({})", std::io::Error::from_raw_os_error(*errno))]
    Refused { what: &'static str, errno: i32 },
    #[error("the tunnel sent an unreadable answer: {0}")]
    Protocol(String),
}

/// Live per-peer counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStatus {
    pub public_key: Key,
    pub endpoint: Option<SocketAddr>,
    /// Time since the last completed handshake.
    pub handshake_age: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The operations the service needs from a WireGuard implementation.
pub trait Backend: Send {
    fn kind(&self) -> &'static str;
    fn set_device(
        &mut self,
        private_key: Option<&Key>,
        listen_port: Option<u16>,
    ) -> Result<(), BackendError>;
    fn remove_peer(&mut self, key: &Key) -> Result<(), BackendError>;
    fn add_peer(&mut self, peer: &PeerSpec) -> Result<(), BackendError>;
    fn status(&mut self) -> Result<Vec<PeerStatus>, BackendError>;
}

/// Whether the kernel implementation exists on this machine.
pub fn kernel_available() -> bool {
    std::path::Path::new("/sys/module/wireguard").exists()
}

pub struct Boringtun {
    // Dropping the handle stops the device threads and closes the TUN.
    _device: DeviceHandle,
    api: BufReader<UnixStream>,
}

impl Boringtun {
    /// Creates the TUN interface `name` with one device thread (fastest on
    /// two cores, see PEERS.md) and a private UAPI channel.
    pub fn create(name: &str) -> Result<Boringtun, BackendError> {
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_read_timeout(Some(Duration::from_secs(5)))?;
        ours.set_write_timeout(Some(Duration::from_secs(5)))?;
        let config = DeviceConfig {
            n_threads: 1,
            use_connected_socket: true,
            use_multi_queue: false,
            // boringtun takes ownership of this descriptor.
            uapi_fd: theirs.into_raw_fd(),
        };
        let device = DeviceHandle::new(name, config).map_err(|e| BackendError::Create {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Boringtun {
            _device: device,
            api: BufReader::new(ours),
        })
    }

    fn set(&mut self, what: &'static str, body: &str) -> Result<(), BackendError> {
        let msg = format!("set=1\n{body}\n");
        self.api.get_mut().write_all(msg.as_bytes())?;
        let lines = self.read_answer()?;
        match parse_errno(&lines) {
            Some(0) => Ok(()),
            Some(errno) => Err(BackendError::Refused { what, errno }),
            None => Err(BackendError::Protocol(lines.join("|"))),
        }
    }

    /// Lines up to the blank line that ends an answer.
    fn read_answer(&mut self) -> Result<Vec<String>, BackendError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.api.read_line(&mut line)? == 0 {
                return Err(BackendError::Protocol("channel closed".into()));
            }
            let line = line.trim_end().to_string();
            if line.is_empty() {
                // `get` answers end with "errno=N" then a blank line;
                // a blank line before it is not possible in either answer.
                if lines
                    .last()
                    .is_some_and(|l: &String| l.starts_with("errno="))
                {
                    return Ok(lines);
                }
                continue;
            }
            lines.push(line);
        }
    }
}

fn parse_errno(lines: &[String]) -> Option<i32> {
    lines.last()?.strip_prefix("errno=")?.parse().ok()
}

/// Parses a UAPI `get=1` answer into per-peer status. boringtun reports
/// `last_handshake_time_sec` as the time *since* the handshake.
pub fn parse_get(lines: &[String]) -> Vec<PeerStatus> {
    let mut out: Vec<PeerStatus> = Vec::new();
    let mut hs_sec: Option<u64> = None;
    for line in lines {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k == "public_key" {
            if let Some(key) = from_hex(v) {
                out.push(PeerStatus {
                    public_key: key,
                    ..PeerStatus::default()
                });
            }
            hs_sec = None;
            continue;
        }
        let Some(p) = out.last_mut() else { continue };
        match k {
            "endpoint" => p.endpoint = v.parse().ok(),
            "rx_bytes" => p.rx_bytes = v.parse().unwrap_or(0),
            "tx_bytes" => p.tx_bytes = v.parse().unwrap_or(0),
            "last_handshake_time_sec" => hs_sec = v.parse().ok(),
            "last_handshake_time_nsec" => {
                if let Some(s) = hs_sec {
                    let ns = v.parse().unwrap_or(0u32);
                    p.handshake_age = Some(Duration::new(s, ns));
                }
            }
            _ => {}
        }
    }
    out
}

impl Backend for Boringtun {
    fn kind(&self) -> &'static str {
        "boringtun"
    }

    fn set_device(
        &mut self,
        private_key: Option<&Key>,
        listen_port: Option<u16>,
    ) -> Result<(), BackendError> {
        if private_key.is_none() && listen_port.is_none() {
            return Ok(());
        }
        self.set("device settings", &uapi_device(private_key, listen_port))
    }

    fn remove_peer(&mut self, key: &Key) -> Result<(), BackendError> {
        self.set("remove peer", &uapi_remove(key))
    }

    fn add_peer(&mut self, peer: &PeerSpec) -> Result<(), BackendError> {
        self.set("add peer", &uapi_add(peer))
    }

    fn status(&mut self) -> Result<Vec<PeerStatus>, BackendError> {
        self.api.get_mut().write_all(b"get=1\n")?;
        let lines = self.read_answer()?;
        match parse_errno(&lines) {
            Some(0) => Ok(parse_get(&lines)),
            Some(errno) => Err(BackendError::Refused {
                what: "read status",
                errno,
            }),
            None => Err(BackendError::Protocol(lines.join("|"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_get_answer() {
        let lines: Vec<String> = format!(
            "own_public_key={a}\nlisten_port=51820\npublic_key={a}\nendpoint=192.0.2.1:4000\nallowed_ip=10.8.0.2/32\nlast_handshake_time_sec=3\nlast_handshake_time_nsec=5\nrx_bytes=100\ntx_bytes=200\npublic_key={b}\nrx_bytes=0\ntx_bytes=0\nerrno=0",
            a = "01".repeat(32),
            b = "02".repeat(32)
        )
        .lines()
        .map(String::from)
        .collect();
        let s = parse_get(&lines);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].rx_bytes, 100);
        assert_eq!(s[0].tx_bytes, 200);
        assert_eq!(s[0].handshake_age, Some(Duration::new(3, 5)));
        assert_eq!(s[0].endpoint, Some("192.0.2.1:4000".parse().unwrap()));
        assert_eq!(s[1].handshake_age, None);
        assert_eq!(parse_errno(&lines), Some(0));
    }
}
