//! cluster init|join|token|status|leave: the cluster service's
//! `cluster.*` methods, forwarded by the supervisor.

use clap::Subcommand;
use serde_json::json;

use crate::CtlError;
use crate::client::NodeClient;
use crate::output::{Output, table, text};

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Make a new cluster of this node: a cluster CA, a join secret, and
    /// the join token other nodes take.
    Init {
        /// The cluster's name (letters, digits, '-', '_').
        name: String,
        /// The address other members reach this node at (default: its
        /// first global address).
        #[arg(long)]
        advertise: Option<String>,
    },
    /// Join the cluster of the member named in TOKEN (from `cluster
    /// token` or `cluster init` there).
    Join {
        token: String,
        #[arg(long)]
        advertise: Option<String>,
    },
    /// Print the join token of this node's cluster (it holds the join
    /// secret: treat it as a password).
    Token,
    /// Members with their state, nats-server, JetStream mode and leader.
    Status,
    /// Leave the cluster: first drain this member (the others' load
    /// balancers stop sending it requests and the ones it has finish),
    /// then nats-server stops; the other members see this node go down.
    Leave,
}

impl ClusterCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            ClusterCmd::Init { name, advertise } => {
                let v = client.call(
                    "cluster.init",
                    json!({ "name": name, "advertise": advertise }),
                )?;
                out.show(&v, |v| {
                    println!(
                        "cluster {} created; to add a node, run there:",
                        text(&v["cluster"])
                    );
                    println!("  alpharen ctl cluster join {}", text(&v["token"]));
                });
            }
            ClusterCmd::Join { token, advertise } => {
                let v = client.call(
                    "cluster.join",
                    json!({ "token": token, "advertise": advertise }),
                )?;
                out.show(&v, |v| println!("joined cluster {}", text(&v["cluster"])));
            }
            ClusterCmd::Token => {
                let v = client.call("cluster.token", json!({}))?;
                out.show(&v, |v| println!("{}", text(&v["token"])));
            }
            ClusterCmd::Status => {
                let v = client.call("cluster.status", json!({}))?;
                out.show(&v, print_status);
            }
            ClusterCmd::Leave => {
                let v = client.call("cluster.leave", json!({}))?;
                out.show(&v, |v| println!("left cluster {}", text(&v["left"])));
            }
        }
        Ok(())
    }
}

fn print_status(v: &serde_json::Value) {
    if v["name"].is_null() {
        println!("not in a cluster (`ctl cluster init NAME` or `ctl cluster join TOKEN`)");
        return;
    }
    println!("cluster   {}", text(&v["name"]));
    println!("node      {} ({})", text(&v["node"]), text(&v["advertise"]));
    println!("nats      {}", text(&v["nats"]));
    println!(
        "jetstream {}, meta leader {}",
        text(&v["jetstream"]["mode"]),
        text(&v["jetstream"]["meta_leader"])
    );
    println!("replicas  {}", text(&v["replicas_note"]));
    if let Some(leases) = v["singletons"].as_object() {
        for (name, l) in leases {
            let at = match l["holder"].as_str() {
                Some(h) => format!("on {h} (epoch {})", text(&l["epoch"])),
                None => "nowhere (lease ran out or released)".into(),
            };
            println!("singleton {name} {at}");
        }
    }
    let rows: Vec<Vec<String>> = v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            vec![
                text(&m["node"]),
                if m["draining"] == true {
                    format!("{} (draining)", text(&m["state"]))
                } else {
                    text(&m["state"])
                },
                format!("{} s", text(&m["age_s"])),
                text(&m["route"]),
                text(&m["version"]),
                format!("{} MiB", m["rss_kib"].as_u64().unwrap_or(0) / 1024),
            ]
        })
        .collect();
    table(
        &["MEMBER", "STATE", "LAST SEEN", "ROUTE", "VERSION", "RSS"],
        rows,
    );
}
