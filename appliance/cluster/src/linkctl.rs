//! `cluster.link_token`, `cluster.link_admit` (the hub's side of a link,
//! reached through the web API's public `POST /api/v1/cluster/link`),
//! `cluster.link` and `cluster.unlink`; the link files nats-server runs
//! with, and the links in `cluster status`.
//!
//! The exchange is the join's ([`crate::join`]): the linking node sends
//! its cluster's name with a nonce and the time, under an HMAC with the
//! token's secret; the hub answers with its name, CA and leaf port,
//! sealed under that secret. The linking node checks the CA against the
//! token's fingerprint before it writes anything.

use std::sync::Arc;

use alpharen_rpc::RpcError;
use alpharen_store::View;
use alpharen_store::config::{Cluster, ClusterLink};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::{apply, cluster_doc, conflict, now_s, rpc_err, sans, web_port};
use crate::link::{self, Answer, Request};
use crate::{Error, Node, conf, join, pki, secret, token};

/// This cluster's link secret (the hub's password and the link tokens'
/// HMAC key) and the certificate its leaf port serves.
const LINK_SECRET: &str = "cluster.link_secret";
const LEAF_CERT: &str = "cluster.leaf_cert";
const LEAF_KEY: &str = "cluster.leaf_key";

/// The other cluster's CA and password, for the link named `name`.
fn link_secret(name: &str, what: &str) -> String {
    format!("cluster.link.{name}.{what}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkToken {
    #[serde(default)]
    address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unlink {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admit {
    request: String,
    mac: String,
}

/// Keeps a node's links and leaf port in a `[cluster]` document that is
/// written again (a member admitted, this node's seeds changed).
pub fn keep(c: &Cluster, doc: &mut Value) {
    if let Some(p) = c.leaf_port {
        doc["leaf_port"] = json!(p);
    }
    if !c.links.is_empty() {
        doc["links"] = json!(c.links);
    }
}

/// What nats-server needs for the links of the view.
pub struct Wanted {
    listen: Option<(u16, String, &'static str)>,
    remotes: Vec<(String, String, String)>,
    pub files: Vec<(String, String, u32)>,
}

fn need<'a>(view: &'a View, name: &str) -> Result<&'a str, Error> {
    view.secret(name).ok_or_else(|| {
        Error::Join(format!(
            "secret {name} is missing: make the link again (`ctl cluster link-token`, `ctl cluster link`)"
        ))
    })
}

impl Wanted {
    pub fn of(view: &View, dev: bool) -> Result<Wanted, Error> {
        let c = &view.config.cluster;
        let mut files = Vec::new();
        let listen = match c.leaf_port {
            Some(port) => {
                files.push(("leaf.pem".into(), need(view, LEAF_CERT)?.to_string(), 0o644));
                files.push(("leaf.key".into(), need(view, LEAF_KEY)?.to_string(), 0o600));
                let bind = if dev { "127.0.0.1" } else { "0.0.0.0" };
                Some((port, need(view, LINK_SECRET)?.to_string(), bind))
            }
            None => None,
        };
        let mut remotes = Vec::new();
        for l in &c.links {
            let ca = need(view, &link_secret(&l.name, "ca"))?;
            files.push((link::ca_file(&l.name), ca.to_string(), 0o644));
            let pw = need(view, &link_secret(&l.name, "password"))?;
            remotes.push((l.name.clone(), l.url.clone(), pw.to_string()));
        }
        Ok(Wanted {
            listen,
            remotes,
            files,
        })
    }

    pub fn listen(&self) -> Option<link::Listen<'_>> {
        self.listen.as_ref().map(|(port, pw, bind)| link::Listen {
            port: *port,
            bind,
            password: pw,
        })
    }

    pub fn remotes(&self) -> Vec<link::Remote<'_>> {
        self.remotes
            .iter()
            .map(|(name, url, pw)| link::Remote {
                name,
                url,
                password: pw,
            })
            .collect()
    }
}

fn in_cluster(view: &View) -> Result<&Cluster, RpcError> {
    let c = &view.config.cluster;
    if !c.enabled() {
        return Err(conflict(
            "this node is not in a cluster: `ctl cluster init NAME` makes one",
        ));
    }
    Ok(c)
}

/// Opens the leaf port (if it is not open) with a certificate naming
/// `address` and the node's addresses, and prints a link token naming
/// `address` (default: the advertised one).
pub async fn link_token(node: &Arc<Node>, p: LinkToken) -> Result<Value, RpcError> {
    let view = node.view();
    let c = in_cluster(&view)?;
    let ca_cert = view
        .secret(secret::CA_CERT)
        .ok_or_else(|| conflict("the cluster CA certificate is missing"))?;
    let ca_key = view
        .secret(secret::CA_KEY)
        .ok_or_else(|| conflict("the cluster CA key is missing"))?;
    let host = p
        .address
        .clone()
        .or_else(|| node.advertise(&view))
        .ok_or_else(|| conflict("this node has no global address: give --address"))?;
    if host.is_empty() || host.contains(['@', '/', ' ']) {
        return Err(RpcError::invalid_params(format!(
            "--address {host:?} is not an IP address or host name"
        )));
    }
    let secret_now = view.secret(LINK_SECRET).map(str::to_string);
    let link_secret = secret_now.clone().unwrap_or_else(token::new_secret);
    let names = sans(node, &view, &Some(host.clone()));
    let leaf = pki::member(&c.name, ca_key, &view.config.node.hostname, &names).map_err(rpc_err)?;
    let mut doc = cluster_doc(&view, &c.name, &None, &c.seeds);
    doc["leaf_port"] = json!(c.leaf_port.unwrap_or(link::DEFAULT_LEAF_PORT));
    let mut secrets = vec![(LEAF_CERT, leaf.cert), (LEAF_KEY, leaf.key)];
    if secret_now.is_none() {
        secrets.push((LINK_SECRET, link_secret.clone()));
    }
    apply(
        node,
        doc,
        secrets,
        format!("cluster {}: links taken at {host}", c.name),
    )
    .await?;
    node.reload().await.map_err(rpc_err)?;
    let token = token::JoinToken {
        addr: conf::host_port(&host, web_port(node, &view)),
        ca_fingerprint: pki::fingerprint(ca_cert).map_err(rpc_err)?,
        secret: link_secret,
    };
    Ok(json!({
        "cluster": c.name,
        "token": token.encode_as(token::LINK_PREFIX),
        "leaf_port": c.leaf_port.unwrap_or(link::DEFAULT_LEAF_PORT),
    }))
}

/// The hub's side: checks the request and answers with this cluster's
/// name, CA and leaf port, sealed.
pub async fn link_admit(node: &Arc<Node>, p: Admit) -> Result<Value, RpcError> {
    let view = node.view();
    let c = &view.config.cluster;
    let refuse = || conflict("this node takes no links: `ctl cluster link-token` opens it");
    let (Some(port), Some(secret), Some(ca)) = (
        c.leaf_port.filter(|_| c.enabled()),
        view.secret(LINK_SECRET),
        view.secret(secret::CA_CERT),
    ) else {
        return Err(refuse());
    };
    let r: Request = join::check(secret, &p.request, &p.mac, now_s()).map_err(|e| {
        RpcError::new(
            "forbidden",
            e.to_string().replace("join secret", "link secret"),
        )
    })?;
    if !alpharen_store::config::cluster_name_ok(&r.cluster) || r.cluster == c.name {
        return Err(RpcError::invalid_params(format!(
            "the linking cluster's name {:?} is not a cluster name other than this one",
            r.cluster
        )));
    }
    let answer = Answer {
        cluster: c.name.clone(),
        ca_cert: ca.to_string(),
        leaf_port: port,
    };
    tracing::info!(cluster = %r.cluster, "a cluster is linking to this one");
    let sealed = join::seal(secret, &r.nonce, &answer).map_err(rpc_err)?;
    Ok(json!({ "sealed": sealed }))
}

/// Links this cluster to the one whose link token is given.
pub async fn link(node: &Arc<Node>, p: Link) -> Result<Value, RpcError> {
    let view = node.view();
    let c = in_cluster(&view)?.clone();
    let t = token::JoinToken::parse_link(&p.token).map_err(rpc_err)?;
    let request = Request {
        cluster: c.name.clone(),
        nonce: join::new_nonce(),
        ts: now_s(),
    };
    let (text, mac) = join::sign(&t.secret, &request).map_err(rpc_err)?;
    let addr = t.addr.clone();
    let sealed = tokio::task::spawn_blocking(move || {
        crate::control::ask(&addr, link::LINK_PATH, &text, &mac)
    })
    .await
    .map_err(|e| RpcError::new("internal_error", e.to_string()))?
    .map_err(|e| RpcError::new("link_failed", e.to_string().replace("join", "link")))?;
    let a: Answer = join::open(&t.secret, &request.nonce, &sealed)
        .map_err(|e| RpcError::new("link_failed", e.to_string()))?;
    if pki::fingerprint(&a.ca_cert).map_err(rpc_err)? != t.ca_fingerprint {
        return Err(RpcError::new(
            "forbidden",
            "the other cluster's CA does not match the link token's fingerprint: not linked",
        ));
    }
    if !alpharen_store::config::cluster_name_ok(&a.cluster) || a.cluster == c.name {
        return Err(RpcError::new(
            "link_failed",
            format!(
                "the other cluster is named {:?}: a link needs another cluster's name",
                a.cluster
            ),
        ));
    }
    let host = alpharen_store::config::split_host_port(&t.addr)
        .map(|(h, _)| h.to_string())
        .ok_or_else(|| RpcError::invalid_params("the link token's address is not host:port"))?;
    let url = conf::host_port(&host, a.leaf_port);
    let mut links: Vec<ClusterLink> = c
        .links
        .iter()
        .filter(|l| l.name != a.cluster)
        .cloned()
        .collect();
    links.push(ClusterLink {
        name: a.cluster.clone(),
        url: url.clone(),
    });
    let mut doc = cluster_doc(&view, &c.name, &None, &c.seeds);
    doc["links"] = json!(links);
    let (ca_name, pw_name) = (
        link_secret(&a.cluster, "ca"),
        link_secret(&a.cluster, "password"),
    );
    apply(
        node,
        doc,
        vec![(ca_name.as_str(), a.ca_cert), (pw_name.as_str(), t.secret)],
        format!(
            "cluster {} linked to cluster {} at {url}",
            c.name, a.cluster
        ),
    )
    .await?;
    node.reload().await.map_err(rpc_err)?;
    Ok(json!({ "linked": a.cluster, "url": url }))
}

/// Drops the link named `name` (its secrets stay until a link of that
/// name replaces them).
pub async fn unlink(node: &Arc<Node>, p: Unlink) -> Result<Value, RpcError> {
    let view = node.view();
    let c = in_cluster(&view)?;
    if !c.links.iter().any(|l| l.name == p.name) {
        let names: Vec<&str> = c.links.iter().map(|l| l.name.as_str()).collect();
        return Err(RpcError::new(
            "not_found",
            format!(
                "this node has no link named {:?} (its links: {})",
                p.name,
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        ));
    }
    let mut doc = cluster_doc(&view, &c.name, &None, &c.seeds);
    let links: Vec<&ClusterLink> = c.links.iter().filter(|l| l.name != p.name).collect();
    doc["links"] = json!(links);
    apply(
        node,
        doc,
        Vec::new(),
        format!("cluster {}: link to {} removed", c.name, p.name),
    )
    .await?;
    node.reload().await.map_err(rpc_err)?;
    Ok(json!({ "unlinked": p.name }))
}

/// The links of `cluster status`: the ones this node makes, each
/// `connected` when nats-server's `/leafz` lists a leaf connection to its
/// address, and the ones it takes (connections to its leaf port).
pub fn status(c: &Cluster, leafz: Option<&Value>) -> Value {
    let leafs: Vec<&Value> = leafz
        .and_then(|l| l["leafs"].as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let peer = |l: &Value| {
        conf::host_port(
            l["ip"].as_str().unwrap_or_default(),
            l["port"].as_u64().unwrap_or_default() as u16,
        )
    };
    let out: Vec<Value> = c
        .links
        .iter()
        .map(|l| {
            let up = leafs.iter().find(|x| peer(x) == l.url);
            json!({
                "name": l.name,
                "url": l.url,
                "state": if leafz.is_none() { "unknown" } else if up.is_some() { "connected" } else { "not connected" },
                "rtt": up.map(|x| x["rtt"].clone()),
            })
        })
        .collect();
    let inbound: Vec<Value> = leafs
        .iter()
        .filter(|x| !c.links.iter().any(|l| peer(x) == l.url))
        .map(|x| json!({ "from": peer(x), "rtt": x["rtt"] }))
        .collect();
    json!({
        "out": out,
        "leaf_port": c.leaf_port,
        "in": inbound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_tells_connected_links_from_the_others_and_lists_arrivals() {
        let c = Cluster {
            name: "lan-a".into(),
            leaf_port: Some(7422),
            links: vec![
                ClusterLink {
                    name: "lan-b".into(),
                    url: "10.7.0.2:7422".into(),
                },
                ClusterLink {
                    name: "lan-c".into(),
                    url: "10.7.0.3:7422".into(),
                },
            ],
            ..Cluster::default()
        };
        let leafz = json!({"leafs": [
            {"ip": "10.7.0.2", "port": 7422, "rtt": "1ms"},
            {"ip": "10.7.0.9", "port": 40100, "rtt": "2ms"},
        ]});
        let s = status(&c, Some(&leafz));
        assert_eq!(s["out"][0]["state"], "connected");
        assert_eq!(s["out"][1]["state"], "not connected");
        assert_eq!(s["in"], json!([{"from": "10.7.0.9:40100", "rtt": "2ms"}]));
        assert_eq!(status(&c, None)["out"][0]["state"], "unknown");
    }

    #[test]
    fn a_rewritten_cluster_section_keeps_the_links() {
        let c = Cluster {
            name: "lan-a".into(),
            leaf_port: Some(7500),
            links: vec![ClusterLink {
                name: "lan-b".into(),
                url: "h:1".into(),
            }],
            ..Cluster::default()
        };
        let mut doc = json!({"name": "lan-a"});
        keep(&c, &mut doc);
        assert_eq!(doc["leaf_port"], 7500);
        assert_eq!(doc["links"][0]["name"], "lan-b");
    }
}
