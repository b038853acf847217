//! nats-server's configuration, rendered from `[cluster]` and the
//! secrets. Clients (this node's services) reach it on 127.0.0.1 only,
//! with a password; members reach each other's route port with TLS both
//! ways under the cluster CA (`verify`), so nothing of the cluster answers
//! a peer without a certificate the CA signed.
//!
//! JetStream in a NATS cluster needs at least one other server to elect
//! its meta leader, so a cluster of one (no seeds) runs JetStream on its
//! own, in its own store directory, and the cluster block appears with
//! the first seed.

use std::path::Path;

/// What the rendering needs.
pub struct Settings<'a> {
    pub server_name: &'a str,
    pub cluster: &'a str,
    /// `<state>/cluster`: the certificate files and the JetStream stores.
    pub dir: &'a Path,
    pub client_port: u16,
    pub monitor_port: u16,
    pub route_port: u16,
    /// Where the route port listens: every address, or 127.0.0.1 with
    /// `--dev` (a development node listens on loopback only).
    pub route_bind: &'a str,
    pub advertise: Option<&'a str>,
    pub seeds: &'a [String],
    pub client_password: &'a str,
    /// Links to other clusters: taking them, making them ([`crate::link`]).
    pub listen: Option<crate::link::Listen<'a>>,
    pub remotes: &'a [crate::link::Remote<'a>],
}

/// The client user every service of the node connects as.
pub const CLIENT_USER: &str = "alpharen";

fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether the server runs in a NATS cluster (it has a seed).
pub fn clustered(seeds: &[String]) -> bool {
    !seeds.is_empty()
}

/// Whether two renderings differ in the cluster's routes alone (both in
/// a NATS cluster: leaving or entering one changes the JetStream store).
pub(crate) fn routes_only_change(old: &str, new: &str) -> bool {
    let rest = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("  routes: ["))
            .map(str::to_string)
            .collect()
    };
    old.contains("\ncluster {") && new.contains("\ncluster {") && rest(old) == rest(new)
}

pub fn render(s: &Settings) -> String {
    let path = |name: &str| q(&s.dir.join(name).to_string_lossy());
    let mut out = format!(
        "# Written by the alpharen cluster service from [cluster]; changes here are lost.\n\
         server_name: {}\n\
         listen: {}\n\
         max_payload: 8MB\n\
         http: {}\n{}",
        q(s.server_name),
        q(&format!("127.0.0.1:{}", s.client_port)),
        q(&format!("127.0.0.1:{}", s.monitor_port)),
        crate::link::authorization(CLIENT_USER, s.client_password, s.cluster, s.listen.as_ref()),
    );
    let store = if clustered(s.seeds) {
        "js-cluster"
    } else {
        "js-single"
    };
    // Every write fsynced before it is acknowledged (the default syncs
    // every 2 minutes, so a power cut could lose acknowledged writes).
    out += &format!(
        "jetstream {{ store_dir: {}, domain: {}, max_memory_store: 64MB, max_file_store: 2GB, sync_interval: always }}\n",
        path(store),
        q(s.cluster)
    );
    out += &crate::link::leafnodes(s.listen.as_ref(), s.remotes, path);
    if clustered(s.seeds) {
        let routes: Vec<String> = s
            .seeds
            .iter()
            .map(|r| q(&format!("nats-route://{r}")))
            .collect();
        out += &format!(
            "cluster {{\n  name: {}\n  listen: {}\n",
            q(s.cluster),
            q(&host_port(s.route_bind, s.route_port))
        );
        if let Some(a) = s.advertise {
            out += &format!("  advertise: {}\n", q(&host_port(a, s.route_port)));
        }
        out += &format!(
            "  routes: [{}]\n  tls {{ cert_file: {}, key_file: {}, ca_file: {}, verify: true, timeout: 5 }}\n}}\n",
            routes.join(", "),
            path("node.pem"),
            path("node.key"),
            path("ca.pem"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(seeds: &'a [String]) -> Settings<'a> {
        Settings {
            server_name: "a",
            cluster: "lan1",
            dir: Path::new("/data/cluster"),
            client_port: 4222,
            monitor_port: 8222,
            route_port: 6222,
            route_bind: "0.0.0.0",
            advertise: Some("10.0.0.1"),
            seeds,
            client_password: "pw\"x",
            listen: None,
            remotes: &[],
        }
    }

    #[test]
    fn one_member_runs_jetstream_alone() {
        let c = render(&settings(&[]));
        assert!(c.contains("listen: \"127.0.0.1:4222\""), "{c}");
        assert!(c.contains("password: \"pw\\\"x\""), "{c}");
        assert!(c.contains("/data/cluster/js-single"), "{c}");
        assert!(c.contains("sync_interval: always"), "{c}");
        // Each cluster is its own JetStream domain (links keep them apart).
        assert!(c.contains("domain: \"lan1\""), "{c}");
        // A deploy record carries a whole project unit (up to 5.5 MiB).
        assert!(c.contains("max_payload: 8MB"), "{c}");
        assert!(!c.contains("cluster {"), "{c}");
    }

    #[test]
    fn members_route_with_mutual_tls() {
        let seeds = ["10.0.0.2:6222".to_string()];
        let c = render(&settings(&seeds));
        assert!(c.contains("/data/cluster/js-cluster"), "{c}");
        assert!(c.contains("name: \"lan1\""), "{c}");
        assert!(c.contains("listen: \"0.0.0.0:6222\""), "{c}");
        assert!(c.contains("advertise: \"10.0.0.1:6222\""), "{c}");
        assert!(
            c.contains("routes: [\"nats-route://10.0.0.2:6222\"]"),
            "{c}"
        );
        assert!(c.contains("verify: true"), "{c}");
        assert_eq!(host_port("fd00::1", 6222), "[fd00::1]:6222");
    }

    #[test]
    fn a_new_route_alone_is_a_reload_not_a_restart() {
        let (one, two) = (
            ["b:6222".to_string()],
            ["b:6222".to_string(), "d:6222".to_string()],
        );
        let (a, b) = (render(&settings(&one)), render(&settings(&two)));
        assert!(routes_only_change(&a, &b));
        // Out of a cluster or into one: another JetStream store.
        assert!(!routes_only_change(&render(&settings(&[])), &a));
        // Anything else that changes: a restart.
        let mut other = settings(&two);
        other.client_port = 4223;
        assert!(!routes_only_change(&a, &render(&other)));
    }
}
