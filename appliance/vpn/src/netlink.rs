//! Interface state through rtnetlink: link up, tunnel addresses, routes
//! for the peers' allowed IPs. Each call changes one thing, so a reload
//! only touches what differs.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("{what}: {source}")]
    Request {
        what: String,
        source: rtnetlink::Error,
    },
    #[error("interface {0} does not exist")]
    NoLink(String),
}

pub struct Net {
    handle: Handle,
}

/// Whether the kernel answered "already exists" / "no such thing", which a
/// reconcile treats as done.
fn errno_is(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}

impl Net {
    /// Opens a netlink connection served by a task on the current runtime.
    pub fn new() -> Result<Net, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Net { handle })
    }

    pub async fn link_index(&self, name: &str) -> Result<u32, NetError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(l.header.index),
            Ok(None) => Err(NetError::NoLink(name.into())),
            Err(e) if errno_is(&e, libc::ENODEV) => Err(NetError::NoLink(name.into())),
            Err(source) => Err(NetError::Request {
                what: format!("look up {name}"),
                source,
            }),
        }
    }

    pub async fn set_up(&self, index: u32, mtu: u32) -> Result<(), NetError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
            .execute()
            .await
            .map_err(|source| NetError::Request {
                what: "set the tunnel up".into(),
                source,
            })
    }

    pub async fn add_address(&self, index: u32, ip: IpAddr, len: u8) -> Result<(), NetError> {
        match self.handle.address().add(index, ip, len).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno_is(&e, libc::EEXIST) => Ok(()),
            Err(source) => Err(NetError::Request {
                what: format!("add address {ip}/{len}"),
                source,
            }),
        }
    }

    pub async fn del_address(&self, index: u32, ip: IpAddr, len: u8) -> Result<(), NetError> {
        let mut addrs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(ip)
            .set_prefix_length_filter(len)
            .execute();
        while let Ok(Some(msg)) = addrs.try_next().await {
            if let Err(e) = self.handle.address().del(msg).execute().await
                && !errno_is(&e, libc::EADDRNOTAVAIL)
            {
                return Err(NetError::Request {
                    what: format!("remove address {ip}/{len}"),
                    source: e,
                });
            }
        }
        Ok(())
    }

    fn route(
        index: u32,
        ip: IpAddr,
        len: u8,
    ) -> Result<rtnetlink::packet_route::route::RouteMessage, NetError> {
        RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(ip, len)
            .map(|b| b.output_interface(index).build())
            .map_err(|e| NetError::Request {
                what: format!("route {ip}/{len}"),
                source: rtnetlink::Error::InvalidNla(e.to_string()),
            })
    }

    pub async fn add_route(&self, index: u32, ip: IpAddr, len: u8) -> Result<(), NetError> {
        match self
            .handle
            .route()
            .add(Self::route(index, ip, len)?)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno_is(&e, libc::EEXIST) => Ok(()),
            Err(source) => Err(NetError::Request {
                what: format!("add route {ip}/{len}"),
                source,
            }),
        }
    }

    pub async fn del_route(&self, index: u32, ip: IpAddr, len: u8) -> Result<(), NetError> {
        match self
            .handle
            .route()
            .del(Self::route(index, ip, len)?)
            .execute()
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if errno_is(&e, libc::ESRCH) => Ok(()),
            Err(source) => Err(NetError::Request {
                what: format!("remove route {ip}/{len}"),
                source,
            }),
        }
    }
}
