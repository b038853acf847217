//! config show|apply|set|history|diff|rollback|confirm|export.

use std::path::PathBuf;

use crate::client::NodeClient;
use alpharen_rpc::config::{self as m, Apply, Confirm, Diff, Export, Get, Limit, Rollback, Set};
use clap::Subcommand;
use serde_json::Value;

use crate::CtlError;
use crate::output::{Output, table, text, time};

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the configuration (one section, or a past revision).
    Show {
        section: Option<String>,
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Apply the sections a TOML or JSON file has ("-" for stdin); the
    /// others stay as they are. Prints the changes it made.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
        /// Replace the whole document: sections the file leaves out go back
        /// to their defaults.
        #[arg(long)]
        replace: bool,
        /// Print the changes without making them.
        #[arg(long)]
        dry_run: bool,
        /// Refuse if the current revision is not N (someone else changed it).
        #[arg(long, value_name = "N")]
        expect_revision: Option<i64>,
    },
    /// Set one value, e.g. `config set node.hostname node2`.
    Set {
        path: String,
        value: String,
        #[arg(short = 'm', long = "message", default_value = "")]
        message: String,
        /// Refuse if the current revision is not N (someone else changed it).
        #[arg(long, value_name = "N")]
        expect_revision: Option<i64>,
    },
    /// List revisions, newest first.
    History {
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: u32,
    },
    /// Key-by-key differences between two revisions.
    Diff { a: i64, b: i64 },
    /// Make a new revision equal to revision N.
    Rollback { revision: i64 },
    /// Keep the pending (risky) revision N; otherwise it reverts by itself.
    /// Without N, the one pending now (its number is printed).
    Confirm { revision: Option<i64> },
    /// Print the configuration as TOML, ready for `config apply`.
    Export {
        #[arg(long)]
        with_secrets: bool,
    },
}

/// One line per changed key, as `config diff` prints them.
fn print_changes(changes: &Value) {
    for c in changes.as_array().into_iter().flatten() {
        let path = text(&c["path"]);
        match (c["old"].is_null(), c["new"].is_null()) {
            (true, _) => println!("+ {path} = {}", c["new"]),
            (_, true) => println!("- {path} = {}", c["old"]),
            _ => println!("~ {path}: {} -> {}", c["old"], c["new"]),
        }
    }
}

fn print_outcome(v: &Value) {
    print_changes(&v["changes"]);
    match v["revision"].as_object() {
        None => println!("no changes"),
        Some(r) => {
            let changed: Vec<String> = v["changed"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            println!(
                "revision {} applied ({})",
                text(&r["id"]),
                changed.join(", ")
            );
        }
    }
    if let Some(p) = v["pending"].as_object() {
        println!(
            "this change can cut you off: confirm it within {} s with `alpharen ctl config confirm {}`, or it reverts to revision {}",
            text(&p["seconds_left"]),
            text(&p["revision"]),
            text(&p["fallback"])
        );
    }
}

impl ConfigCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            ConfigCmd::Show { section, revision } => {
                let v = client.call(
                    m::GET,
                    Get {
                        section: section.clone(),
                        revision,
                    },
                )?;
                if out.json {
                    out.show(&v, |_| {});
                } else {
                    let doc = &v["config"];
                    let rendered = match &section {
                        Some(name) => {
                            let mut t = serde_json::Map::new();
                            t.insert(name.clone(), doc.clone());
                            toml_text(&Value::Object(t))
                        }
                        None => toml_text(doc),
                    };
                    print!("{rendered}");
                }
            }
            ConfigCmd::Apply {
                file,
                message,
                replace,
                dry_run,
                expect_revision,
            } => {
                let text = super::read_input(&file)?;
                let v = client.call(
                    m::APPLY,
                    Apply {
                        text: Some(text),
                        comment: message,
                        replace,
                        dry_run,
                        expect_revision,
                        ..Apply::default()
                    },
                )?;
                if dry_run {
                    out.show(&v, |v| {
                        print_changes(&v["changes"]);
                        let n = v["changes"].as_array().map_or(0, Vec::len);
                        println!("dry run: {n} change(s), nothing applied");
                    });
                } else {
                    out.show(&v, print_outcome);
                }
            }
            ConfigCmd::Set {
                path,
                value,
                message,
                expect_revision,
            } => {
                let value = alpharen_store::diff::parse_cli_value(&value);
                let v = client.call(
                    m::SET,
                    Set {
                        path,
                        value,
                        comment: message,
                        author: None,
                        expect_revision,
                    },
                )?;
                out.show(&v, print_outcome);
            }
            ConfigCmd::History { limit } => {
                let v = client.call(m::HISTORY, Limit { limit })?;
                out.show(&v, |v| {
                    let pending = v["pending"]["revision"].as_i64();
                    let rows = v["revisions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| {
                            let id = r["id"].as_i64();
                            vec![
                                format!(
                                    "{}{}",
                                    text(&r["id"]),
                                    if id == pending && id.is_some() {
                                        " (pending)"
                                    } else {
                                        ""
                                    }
                                ),
                                time(&r["created_at"]),
                                text(&r["author"]),
                                text(&r["comment"]),
                            ]
                        })
                        .collect();
                    table(&["revision", "time", "author", "comment"], rows);
                });
            }
            ConfigCmd::Diff { a, b } => {
                let v = client.call(m::DIFF, Diff { a, b })?;
                out.show(&v, |v| {
                    if v.as_array().is_none_or(Vec::is_empty) {
                        println!("revisions {a} and {b} are the same");
                    }
                    print_changes(v);
                });
            }
            ConfigCmd::Rollback { revision } => {
                let v = client.call(
                    m::ROLLBACK,
                    Rollback {
                        revision,
                        author: None,
                        expect_revision: None,
                    },
                )?;
                out.show(&v, print_outcome);
            }
            ConfigCmd::Confirm { revision } => {
                let revision = match revision {
                    Some(n) => n,
                    None => {
                        let h = client.call(m::HISTORY, Limit { limit: 1 })?;
                        h["pending"]["revision"].as_i64().ok_or_else(|| {
                            CtlError::Refused("nothing is waiting for confirmation".into())
                        })?
                    }
                };
                let v = client.call(
                    m::CONFIRM,
                    Confirm {
                        revision,
                        author: None,
                    },
                )?;
                out.show(&v, |v| {
                    println!("revision {} confirmed", text(&v["confirmed"]))
                });
            }
            ConfigCmd::Export { with_secrets } => {
                let v = client.call(m::EXPORT, Export { with_secrets })?;
                out.show(&v, |v| print!("{}", text(&v["text"])));
            }
        }
        Ok(())
    }
}

/// A JSON document as TOML for reading; JSON if TOML cannot hold it.
fn toml_text(v: &Value) -> String {
    alpharen_store::config::json_to_toml(v)
        .unwrap_or_else(|| format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()))
}
