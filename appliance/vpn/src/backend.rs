//! Where WireGuard runs. Today: boringtun's protocol core in this process
//! with our own packet path ([`crate::fast`]). The kernel module would be
//! a second implementation over genetlink; the build machines have no
//! WireGuard module and cannot load one, so it is not written yet.

use std::net::SocketAddr;
use std::time::Duration;

use crate::keys::Key;
use crate::plan::PeerSpec;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot create the tunnel device {name}: {reason}")]
    Create { name: String, reason: String },
    #[error("tunnel socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the tunnel refused the change ({what}): errno {errno} ({})", std::io::Error::from_raw_os_error(*errno))]
    Refused { what: &'static str, errno: i32 },
    #[error("tunnel failure: {0}")]
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
