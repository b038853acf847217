//! `[cluster]`: this node's membership in an ARCLST, a cluster of nodes on
//! NATS JetStream (the cluster service owns it). Written by `ctl cluster
//! init` and `ctl cluster join`, with the cluster's certificates and keys
//! in the secret store (`cluster.*`), never here.

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[cluster]`: empty `name` means the node is not in a cluster and runs
/// no nats-server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    /// The cluster's name, the same on every member.
    pub name: String,
    /// The address (IP or host name) other members reach this node's
    /// route port at; left out, the node's first global address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// Members' route addresses, `host:port`, this node connects to; the
    /// rest it learns from them. Empty: a cluster of one (JetStream runs
    /// without replication until a second member joins).
    pub seeds: Vec<String>,
    /// TCP port of the routes between members (TLS with the cluster's
    /// certificates, on every address).
    pub route_port: u16,
    /// nats-server's client port, on 127.0.0.1 only (the node's services).
    pub client_port: u16,
    /// nats-server's monitoring port, on 127.0.0.1 only.
    pub monitor_port: u16,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            name: String::new(),
            advertise: None,
            seeds: Vec::new(),
            route_port: 6222,
            client_port: 4222,
            monitor_port: 8222,
        }
    }
}

impl Cluster {
    pub fn enabled(&self) -> bool {
        !self.name.is_empty()
    }

    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if self.name.len() > 32
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            check::push(
                out,
                &path.key("name"),
                "must be at most 32 letters, digits, '-' or '_'",
            );
        }
        let ports = [
            ("route_port", self.route_port),
            ("client_port", self.client_port),
            ("monitor_port", self.monitor_port),
        ];
        for (i, (key, port)) in ports.iter().enumerate() {
            if *port == 0 {
                check::push(out, &path.key(key), "must be a port number from 1 to 65535");
            } else if ports[..i].iter().any(|(_, p)| p == port) {
                check::push(out, &path.key(key), "must differ from the other ports");
            }
        }
        if let Some(a) = &self.advertise
            && a.parse::<std::net::IpAddr>().is_err()
        {
            check::hostname(out, &path.key("advertise"), a);
        }
        let list = path.key("seeds");
        for (i, s) in self.seeds.iter().enumerate() {
            if split_host_port(s).is_none() {
                check::push(
                    out,
                    &list.index(i),
                    format!("{s:?} must be host:port (an IPv6 address in brackets)"),
                );
            }
        }
        if !self.enabled() && !self.seeds.is_empty() {
            check::push(out, &list, "needs a cluster name");
        }
    }
}

/// `host:port` or `[v6]:port` into its parts.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = match host.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(c: &Cluster) -> Vec<String> {
        let mut out = Vec::new();
        c.validate(&KeyPath::root().key("cluster"), &mut out);
        out.into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn seeds_are_host_and_port() {
        assert_eq!(split_host_port("10.0.0.1:6222"), Some(("10.0.0.1", 6222)));
        assert_eq!(split_host_port("[fd00::1]:6222"), Some(("fd00::1", 6222)));
        assert_eq!(split_host_port("node-a:7000"), Some(("node-a", 7000)));
        assert_eq!(split_host_port("fd00::1:6222"), None);
        assert_eq!(split_host_port("a:0"), None);
        assert_eq!(split_host_port(":6222"), None);
        assert_eq!(split_host_port("a"), None);
    }

    #[test]
    fn bad_values_name_their_keys() {
        let c = Cluster {
            name: "lan 1".into(),
            seeds: vec!["x".into()],
            client_port: 6222,
            ..Cluster::default()
        };
        let p = problems(&c);
        assert!(p.iter().any(|m| m.starts_with("cluster.name:")), "{p:?}");
        assert!(
            p.iter().any(|m| m.starts_with("cluster.seeds[0]:")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.starts_with("cluster.client_port:")),
            "{p:?}"
        );
        assert!(problems(&Cluster::default()).is_empty());
        let orphan = Cluster {
            seeds: vec!["a:1".into()],
            ..Cluster::default()
        };
        assert_eq!(problems(&orphan), ["cluster.seeds: needs a cluster name"]);
    }
}
