//! Links between clusters (one per LAN), pure parts: what nats-server is
//! told and what crosses a link.
//!
//! A cluster that made a link token (`ctl cluster link-token`) listens on
//! `[cluster] leaf_port` as a NATS leaf node hub: TLS with a certificate
//! from its cluster CA, and the user [`LINK_USER`] whose password is the
//! token's secret. A cluster that took the token (`ctl cluster link`)
//! connects there as a leaf node, checks the hub's certificate against
//! the other cluster's CA (pinned by the token's fingerprint) and sends
//! the password. Each cluster keeps its own JetStream domain (its name),
//! so no stream or bucket is shared.
//!
//! Only the link subjects cross: requests for a cluster on
//! `arlink.<cluster>.invoke` and `arlink.<cluster>.publish`, answered on
//! `_ARL.<asking cluster>.…` (each cluster's link client uses that inbox
//! prefix, so no other reply subject has to cross). The hub enforces it
//! with the link user's permissions; the leaf side also refuses the
//! node's own subjects in both directions (`deny_imports`/`deny_exports`).
//! The link user may subscribe to every link subject: nats-server (2.11
//! on) tells a leaf about the hub's queue groups only on subjects it may
//! subscribe to, and the hub's members answer in one. So the clusters
//! linked to one hub can read each other's link traffic with it
//! (docs/cluster.md).

use serde::{Deserialize, Serialize};

use crate::conf::host_port;
use crate::join::Stamped;

/// The user a linked cluster's leaf connection logs in as on the hub.
pub const LINK_USER: &str = "link";
/// The leaf port a link token opens when `[cluster] leaf_port` is unset.
pub const DEFAULT_LEAF_PORT: u16 = 7422;
/// Where a node asks to link (public, like the join).
pub const LINK_PATH: &str = "/api/v1/cluster/link";

/// Subjects of this node's own that never cross a link, whatever the
/// other side allows.
const LOCAL_ONLY: &[&str] = &[
    "$JS.>", "$JSC.>", "$KV.>", "$O.>", "$SYS.>", "_INBOX.>", "ar.>",
];

/// The subject requests for `cluster` go to (`invoke` or `publish`).
pub fn subject(cluster: &str, what: &str) -> String {
    format!("arlink.{cluster}.{what}")
}

/// The inbox prefix of `cluster`'s link client.
pub fn inbox(cluster: &str) -> String {
    format!("_ARL.{cluster}")
}

/// What a linking cluster asks for: it names itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub cluster: String,
    pub nonce: String,
    pub ts: i64,
}

impl Stamped for Request {
    fn ts(&self) -> i64 {
        self.ts
    }
}

/// What it gets, sealed under the token's secret: the hub's cluster
/// name, its CA (checked against the token's fingerprint) and leaf port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub cluster: String,
    pub ca_cert: String,
    pub leaf_port: u16,
}

/// The hub side: this node takes links.
pub struct Listen<'a> {
    pub port: u16,
    pub bind: &'a str,
    /// The secret of this cluster's link tokens.
    pub password: &'a str,
}

/// The leaf side: one link this node makes.
pub struct Remote<'a> {
    pub name: &'a str,
    /// `host:port` of the other cluster's leaf port.
    pub url: &'a str,
    pub password: &'a str,
}

/// The file the other cluster's CA is written to.
pub fn ca_file(name: &str) -> String {
    format!("link-{name}.pem")
}

fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

/// The `authorization` block: the node's client user, and with a leaf
/// port the link user, who may send only requests for this cluster and
/// answers to it, and receive link subjects.
pub fn authorization(user: &str, password: &str, cluster: &str, listen: Option<&Listen>) -> String {
    let Some(l) = listen else {
        return format!(
            "authorization {{ user: {}, password: {} }}\n",
            q(user),
            q(password)
        );
    };
    let mine = [subject(cluster, ">"), format!("{}.>", inbox(cluster))];
    format!(
        "authorization {{ users: [\n  {{ user: {}, password: {} }},\n  {{ user: {}, password: {}, permissions: {{ publish: {{ allow: {} }}, subscribe: {{ allow: {} }} }} }}\n] }}\n",
        q(user),
        q(password),
        q(LINK_USER),
        q(l.password),
        list(&mine),
        list(&["arlink.>".to_string(), "_ARL.>".to_string()]),
    )
}

/// The `leafnodes` block, or nothing when the node neither takes nor
/// makes links. `path` names a file in the service's directory.
pub fn leafnodes(
    listen: Option<&Listen>,
    remotes: &[Remote],
    path: impl Fn(&str) -> String,
) -> String {
    if listen.is_none() && remotes.is_empty() {
        return String::new();
    }
    // A link runs over a WAN or a VPN: a dead one is noticed after 3
    // pings 5 s apart (nats-server's default: 2 minutes), so invokes fail
    // at once and publishes wait in the outbox. It applies to the node's
    // routes and clients too.
    let mut out = "ping_interval: \"5s\"\nping_max: 3\nleafnodes {\n".to_string();
    if let Some(l) = listen {
        out += &format!(
            "  listen: {}\n  tls {{ cert_file: {}, key_file: {}, timeout: 5 }}\n",
            q(&host_port(l.bind, l.port)),
            path("leaf.pem"),
            path("leaf.key"),
        );
    }
    if !remotes.is_empty() {
        let local: Vec<String> = LOCAL_ONLY.iter().map(|s| s.to_string()).collect();
        let each: Vec<String> = remotes
            .iter()
            .map(|r| {
                format!(
                    "    {{ url: {}, tls {{ ca_file: {}, timeout: 5 }}, deny_imports: {}, deny_exports: {} }}",
                    q(&format!("tls://{LINK_USER}:{}@{}", r.password, r.url)),
                    path(&ca_file(r.name)),
                    list(&local),
                    list(&local),
                )
            })
            .collect();
        out += &format!("  remotes: [\n{}\n  ]\n", each.join(",\n"));
    }
    out + "}\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> String {
        format!("\"/d/{name}\"")
    }

    #[test]
    fn without_links_nothing_listens_and_one_user_logs_in() {
        assert_eq!(leafnodes(None, &[], path), "");
        let a = authorization("alpharen", "pw", "lan-a", None);
        assert!(
            a.contains("user: \"alpharen\"") && !a.contains("link"),
            "{a}"
        );
    }

    #[test]
    fn the_hub_lets_the_link_user_use_only_link_subjects() {
        let l = Listen {
            port: 7422,
            bind: "0.0.0.0",
            password: "s3",
        };
        let a = authorization("alpharen", "pw", "lan-b", Some(&l));
        assert!(a.contains("user: \"link\", password: \"s3\""), "{a}");
        assert!(
            a.contains("publish: { allow: [\"arlink.lan-b.>\", \"_ARL.lan-b.>\"] }"),
            "{a}"
        );
        assert!(
            a.contains("subscribe: { allow: [\"arlink.>\", \"_ARL.>\"] }"),
            "{a}"
        );
        let c = leafnodes(Some(&l), &[], path);
        assert!(c.contains("listen: \"0.0.0.0:7422\""), "{c}");
        assert!(c.contains("cert_file: \"/d/leaf.pem\""), "{c}");
        assert!(!c.contains("verify"), "{c}");
    }

    #[test]
    fn the_leaf_verifies_the_hub_and_keeps_its_own_subjects() {
        let r = Remote {
            name: "lan-b",
            url: "10.7.0.2:7422",
            password: "s3",
        };
        let c = leafnodes(None, &[r], path);
        assert!(c.contains("url: \"tls://link:s3@10.7.0.2:7422\""), "{c}");
        assert!(c.contains("ca_file: \"/d/link-lan-b.pem\""), "{c}");
        assert!(c.contains("deny_imports: [\"$JS.>\""), "{c}");
        assert!(c.contains("\"ar.>\"]"), "{c}");
        assert!(!c.contains("listen"), "{c}");
        assert!(c.contains("ping_interval: \"5s\""), "{c}");
        assert_eq!(subject("lan-b", "invoke"), "arlink.lan-b.invoke");
        assert_eq!(inbox("lan-a"), "_ARL.lan-a");
    }
}
