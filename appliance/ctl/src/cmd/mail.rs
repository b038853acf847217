//! mail status|queue|flush|delete|retry|test|notify: the mail service's
//! `mail.*` methods, forwarded by the supervisor to `<state>/run/mail.sock`.

use crate::client::NodeClient;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::CtlError;
use crate::output::{Output, table, text, time};

#[derive(Debug, Subcommand)]
pub enum MailCmd {
    /// Listener, relay and queue counts.
    Status,
    /// Queued messages (or dead letters with --dead).
    Queue {
        #[arg(long)]
        dead: bool,
    },
    /// Try every queued message now, ignoring the retry schedule.
    Flush,
    /// Delete a queued message or dead letter.
    Delete { id: String },
    /// Try a message again now (a dead letter goes back to the queue).
    Retry { id: String },
    /// Send a test message (to the admin recipients when none is given).
    Test { to: Vec<String> },
    /// Connect to the configured smarthost as a delivery does (TLS and
    /// AUTH included) and say NOOP; exits 1 when that fails.
    TestRelay,
    /// Mail the admin recipients (rate-limited, grouped).
    Notify {
        subject: String,
        #[arg(default_value = "")]
        body: String,
    },
}

fn queue_rows(v: &Value) -> Vec<Vec<String>> {
    v["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let to: Vec<String> = m["to"].as_array().into_iter().flatten().map(text).collect();
            let from = text(&m["from"]);
            vec![
                text(&m["id"]),
                if from.is_empty() { "<>".into() } else { from },
                to.join(","),
                time(&m["received"]),
                text(&m["attempts"]),
                time(&m["next_try"]),
                text(&m["last_error"]),
            ]
        })
        .collect()
}

impl MailCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            MailCmd::Status => {
                let v = client.call("mail.status", json!({}))?;
                out.show(&v, |v| {
                    println!("listen   {}", text(&v["listen"]));
                    let relay = &v["relay"];
                    if relay.is_null() {
                        println!("relay    none configured (mail stays queued)");
                    } else {
                        println!(
                            "relay    {} {}:{} tls={}{}",
                            text(&relay["mode"]),
                            text(&relay["host"]),
                            text(&relay["port"]),
                            text(&relay["tls"]),
                            if v["relay_usable"].as_bool() == Some(true) {
                                ""
                            } else {
                                " (not usable, see logs)"
                            }
                        );
                    }
                    println!("queued   {}", text(&v["queued"]));
                    println!("dead     {}", text(&v["dead"]));
                });
            }
            MailCmd::Queue { dead } => {
                let v = client.call("mail.queue", json!({"dead": dead}))?;
                out.show(&v, |v| {
                    table(
                        &[
                            "id",
                            "from",
                            "to",
                            "received",
                            "attempts",
                            "next try",
                            "last error",
                        ],
                        queue_rows(v),
                    )
                });
            }
            MailCmd::Flush => {
                let v = client.call("mail.flush", json!({}))?;
                out.show(&v, |v| {
                    println!("flushing {} queued messages", text(&v["queued"]))
                });
            }
            MailCmd::Delete { id } => {
                let v = client.call("mail.delete", json!({"id": id}))?;
                out.show(&v, |_| println!("message {id} deleted"));
            }
            MailCmd::Retry { id } => {
                let v = client.call("mail.retry", json!({"id": id}))?;
                out.show(&v, |_| println!("message {id} will be tried now"));
            }
            MailCmd::Test { to } => {
                let v = client.call("mail.test", json!({"to": to}))?;
                out.show(&v, |v| println!("test message {} queued", text(&v["id"])));
            }
            MailCmd::TestRelay => {
                let v = client.call("mail.relay_test", json!({}))?;
                let target = format!("{}:{}", text(&v["host"]), text(&v["port"]));
                out.show(&v, |v| {
                    if v["ok"].as_bool() == Some(true) {
                        println!(
                            "{target}: connected (TLS {}{}) in {} ms",
                            text(&v["tls"]),
                            if v["auth"].as_bool() == Some(true) {
                                ", logged in"
                            } else {
                                ""
                            },
                            text(&v["millis"])
                        );
                    }
                });
                if v["ok"].as_bool() != Some(true) {
                    return Err(CtlError::Refused(format!(
                        "{target}: {}",
                        text(&v["error"])
                    )));
                }
            }
            MailCmd::Notify { subject, body } => {
                let v = client.call("mail.notify", json!({"subject": subject, "body": body}))?;
                out.show(&v, |v| {
                    if v["held"].as_bool() == Some(true) {
                        println!("held for the next digest (rate limit)");
                    } else {
                        println!("queued {}", text(&v["id"]));
                    }
                });
            }
        }
        Ok(())
    }
}
