//! `ctl integrator ...`: the integrator's own methods, forwarded by the
//! supervisor to `<state>/run/integrator.sock`.

use std::path::PathBuf;

use crate::client::NodeClient;
use alpharen_rpc::config;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::CtlError;
use crate::output::{Output, table, text};

#[derive(Debug, Subcommand)]
pub enum IntegratorCmd {
    /// Workers, channels and load-balancer servers.
    Status,
    /// Deploy a service file, or a project as one unit: a `.zip` or (on
    /// the node) a directory of modules and packages, services with their
    /// helper modules. Validated first; on failure the old version keeps
    /// serving. FILE "-" reads standard input (over ssh:
    /// `ssh admin@node integrator deploy - --name svc.py < svc.py`).
    Deploy {
        file: PathBuf,
        /// The name to deploy as (`NAME.py` or `NAME.zip`); by default
        /// FILE's name. Needed with "-".
        #[arg(long)]
        name: Option<String>,
    },
    /// Python packages (wheels) the services may import: list them, or
    /// add / remove, list the set's versions, roll back to one.
    Packages {
        #[command(subcommand)]
        cmd: Option<PackagesCmd>,
    },
    /// Deployed services.
    List,
    /// Source of a service's file, or a project's files (active version
    /// unless --version).
    Source {
        name: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Versions of a service's file.
    Versions { name: String },
    /// Make an earlier version of a service's file active again.
    Rollback { name: String, version: i64 },
    /// Stop serving a service's file (its versions are kept).
    Undeploy { name: String },
    /// Calls, errors, mean and p99 per service.
    Stats,
    /// The REST channels as an OpenAPI 3.1 document (JSON), for generating clients.
    Openapi,
    /// Run a deployed service once with a payload (JSON, or a string when
    /// not JSON) and print its status, time and response.
    Invoke {
        name: String,
        payload: Option<String>,
    },
    /// HEAD ping of an outgoing REST connection.
    Ping { name: String },
    /// Show (or --set) the password / key of a security definition.
    Password {
        security: String,
        #[arg(long)]
        set: Option<String>,
    },
    /// Scheduled jobs with their next and last run and result.
    Jobs,
    /// Run a scheduled job now.
    JobRun { name: String },
    /// The key-value store (ARKVD).
    #[command(subcommand)]
    Kv(KvCmd),
    /// Pub/sub topics with per-subscriber queue depth and dead letters.
    Topics,
    /// Messages waiting on a topic (--dlq: its dead-letter queue).
    Queue {
        topic: String,
        #[arg(long)]
        subscriber: Option<String>,
        #[arg(long)]
        dlq: bool,
    },
    /// Drop the waiting (--dlq: the dead) messages of a topic.
    Purge {
        topic: String,
        #[arg(long)]
        subscriber: Option<String>,
        #[arg(long)]
        dlq: bool,
    },
    /// Put dead letters of a topic back on their queue (all, one
    /// subscriber's, or one message by --id).
    Redrive {
        topic: String,
        #[arg(long)]
        subscriber: Option<String>,
        #[arg(long)]
        id: Option<i64>,
    },
    /// Publish a message (JSON, or a string when not JSON).
    Publish { topic: String, message: String },
    /// Locks currently held.
    Locks,
}

#[derive(Debug, Subcommand)]
pub enum PackagesCmd {
    /// Upload wheels (`.whl`): pure-Python ones, or built for this node's
    /// Python and architecture. The workers restart on the new set
    /// without dropping a request.
    Add {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Remove a package by its name as listed.
    Remove { name: String },
    /// The package set's versions, newest first, with what changed.
    Sets,
    /// Make an earlier set version the set again (a new version); the
    /// workers restart on it without dropping a request.
    Rollback { version: i64 },
}

#[derive(Debug, Subcommand)]
pub enum KvCmd {
    Get {
        key: String,
        #[arg(long, default_value = "default")]
        ns: String,
    },
    /// Set a key (VALUE is JSON, or a string when not JSON).
    Set {
        key: String,
        value: String,
        #[arg(long, default_value = "default")]
        ns: String,
        /// Seconds until the key expires.
        #[arg(long)]
        ttl: Option<f64>,
    },
    Del {
        key: String,
        #[arg(long, default_value = "default")]
        ns: String,
    },
    /// Keys of a namespace starting with PREFIX, and all namespaces.
    List {
        #[arg(default_value = "")]
        prefix: String,
        #[arg(long, default_value = "default")]
        ns: String,
    },
}

/// A new password is a config change like any other (the write path keeps
/// it in the secret store and the integrator reloads); the revision's
/// comment names the definition, never the value.
fn set_password(client: &mut NodeClient, security: &str, value: &str) -> Result<(), CtlError> {
    let v = client.call(
        config::GET,
        config::Get {
            section: Some("integrator".into()),
            revision: None,
        },
    )?;
    let index = v["config"]["security"]
        .as_array()
        .and_then(|defs| defs.iter().position(|d| d["name"] == security))
        .ok_or_else(|| {
            CtlError::Refused(format!("no security definition is named {security:?}"))
        })?;
    client.call(
        config::SET,
        config::Set {
            path: format!("integrator.security[{index}].password"),
            value: json!(value),
            comment: format!("integrator password {security} changed"),
            author: None,
            expect_revision: v["revision"].as_i64(),
        },
    )?;
    Ok(())
}

fn json_or_string(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// The file name a deploy goes under: `--name`, else FILE's own name.
fn deploy_name(file: &std::path::Path, name: Option<&str>) -> Result<String, CtlError> {
    if let Some(n) = name {
        return Ok(n.to_string());
    }
    match file.file_name().and_then(|f| f.to_str()) {
        Some(n) if file.as_os_str() != "-" => Ok(n.to_string()),
        _ => Err(CtlError::Usage(
            "deploying from standard input needs --name NAME.py".into(),
        )),
    }
}

fn read_base64(file: &std::path::Path) -> Result<String, CtlError> {
    use base64::Engine as _;
    let bytes = std::fs::read(file)
        .map_err(|e| CtlError::Io(format!("cannot read {}: {e}", file.display())))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A project directory's `.py` files (path → source); `__pycache__` and
/// hidden entries are left out, anything else is the node's to judge.
fn read_project_dir(dir: &std::path::Path) -> Result<serde_json::Map<String, Value>, CtlError> {
    let mut out = serde_json::Map::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| CtlError::Io(format!("cannot read {}: {e}", d.display())))?;
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            if path.is_dir() {
                todo.push(path);
            } else if name.ends_with(".py") {
                let rel = path
                    .strip_prefix(dir)
                    .map(|r| r.to_string_lossy().replace('\\', "/"))
                    .unwrap_or(name);
                out.insert(rel, json!(super::read_input(&path)?));
            }
        }
    }
    Ok(out)
}

/// What `integrator.deploy` gets: a file's source, a zip, or a directory.
fn deploy_params(file: &std::path::Path, name: &str) -> Result<Value, CtlError> {
    if file.is_dir() {
        let name = name.trim_end_matches('/');
        return Ok(json!({"file": name, "files": read_project_dir(file)?}));
    }
    if name.ends_with(".zip") {
        let zip = if file.as_os_str() == "-" {
            use base64::Engine as _;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                .map_err(|e| CtlError::Io(format!("cannot read standard input: {e}")))?;
            base64::engine::general_purpose::STANDARD.encode(bytes)
        } else {
            read_base64(file)?
        };
        return Ok(json!({"file": name, "zip": zip}));
    }
    Ok(json!({"file": name, "source": super::read_input(file)?}))
}

impl IntegratorCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        if let IntegratorCmd::Password {
            security,
            set: Some(value),
        } = &self
        {
            set_password(client, security, value)?;
        }
        let (method, params) = match &self {
            IntegratorCmd::Status => ("integrator.status", json!({})),
            IntegratorCmd::Deploy { file, name } => {
                let name = deploy_name(file, name.as_deref())?;
                ("integrator.deploy", deploy_params(file, &name)?)
            }
            IntegratorCmd::Packages { cmd: None } => ("integrator.packages", json!({})),
            IntegratorCmd::Packages {
                cmd: Some(PackagesCmd::Add { files }),
            } => {
                for f in files {
                    let file = deploy_name(f, None)?;
                    let v = client.call(
                        "integrator.package_add",
                        json!({"file": file, "wheel": read_base64(f)?}),
                    )?;
                    out.show(&v, |v| {
                        println!(
                            "installed {} {} ({}); package set version {}",
                            text(&v["name"]),
                            text(&v["version"]),
                            text(&v["tags"][0]),
                            text(&v["set_version"])
                        )
                    });
                }
                return Ok(());
            }
            IntegratorCmd::Packages {
                cmd: Some(PackagesCmd::Remove { name }),
            } => ("integrator.package_remove", json!({"name": name})),
            IntegratorCmd::Packages {
                cmd: Some(PackagesCmd::Sets),
            } => ("integrator.package_sets", json!({})),
            IntegratorCmd::Packages {
                cmd: Some(PackagesCmd::Rollback { version }),
            } => ("integrator.package_rollback", json!({"version": version})),
            IntegratorCmd::List => ("integrator.list", json!({})),
            IntegratorCmd::Source { name, version } => (
                "integrator.source",
                json!({"name": name, "version": version}),
            ),
            IntegratorCmd::Versions { name } => ("integrator.versions", json!({"name": name})),
            IntegratorCmd::Rollback { name, version } => (
                "integrator.rollback",
                json!({"name": name, "version": version}),
            ),
            IntegratorCmd::Undeploy { name } => ("integrator.undeploy", json!({"name": name})),
            IntegratorCmd::Stats => ("integrator.stats", json!({})),
            IntegratorCmd::Openapi => ("integrator.openapi", json!({})),
            IntegratorCmd::Invoke { name, payload } => (
                "integrator.invoke",
                json!({"name": name, "payload": payload.as_deref().map(json_or_string)}),
            ),
            IntegratorCmd::Ping { name } => ("integrator.ping", json!({"name": name})),
            IntegratorCmd::Password { security, .. } => {
                ("integrator.password", json!({"security": security}))
            }
            IntegratorCmd::Jobs => ("integrator.jobs", json!({})),
            IntegratorCmd::JobRun { name } => ("integrator.job_run", json!({"name": name})),
            IntegratorCmd::Kv(KvCmd::Get { key, ns }) => {
                ("integrator.kv_get", json!({"ns": ns, "key": key}))
            }
            IntegratorCmd::Kv(KvCmd::Set {
                key,
                value,
                ns,
                ttl,
            }) => (
                "integrator.kv_set",
                json!({"ns": ns, "key": key, "value": json_or_string(value), "ttl": ttl}),
            ),
            IntegratorCmd::Kv(KvCmd::Del { key, ns }) => {
                ("integrator.kv_del", json!({"ns": ns, "key": key}))
            }
            IntegratorCmd::Kv(KvCmd::List { prefix, ns }) => {
                ("integrator.kv_list", json!({"ns": ns, "prefix": prefix}))
            }
            IntegratorCmd::Topics => ("integrator.topics", json!({})),
            IntegratorCmd::Redrive {
                topic,
                subscriber,
                id,
            } => (
                "integrator.redrive",
                json!({"topic": topic, "subscriber": subscriber, "id": id}),
            ),
            IntegratorCmd::Queue {
                topic,
                subscriber,
                dlq,
            } => (
                "integrator.queue",
                json!({"topic": topic, "subscriber": subscriber, "dlq": dlq}),
            ),
            IntegratorCmd::Purge {
                topic,
                subscriber,
                dlq,
            } => (
                "integrator.purge",
                json!({"topic": topic, "subscriber": subscriber, "dlq": dlq}),
            ),
            IntegratorCmd::Publish { topic, message } => (
                "integrator.publish",
                json!({"topic": topic, "data": json_or_string(message)}),
            ),
            IntegratorCmd::Locks => ("integrator.locks", json!({})),
        };
        let v = client.call(method, params)?;
        out.show(&v, |v| human(&self, v));
        Ok(())
    }
}

fn rows(v: &Value, cols: &[&str]) -> Vec<Vec<String>> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|r| cols.iter().map(|c| text(&r[*c])).collect())
                .collect()
        })
        .unwrap_or_default()
}

fn human(cmd: &IntegratorCmd, v: &Value) {
    match cmd {
        IntegratorCmd::List => {
            let cols = ["name", "file", "version", "doc"];
            table(&cols, rows(v, &cols));
        }
        IntegratorCmd::Versions { .. } => {
            let cols = ["version", "file", "deployed_at", "actor", "active"];
            table(&cols, rows(v, &cols));
        }
        IntegratorCmd::Stats => {
            let cols = ["service", "calls", "errors", "mean_ms", "p99_ms"];
            table(&cols, rows(v, &cols));
        }
        IntegratorCmd::Invoke { .. } => {
            println!(
                "HTTP {} in {} ms (cid {})",
                text(&v["status"]),
                text(&v["ms"]),
                text(&v["cid"])
            );
            match &v["body"] {
                Value::String(s) => println!("{s}"),
                b => println!("{}", serde_json::to_string_pretty(b).unwrap_or_default()),
            }
        }
        IntegratorCmd::Jobs => {
            let cols = [
                "name",
                "kind",
                "service",
                "next_run",
                "last_run",
                "last_result",
                "runs",
            ];
            table(&cols, rows(v, &cols));
        }
        IntegratorCmd::Topics => {
            let cols = [
                "topic",
                "subscriber",
                "ready",
                "in_flight",
                "dead",
                "max_depth",
            ];
            table(&cols, rows(v, &cols));
        }
        IntegratorCmd::Queue { .. } => {
            let cols = [
                "id",
                "msg_id",
                "subscriber",
                "attempts",
                "state",
                "last_error",
            ];
            table(&cols, rows(v, &cols));
        }
        IntegratorCmd::Kv(KvCmd::Get { .. }) => {
            if v["found"] == json!(true) {
                println!(
                    "{}",
                    serde_json::to_string(&v["value"]["json"]).unwrap_or_default()
                );
            } else {
                println!("(not found)");
            }
        }
        IntegratorCmd::Kv(KvCmd::List { .. }) => {
            for k in v["keys"].as_array().into_iter().flatten() {
                println!("{}", text(k));
            }
        }
        IntegratorCmd::Source { .. } => match v["files"].as_object() {
            // A project unit: each file under its path.
            Some(files) => {
                for (path, source) in files {
                    println!("# ---- {path}");
                    print!("{}", source.as_str().unwrap_or_default());
                }
            }
            None => print!("{}", v["source"].as_str().unwrap_or_default()),
        },
        IntegratorCmd::Password { .. } => println!("{}", text(&v["password"])),
        IntegratorCmd::Packages { cmd: None } => {
            println!("package set version {}", text(&v["set_version"]));
            let cols = ["name", "version", "tags", "size", "added_at", "added_by"];
            table(&cols, rows(&v["packages"], &cols));
        }
        IntegratorCmd::Packages {
            cmd: Some(PackagesCmd::Sets),
        } => {
            let cols = [
                "version",
                "current",
                "change",
                "changed_at",
                "actor",
                "restorable",
                "packages",
            ];
            table(&cols, rows(&v["sets"], &cols));
        }
        IntegratorCmd::Packages {
            cmd: Some(PackagesCmd::Rollback { .. }),
        } => println!(
            "package set version {} is set version {} again",
            text(&v["set_version"]),
            text(&v["rolled_back_to"])
        ),
        IntegratorCmd::Deploy { .. } => println!(
            "deployed {} version {}: {}",
            text(&v["file"]),
            text(&v["version"]),
            v["services"]
                .as_array()
                .map(|a| a
                    .iter()
                    .map(|s| text(&s["name"]))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        _ => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}
