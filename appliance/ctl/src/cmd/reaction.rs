//! reaction status|incidents|stats|runs|run|approve|deny|start|schedules|cancel|retry|skip: the
//! reaction service's `reaction.*` methods, forwarded by the supervisor to
//! `<state>/run/reaction.sock`.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::CtlError;
use crate::client::NodeClient;
use crate::output::{Output, table, text};

#[derive(Debug, Subcommand)]
pub enum ReactionCmd {
    /// Agents (online, last seen, version) and how many rules and flows.
    Status,
    /// The latest incidents: rule, agent, line, state (pending ones wait
    /// for approve or deny).
    Incidents {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only those waiting for approve or deny.
        #[arg(long)]
        pending: bool,
    },
    /// Incidents per rule (mean time to resolve) and runs per flow
    /// (success rate).
    Stats,
    /// The latest flow runs and the state of each of their steps.
    Runs {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One run with each step's output.
    Run { id: i64 },
    /// Start the flow of a pending incident.
    Approve { id: i64 },
    /// Refuse a pending incident: its flow does not run.
    Deny { id: i64 },
    /// Start a flow by hand: now, or once at a time (kept by the engine
    /// across restarts).
    Start {
        flow: String,
        /// When: RFC 3339 (`2026-12-03T10:00:00Z`, `...+01:00`).
        #[arg(long, conflicts_with = "in_secs")]
        at: Option<String>,
        /// When: this many seconds from now.
        #[arg(long = "in", value_name = "SECONDS")]
        in_secs: Option<u64>,
    },
    /// Flows started on a `schedule` (next start) and one-off starts
    /// (by hand, or a scheduled rule's incident).
    Schedules,
    /// Cancel a waiting one-off start (its id from `schedules`): its flow
    /// does not start; a scheduled incident's is `cancelled` too.
    Cancel { id: i64 },
    /// Run a failed task of a run again.
    Retry { run: i64, task: String },
    /// Skip a failed (or waiting) task of a run and go on with the next.
    Skip { run: i64, task: String },
}

/// `--at` (RFC 3339) or `--in` (seconds from now) as unix milliseconds.
fn start_at_ms(at: Option<&str>, in_secs: Option<u64>) -> Result<Option<i64>, CtlError> {
    if let Some(a) = at {
        let t = chrono::DateTime::parse_from_rfc3339(a).map_err(|e| {
            CtlError::Usage(format!(
                "--at {a:?} is not an RFC 3339 time such as 2026-12-03T10:00:00Z: {e}"
            ))
        })?;
        return Ok(Some(t.timestamp_millis()));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(in_secs.map(|s| now_ms + s as i64 * 1000))
}

fn ms_time(v: &Value) -> String {
    v.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "-".into(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

fn steps(run: &Value) -> String {
    run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}:{}", text(&s["name"]), text(&s["state"])))
        .collect::<Vec<_>>()
        .join(" ")
}

impl ReactionCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        let (method, params) = match &self {
            ReactionCmd::Status => ("reaction.status", json!({})),
            ReactionCmd::Incidents { limit, pending } => (
                "reaction.incidents",
                json!({ "limit": limit, "pending": pending }),
            ),
            ReactionCmd::Stats => ("reaction.stats", json!({})),
            ReactionCmd::Runs { limit } => ("reaction.runs", json!({ "limit": limit })),
            ReactionCmd::Run { id } => ("reaction.run", json!({ "id": id })),
            ReactionCmd::Approve { id } => ("reaction.approve", json!({ "id": id })),
            ReactionCmd::Deny { id } => ("reaction.deny", json!({ "id": id })),
            ReactionCmd::Start { flow, at, in_secs } => {
                let at_ms = start_at_ms(at.as_deref(), *in_secs)?;
                ("reaction.start", json!({ "flow": flow, "at_ms": at_ms }))
            }
            ReactionCmd::Schedules => ("reaction.schedules", json!({})),
            ReactionCmd::Cancel { id } => ("reaction.cancel", json!({ "id": id })),
            ReactionCmd::Retry { run, task } => {
                ("reaction.retry", json!({ "run": run, "task": task }))
            }
            ReactionCmd::Skip { run, task } => {
                ("reaction.skip", json!({ "run": run, "task": task }))
            }
        };
        let v = client.call(method, params)?;
        out.show(&v, |v| match &self {
            ReactionCmd::Status => {
                let rows = v["agents"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        vec![
                            text(&a["name"]),
                            text(&a["online"]),
                            text(&a["has_secret"]),
                            text(&a["last_seen_ms"]),
                            text(&a["version"]),
                        ]
                    })
                    .collect();
                table(
                    &["AGENT", "ONLINE", "SECRET", "LAST SEEN (ms)", "VERSION"],
                    rows,
                );
                println!(
                    "{} rules, {} flows; agent API on port {}",
                    text(&v["rules"]),
                    text(&v["flows"]),
                    text(&v["port"])
                );
            }
            ReactionCmd::Incidents { .. } => {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| {
                        vec![
                            text(&i["id"]),
                            text(&i["rule"]),
                            text(&i["agent"]),
                            text(&i["state"]),
                            text(&i["run_id"]),
                            text(&i["line"]),
                        ]
                    })
                    .collect();
                table(&["ID", "RULE", "AGENT", "STATE", "RUN", "LINE"], rows);
            }
            ReactionCmd::Stats => {
                let rows = v["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let mut row = vec![text(&r["rule"])];
                        row.extend(
                            ["incidents", "pending", "denied", "resolved"].map(|k| text(&r[k])),
                        );
                        row.push(text(&r["mean_resolve_ms"]));
                        row
                    })
                    .collect();
                table(
                    &[
                        "RULE",
                        "INCIDENTS",
                        "PENDING",
                        "DENIED",
                        "RESOLVED",
                        "MEAN TO RESOLVE (ms)",
                    ],
                    rows,
                );
                let rows = v["flows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        let mut row = vec![text(&f["flow"])];
                        row.extend(["runs", "done", "failed", "running"].map(|k| text(&f[k])));
                        row.push(
                            f["success_rate"]
                                .as_f64()
                                .map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
                        );
                        row
                    })
                    .collect();
                table(
                    &["FLOW", "RUNS", "DONE", "FAILED", "RUNNING", "SUCCESS"],
                    rows,
                );
            }
            ReactionCmd::Runs { .. } => {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        vec![
                            text(&r["id"]),
                            text(&r["flow"]),
                            text(&r["state"]),
                            text(&r["incident_id"]),
                            steps(r),
                        ]
                    })
                    .collect();
                table(&["ID", "FLOW", "STATE", "INCIDENT", "STEPS"], rows);
            }
            ReactionCmd::Run { .. } => {
                println!(
                    "run {} of flow {}: {}",
                    text(&v["id"]),
                    text(&v["flow"]),
                    text(&v["state"])
                );
                for s in v["steps"].as_array().into_iter().flatten() {
                    println!(
                        "- {} ({}) {} exit {}: {}",
                        text(&s["name"]),
                        text(&s["kind"]),
                        text(&s["state"]),
                        text(&s["exit_code"]),
                        text(&s["output"]).trim_end()
                    );
                }
            }
            ReactionCmd::Schedules => {
                let rows = v["flows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| {
                        vec![
                            text(&f["flow"]),
                            text(&f["schedule"]),
                            ms_time(&f["next_ms"]),
                        ]
                    })
                    .collect();
                table(&["FLOW", "SCHEDULE", "NEXT START"], rows);
                let rows = v["starts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        vec![
                            text(&s["id"]),
                            text(&s["flow"]),
                            ms_time(&s["at_ms"]),
                            text(&s["state"]),
                            text(&s["incident_id"]),
                            text(&s["run_id"]),
                        ]
                    })
                    .collect();
                table(&["START", "FLOW", "AT", "STATE", "INCIDENT", "RUN"], rows);
            }
            _ => println!("{v}"),
        });
        Ok(())
    }
}
