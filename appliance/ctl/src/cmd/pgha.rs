//! pgha status|unpin|backup: the PostgreSQL HA controller's `pgha.*` methods,
//! forwarded by the supervisor to `<state>/run/pgha.sock`.

use crate::client::NodeClient;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::CtlError;
use crate::output::{Output, table, text};

#[derive(Debug, Subcommand)]
pub enum PghaCmd {
    /// Each group: roles, lag, last action, pending timers.
    Status,
    /// Forget a server's pinned SSH host key (after checking the host).
    Unpin {
        /// `host:port` as `pgha status` shows it.
        host: String,
    },
    /// Run the backup controller now (result in `pgha status`).
    Backup,
}

/// `1234 B / 0.5 s` from a master's view of its replica.
fn lag(server: &Value) -> String {
    let r = &server["polled"]["replicas"][0];
    if r.is_null() {
        return "-".into();
    }
    let secs = r["lag_seconds"]
        .as_f64()
        .map_or_else(|| "-".into(), |s| format!("{s:.1} s"));
    format!(
        "{} B / {secs} ({})",
        text(&r["lag_bytes"]),
        text(&r["sync_state"])
    )
}

fn show_group(g: &Value) {
    println!("group {}: {}", text(&g["key"]), text(&g["situation"]));
    if let Some(p) = g.get("pending").filter(|p| !p.is_null()) {
        let secs = p["in_seconds"].as_f64().unwrap_or(0.0);
        println!("  pending  {} in {secs:.0} s", text(&p["what"]));
    }
    println!("  referee  {}", text(&g["referee"]));
    let master = g["master"].as_u64();
    let rows = g["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, s)| {
            vec![
                format!(
                    "{}{}",
                    if master == Some(i as u64) { "*" } else { " " },
                    text(&s["pg"])
                ),
                text(&s["role"]),
                text(&s["ssh_state"]),
                text(&s["polled"]["timeline"]),
                lag(s),
                text(&s["error"]),
            ]
        })
        .collect();
    table(
        &["SERVER", "ROLE", "SSH", "TL", "LAG (replica)", "ERROR"],
        rows,
    );
    for (key, label) in [("last_failover", "failover"), ("last_action", "last    ")] {
        if let Some(a) = g.get(key).filter(|a| !a.is_null()) {
            println!(
                "  {label} {} {}: {} ({})",
                text(&a["at"]),
                text(&a["action"]),
                text(&a["result"]),
                text(&a["reason"])
            );
        }
    }
    println!("  log      {}", text(&g["log"]));
}

impl PghaCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            PghaCmd::Status => {
                let v = client.call("pgha.status", json!({}))?;
                out.show(&v, |v| {
                    let groups = v["groups"].as_array().cloned().unwrap_or_default();
                    let elsewhere = |name: &str| {
                        let s = &v["singletons"][name];
                        (s.is_object() && s["here"] != true).then(|| match s["holder"].as_str() {
                            Some(h) => format!("{name} runs on cluster member {h}"),
                            None if s["holder_known"] == false => format!(
                                "{name}: where it runs cannot be read just now (the cluster's KV did not answer); ask again"
                            ),
                            None => format!("{name} runs on no member yet (waiting for its lease)"),
                        })
                    };
                    if let Some(line) = elsewhere("pg_controller") {
                        println!("{line}");
                    } else if groups.is_empty() {
                        println!("no groups configured (pgha.pg_controller)");
                    }
                    if let Some(s) = v["singletons"].as_object() {
                        for (name, l) in s.iter().filter(|(_, l)| l["here"] == true) {
                            println!(
                                "{name} runs here (cluster lease epoch {})",
                                text(&l["epoch"])
                            );
                        }
                    }
                    if let Some(line) = elsewhere("backup_controller") {
                        println!("{line}");
                    }
                    groups.iter().for_each(show_group);
                    for x in v["excluded"].as_array().into_iter().flatten() {
                        println!("group {}: EXCLUDED", text(&x["group"]));
                        for p in x["problems"].as_array().into_iter().flatten() {
                            println!("  {}", text(p));
                        }
                    }
                    println!("client key  {}", text(&v["client_key"]));
                    println!("backup      {}", text(&v["backup_last"]));
                });
                Ok(())
            }
            PghaCmd::Backup => {
                let v = client.call("pgha.backup", json!({}))?;
                out.show(&v, |_| {
                    println!("backup started; see `alpharen ctl pgha status`")
                });
                Ok(())
            }
            PghaCmd::Unpin { host } => {
                let v = client.call("pgha.unpin", json!({"host": host}))?;
                out.show(&v, |_| {
                    println!("unpinned {host}; restart pgha to resume the group")
                });
                Ok(())
            }
        }
    }
}
