//! The kernel side: read links, addresses and routes into a [`Actual`] and
//! carry out [`Action`]s, all through rtnetlink.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, AddressProtocol};
use rtnetlink::packet_route::link::{InfoData, InfoVlan, LinkAttribute, LinkFlags, LinkInfo};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::{Handle, LinkUnspec, LinkVlan, RouteMessageBuilder};

use crate::Error;
use crate::plan::{Action, Actual, Addr, LinkState, RouteKey, VLAN_ALIAS};

const RT_TABLE_MAIN: u8 = 254;

fn mac_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads every link with its addresses and main-table unicast routes.
pub async fn snapshot(handle: &Handle) -> Result<Actual, Error> {
    let mut links = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream.try_next().await? {
        let mut l = LinkState {
            index: msg.header.index,
            up: msg.header.flags.contains(LinkFlags::Up),
            carrier: msg.header.flags.contains(LinkFlags::LowerUp),
            ..Default::default()
        };
        let mut parent = None;
        let mut vlan_id = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(a) => l.mac = mac_text(a),
                LinkAttribute::Mtu(m) => l.mtu = *m,
                LinkAttribute::IfAlias(a) => l.alias = Some(a.clone()),
                LinkAttribute::Link(p) => parent = Some(*p),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Data(InfoData::Vlan(v)) = i {
                            for x in v {
                                if let InfoVlan::Id(id) = x {
                                    vlan_id = Some(*id);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(p), Some(id)) = (parent, vlan_id) {
            l.vlan = Some((p, id));
        }
        links.push(l);
    }
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await? {
        let mut ip = None;
        let mut proto = 0u8;
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(a) => ip = Some(*a),
                AddressAttribute::Address(a) if ip.is_none() => ip = Some(*a),
                AddressAttribute::Protocol(p) => proto = u8::from(*p),
                _ => {}
            }
        }
        if let (Some(ip), Some(l)) = (ip, links.iter_mut().find(|l| l.index == msg.header.index)) {
            l.addrs.push((
                Addr {
                    ip,
                    prefix: msg.header.prefix_len,
                },
                proto,
            ));
        }
    }
    for v6 in [false, true] {
        let query = if v6 {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        };
        let mut routes = handle.route().get(query).execute();
        while let Some(msg) = routes.try_next().await? {
            if let Some((oif, key, proto)) = route_of(&msg)
                && let Some(l) = links.iter_mut().find(|l| l.index == oif)
            {
                l.routes.push((key, proto));
            }
        }
    }
    Ok(Actual { links })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(x) => Some(IpAddr::V4(*x)),
        RouteAddress::Inet6(x) => Some(IpAddr::V6(*x)),
        _ => None,
    }
}

fn route_of(msg: &RouteMessage) -> Option<(u32, RouteKey, u8)> {
    if msg.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(msg.header.table);
    let mut dest = None;
    let mut via = None;
    let mut oif = None;
    let mut metric = 0;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dest = route_ip(a),
            RouteAttribute::Gateway(a) => via = route_ip(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    if table != u32::from(RT_TABLE_MAIN) {
        return None;
    }
    let dest = dest.unwrap_or(match msg.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    });
    Some((
        oif?,
        RouteKey {
            dest,
            prefix: msg.header.destination_prefix_length,
            via,
            metric,
        },
        u8::from(msg.header.protocol),
    ))
}

fn route_message(index: u32, r: &RouteKey, proto: u8) -> Result<RouteMessage, Error> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.dest, r.prefix)
        .map_err(|e| Error::Plan(e.to_string()))?
        .output_interface(index)
        .priority(r.metric)
        .protocol(RouteProtocol::Other(proto));
    if let Some(v) = r.via {
        b = b.gateway(v).map_err(|e| Error::Plan(e.to_string()))?;
    }
    Ok(b.build())
}

fn addr_message(index: u32, a: &Addr) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = if a.ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.prefix_len = a.prefix;
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(a.ip));
    m
}

/// Carries out one action. Deleting something already gone is success.
pub async fn apply(handle: &Handle, action: &Action) -> Result<(), Error> {
    let r = match action {
        Action::CreateVlan { name, parent, id } => {
            handle
                .link()
                .add(LinkVlan::new(name, *parent, *id).up().build())
                .execute()
                .await?;
            let mut s = handle.link().get().match_name(name.clone()).execute();
            if let Some(msg) = s.try_next().await? {
                handle
                    .link()
                    .set(
                        LinkUnspec::new_with_index(msg.header.index)
                            .alias(VLAN_ALIAS)
                            .build(),
                    )
                    .execute()
                    .await?;
            }
            Ok(())
        }
        Action::DeleteLink { index, .. } => handle.link().del(*index).execute().await,
        Action::SetUp { index, .. } => {
            handle
                .link()
                .set(LinkUnspec::new_with_index(*index).up().build())
                .execute()
                .await
        }
        Action::SetMtu { index, mtu, .. } => {
            handle
                .link()
                .set(LinkUnspec::new_with_index(*index).mtu(*mtu).build())
                .execute()
                .await
        }
        Action::AddAddr {
            index, addr, proto, ..
        } => {
            let mut req = handle.address().add(*index, addr.ip, addr.prefix);
            req.message_mut()
                .attributes
                .push(AddressAttribute::Protocol(AddressProtocol::Other(*proto)));
            req.execute().await
        }
        Action::DelAddr { index, addr, .. } => {
            handle
                .address()
                .del(addr_message(*index, addr))
                .execute()
                .await
        }
        Action::AddRoute {
            index,
            route,
            proto,
            ..
        } => {
            handle
                .route()
                .add(route_message(*index, route, *proto)?)
                .execute()
                .await
        }
        Action::DelRoute { index, route, .. } => {
            // protocol 0 matches any when deleting
            handle
                .route()
                .del(route_message(*index, route, 0)?)
                .execute()
                .await
        }
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if is_gone(&e) && is_removal(action) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn is_removal(a: &Action) -> bool {
    matches!(
        a,
        Action::DelAddr { .. } | Action::DelRoute { .. } | Action::DeleteLink { .. }
    )
}

fn is_gone(e: &rtnetlink::Error) -> bool {
    if let rtnetlink::Error::NetlinkError(m) = e {
        let code = m.raw_code().abs();
        return code == libc::ESRCH
            || code == libc::ENOENT
            || code == libc::EADDRNOTAVAIL
            || code == libc::ENODEV;
    }
    false
}
