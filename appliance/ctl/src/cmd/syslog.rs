//! syslog status|mark: the logfwd service's `logfwd.*` methods, forwarded
//! by the supervisor to `<state>/run/logfwd.sock`.

use clap::Subcommand;
use serde_json::json;

use crate::CtlError;
use crate::client::NodeClient;
use crate::output::{Output, table, text};

#[derive(Debug, Subcommand)]
pub enum SyslogCmd {
    /// Each collector: connected or down, lines sent, queued and dropped;
    /// SNMP trap managers with traps sent and failed and the node's v3
    /// engine ID; the syslog
    /// receiver's listeners, lines received, parse errors, lines each
    /// rule matched and traps sent for them.
    Status,
    /// Log a line of your text on the node; it travels to every collector
    /// like any other line (app-name `logfwd`).
    Mark { text: String },
}

impl SyslogCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            SyslogCmd::Status => {
                let v = client.call("logfwd.status", json!({}))?;
                out.show(&v, |v| {
                    let rows: Vec<Vec<String>> = v["collectors"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            vec![
                                text(&c["collector"]),
                                text(&c["state"]),
                                text(&c["sent"]),
                                text(&c["buffered_lines"]),
                                text(&c["dropped"]),
                                text(&c["last_error"]),
                            ]
                        })
                        .collect();
                    let t = &v["traps"];
                    let targets: Vec<String> = t["targets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    if !targets.is_empty() {
                        println!(
                            "SNMP traps to {}: {} sent, {} failed, last error {}; v3 engine ID {}",
                            targets.join(", "),
                            text(&t["sent"]),
                            text(&t["failed"]),
                            text(&t["last_error"]),
                            text(&t["engine_id"])
                        );
                    }
                    print_receiver(&v["receiver"]);
                    if rows.is_empty() {
                        println!("no collectors ([syslog] collectors is empty)");
                    } else {
                        table(
                            &[
                                "COLLECTOR",
                                "STATE",
                                "SENT",
                                "QUEUED",
                                "DROPPED",
                                "LAST ERROR",
                            ],
                            rows,
                        );
                    }
                });
                Ok(())
            }
            SyslogCmd::Mark { text: t } => {
                let v = client.call("logfwd.mark", json!({ "text": t }))?;
                out.show(&v, |v| println!("logged: {}", text(&v["logged"])));
                Ok(())
            }
        }
    }
}

/// The `[syslog.receiver]` lines of `ctl syslog status`.
fn print_receiver(r: &serde_json::Value) {
    let listeners: Vec<String> = r["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    if !r["error"].is_null() {
        println!("syslog receiver: cannot listen: {}", text(&r["error"]));
    }
    if listeners.is_empty() {
        if r["error"].is_null() {
            println!("syslog receiver: off ([syslog.receiver] enabled is false)");
        }
        return;
    }
    let c = &r["counters"];
    println!(
        "syslog receiver on {}: {} received, {} parse errors, {} traps sent",
        listeners.join(", "),
        text(&c["received"]),
        text(&c["parse_errors"]),
        text(&c["traps_sent"])
    );
    if let Some(m) = c["matched"].as_object() {
        for (rule, n) in m {
            println!("  rule {rule}: {} matched", text(n));
        }
    }
}
