//! Unit tests of `plan.rs`, kept apart so that file stays readable.

use super::*;
use alpharen_store::config::{Route, Vlan};

fn a(s: &str) -> Addr {
    let (ip, prefix) = parse_cidr(s).unwrap();
    Addr { ip, prefix }
}

fn eth0() -> LinkState {
    LinkState {
        index: 2,
        name: "eth0".into(),
        mac: "52:54:00:00:00:01".into(),
        up: true,
        carrier: true,
        mtu: 1500,
        ..Default::default()
    }
}

fn net_static() -> Network {
    Network {
        interfaces: vec![Interface {
            name: Some("eth0".into()),
            addresses: vec!["192.0.2.5/24".into(), "2001:db8::5/64".into()],
            gateway4: Some("192.0.2.1".into()),
            routes: vec![Route {
                dest: "198.51.100.0/24".into(),
                via: Some("192.0.2.254".into()),
                metric: Some(50),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn no_lease(_: &str) -> Option<LeaseInput> {
    None
}

/// Applies actions to a model of the kernel, for idempotence checks.
fn apply(actual: &mut Actual, actions: &[Action]) {
    for act in actions {
        match act {
            Action::AddAddr {
                index, addr, proto, ..
            } => {
                let l = actual.links.iter_mut().find(|l| l.index == *index).unwrap();
                l.addrs.push((*addr, *proto));
            }
            Action::DelAddr { index, addr, .. } => {
                let l = actual.links.iter_mut().find(|l| l.index == *index).unwrap();
                l.addrs.retain(|(x, _)| x != addr);
            }
            Action::AddRoute {
                index,
                route,
                proto,
                ..
            } => {
                let l = actual.links.iter_mut().find(|l| l.index == *index).unwrap();
                l.routes.push((*route, *proto));
            }
            Action::DelRoute { index, route, .. } => {
                let l = actual.links.iter_mut().find(|l| l.index == *index).unwrap();
                l.routes.retain(|(x, _)| x != route);
            }
            Action::SetUp { index, .. } => {
                actual
                    .links
                    .iter_mut()
                    .find(|l| l.index == *index)
                    .unwrap()
                    .up = true;
            }
            Action::SetMtu { index, mtu, .. } => {
                actual
                    .links
                    .iter_mut()
                    .find(|l| l.index == *index)
                    .unwrap()
                    .mtu = *mtu;
            }
            Action::CreateVlan { name, parent, id } => {
                let index = actual.links.iter().map(|l| l.index).max().unwrap() + 1;
                actual.links.push(LinkState {
                    index,
                    name: name.clone(),
                    alias: Some(VLAN_ALIAS.into()),
                    vlan: Some((*parent, *id)),
                    ..Default::default()
                });
            }
            Action::DeleteLink { index, .. } => actual.links.retain(|l| l.index != *index),
        }
    }
}

#[test]
fn static_config_converges_and_reapply_is_empty() {
    let net = net_static();
    let mut actual = Actual {
        links: vec![eth0()],
    };
    let first = diff(&net, &actual, &no_lease);
    assert_eq!(
        first
            .iter()
            .filter(|x| matches!(x, Action::AddAddr { .. }))
            .count(),
        2
    );
    assert_eq!(
        first
            .iter()
            .filter(|x| matches!(x, Action::AddRoute { .. }))
            .count(),
        2
    );
    apply(&mut actual, &first);
    assert_eq!(diff(&net, &actual, &no_lease), vec![]);
}

#[test]
fn removing_an_address_removes_only_that_one() {
    let mut net = net_static();
    let mut actual = Actual {
        links: vec![eth0()],
    };
    // a foreign address (added by hand) is present all along
    actual.links[0].addrs.push((a("10.9.9.9/8"), 0));
    let first = diff(&net, &actual, &no_lease);
    apply(&mut actual, &first);
    net.interfaces[0].addresses.remove(1);
    let second = diff(&net, &actual, &no_lease);
    assert_eq!(
        second,
        vec![Action::DelAddr {
            index: 2,
            name: "eth0".into(),
            addr: a("2001:db8::5/64")
        }]
    );
}

#[test]
fn unowned_things_are_never_touched() {
    let net = Network::default();
    let mut l = eth0();
    l.addrs.push((a("10.0.0.1/24"), 0));
    l.routes
        .push((default_route("10.0.0.254".parse().unwrap(), 0), 4));
    l.alias = Some("someone".into());
    let actual = Actual { links: vec![l] };
    assert_eq!(diff(&net, &actual, &no_lease), vec![]);
}

#[test]
fn interface_leaving_config_loses_our_addresses_only() {
    let mut l = eth0();
    l.addrs.push((a("10.0.0.1/24"), 0));
    l.addrs.push((a("192.0.2.5/24"), PROTO_STATIC));
    let actual = Actual { links: vec![l] };
    let got = diff(&Network::default(), &actual, &no_lease);
    assert_eq!(got.len(), 1);
    assert!(matches!(&got[0], Action::DelAddr { addr, .. } if *addr == a("192.0.2.5/24")));
}

#[test]
fn lease_gives_address_default_route_and_mtu() {
    let net = Network {
        interfaces: vec![Interface {
            mac: Some("52:54:00:00:00:01".into()),
            dhcp4: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    let lease = |n: &str| {
        (n == "eth0").then(|| LeaseInput {
            addr: Some(a("192.0.2.77/24")),
            router: Some("192.0.2.1".parse().unwrap()),
            routes: vec![
                (
                    "198.18.7.9".parse().unwrap(),
                    15,
                    "192.0.2.254".parse().unwrap(),
                ),
                ("203.0.113.0".parse().unwrap(), 24, Ipv4Addr::UNSPECIFIED),
            ],
            mtu: Some(1400),
        })
    };
    let mut actual = Actual {
        links: vec![eth0()],
    };
    let got = diff(&net, &actual, &lease);
    assert!(got.contains(&Action::SetMtu {
        index: 2,
        name: "eth0".into(),
        mtu: 1400
    }));
    assert!(got.contains(&Action::AddAddr {
        index: 2,
        name: "eth0".into(),
        addr: a("192.0.2.77/24"),
        proto: PROTO_DHCP
    }));
    // Option 121: a gateway route (host bits cleared) and an on-link one.
    let route = |dest: &str, prefix, via: Option<&str>| Action::AddRoute {
        index: 2,
        name: "eth0".into(),
        route: RouteKey {
            dest: dest.parse().unwrap(),
            prefix,
            via: via.map(|v| v.parse().unwrap()),
            metric: DHCP_METRIC,
        },
        proto: PROTO_DHCP,
    };
    assert!(
        got.contains(&route("198.18.0.0", 15, Some("192.0.2.254"))),
        "{got:?}"
    );
    assert!(got.contains(&route("203.0.113.0", 24, None)), "{got:?}");
    assert!(
        got.contains(&route("0.0.0.0", 0, Some("192.0.2.1"))),
        "{got:?}"
    );
    apply(&mut actual, &got);
    assert_eq!(diff(&net, &actual, &lease), vec![]);
    // lease expired: the address and routes go, nothing else
    let gone = diff(&net, &actual, &no_lease);
    assert_eq!(gone.len(), 4, "{gone:?}");
}

#[test]
fn vlan_is_created_once_and_removed_when_dropped() {
    let mut net = Network {
        vlans: vec![Vlan {
            id: 10,
            link: "eth0".into(),
            name: None,
        }],
        ..Default::default()
    };
    let mut actual = Actual {
        links: vec![eth0()],
    };
    let got = diff(&net, &actual, &no_lease);
    assert_eq!(
        got,
        vec![Action::CreateVlan {
            name: "eth0.10".into(),
            parent: 2,
            id: 10
        }]
    );
    apply(&mut actual, &got);
    assert_eq!(diff(&net, &actual, &no_lease), vec![]);
    net.vlans.clear();
    assert!(matches!(
        diff(&net, &actual, &no_lease)[..],
        [Action::DeleteLink { .. }]
    ));
}

#[test]
fn missing_interfaces_are_listed() {
    let net = net_static();
    assert_eq!(missing(&net, &Actual::default()), vec!["eth0".to_string()]);
    assert!(
        missing(
            &net,
            &Actual {
                links: vec![eth0()]
            }
        )
        .is_empty()
    );
}

#[test]
fn route_destination_host_bits_are_cleared() {
    assert_eq!(
        network_of("198.51.100.7".parse().unwrap(), 24),
        "198.51.100.0".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        network_of("10.1.2.3".parse().unwrap(), 0),
        "0.0.0.0".parse::<IpAddr>().unwrap()
    );
}
