//! The `net` service: links, addresses, routes and VLANs through rtnetlink,
//! DHCPv4 (mozim), the resolver file and SNTP, reconciled from the
//! `[network]` config section and answered on `<state>/run/net.sock`.
//!
//! It only ever removes or changes what it added itself (marked in the
//! kernel, see [`plan`]); it never touches another service's crate or
//! config section, and when `network.manage` is false it only observes.

pub mod dhcp;
pub mod netlink;
pub mod plan;
pub mod resolv;
mod service;
pub mod sntp;
pub mod status;

use std::path::Path;

/// Why the service could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration from the supervisor: {0}")]
    View(#[from] alpharen_rpc::RpcError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("{0}")]
    Plan(String),
}

/// Runs the service until SIGTERM: `alpharen serve net`.
pub fn serve(state_dir: &Path, dev: bool) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(service::run(state_dir.to_path_buf(), dev))
}
