//! `config.*`: read, apply, set, history, diff, rollback, confirm, export.

use std::sync::Arc;

use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_store::{ApplyOutcome, Config, Section, now_unix};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{author, store_err, unknown, with_store};
use crate::state::NodeState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Get {
    section: Option<String>,
    revision: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Apply {
    /// The document as JSON...
    config: Option<Value>,
    /// ...or as TOML/JSON text.
    text: Option<String>,
    #[serde(default)]
    comment: String,
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Set {
    path: String,
    value: Value,
    #[serde(default)]
    comment: String,
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Diff {
    a: i64,
    b: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rollback {
    revision: i64,
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirm {
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    #[serde(default = "twenty")]
    limit: u32,
}

fn twenty() -> u32 {
    20
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Export {
    #[serde(default)]
    with_secrets: bool,
}

fn invalid(problems: Vec<alpharen_store::Problem>) -> RpcError {
    store_err(alpharen_store::StoreError::Invalid(problems))
}

pub fn outcome_json(out: &ApplyOutcome) -> Value {
    json!({
        "revision": out.revision,
        "changed": out.changed,
        "pending": out.pending.map(|p| json!({
            "revision": p.revision,
            "fallback": p.fallback,
            "deadline": p.deadline,
            "seconds_left": p.deadline - now_unix(),
        })),
    })
}

/// Writes through the store and brings the services in line.
pub async fn commit(
    node: &Arc<NodeState>,
    write: impl FnOnce(&mut alpharen_store::Store) -> Result<ApplyOutcome, alpharen_store::StoreError>,
) -> Result<Value, RpcError> {
    let (old, out, new) = with_store(node, |s| {
        let old = s.current_config()?;
        let out = write(s)?;
        let new = s.current_config()?;
        Ok((old, out, new))
    })?;
    if out.revision.is_some() {
        node.reconcile(&old, &new).await;
    }
    Ok(outcome_json(&out))
}

/// Splits an optional `secrets` table off a document (written by
/// `config export --with-secrets`) so the rest parses as a `Config`.
fn take_secrets(doc: &mut Value) -> Result<Vec<(String, String)>, RpcError> {
    let Some(Value::Object(map)) = doc.as_object_mut().and_then(|m| m.remove("secrets")) else {
        return Ok(Vec::new());
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            _ => Err(invalid(vec![alpharen_store::Problem {
                path: format!("secrets.{k}"),
                message: "a secret must be a string".into(),
            }])),
        })
        .collect()
}

pub async fn call(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let value = match call.method.as_str() {
        "config.get" => {
            let p: Get = call.params()?;
            let section = match &p.section {
                Some(name) => Some(Section::parse(name).ok_or_else(|| {
                    RpcError::invalid_params(format!(
                        "{name:?} is not a section; sections: {}",
                        Section::ALL.map(|s| s.name()).join(", ")
                    ))
                })?),
                None => None,
            };
            let (id, config, pending) = with_store(node, |s| {
                let rev = match p.revision {
                    Some(id) => Some(s.revision(id)?),
                    None => s.current()?,
                };
                let id = rev.as_ref().map(|r| r.meta.id);
                Ok((id, rev.map(|r| r.config).unwrap_or_default(), s.pending()?))
            })?;
            let doc = match section {
                Some(sec) => config.section_json(sec),
                None => config.to_json(),
            };
            json!({"revision": id, "config": doc, "pending": pending})
        }
        "config.apply" => {
            let p: Apply = call.params()?;
            let mut doc = match (p.config, p.text) {
                (Some(v), None) => v,
                (None, Some(t)) => alpharen_store::config::text_to_json(&t).map_err(invalid)?,
                _ => {
                    return Err(RpcError::invalid_params(
                        "config.apply needs exactly one of `config` (JSON) or `text` (TOML or JSON)",
                    ));
                }
            };
            let secrets = take_secrets(&mut doc)?;
            let config = Config::from_value(doc).map_err(invalid)?;
            let who = author(&call, p.author);
            let comment = p.comment;
            commit(node, move |s| {
                for (k, v) in &secrets {
                    s.set_secret(k, v)?;
                }
                s.apply(&config, &who, &comment)
            })
            .await?
        }
        "config.set" => {
            let p: Set = call.params()?;
            let mut doc = with_store(node, |s| Ok(s.current_config()?.to_json()))?;
            alpharen_store::diff::set_path(&mut doc, &p.path, p.value.clone())
                .map_err(RpcError::invalid_params)?;
            let config = Config::from_value(doc).map_err(invalid)?;
            let who = author(&call, p.author);
            let comment = if p.comment.is_empty() {
                format!("set {} = {}", p.path, p.value)
            } else {
                p.comment
            };
            commit(node, move |s| s.apply(&config, &who, &comment)).await?
        }
        "config.history" => {
            let p: Limit = call.params()?;
            let (hist, pending) = with_store(node, |s| Ok((s.history(p.limit)?, s.pending()?)))?;
            json!({"revisions": hist, "pending": pending})
        }
        "config.diff" => {
            let p: Diff = call.params()?;
            json!(with_store(node, |s| s.diff(p.a, p.b))?)
        }
        "config.rollback" => {
            let p: Rollback = call.params()?;
            let who = author(&call, p.author);
            commit(node, move |s| s.rollback(p.revision, &who)).await?
        }
        "config.confirm" => {
            let p: Confirm = call.params()?;
            let who = author(&call, p.author);
            let p = with_store(node, |s| s.confirm(&who))?;
            node.pending_changed.notify_one();
            json!({"confirmed": p.revision})
        }
        "config.export" => {
            let p: Export = call.params()?;
            let (id, config, secrets) = with_store(node, |s| {
                let rev = s.current()?;
                let mut secrets = Vec::new();
                if p.with_secrets {
                    for name in s.secret_names()? {
                        if let Some(v) = s.secret(&name)? {
                            secrets.push((name, v));
                        }
                    }
                }
                Ok((
                    rev.as_ref().map(|r| r.meta.id),
                    rev.map(|r| r.config).unwrap_or_default(),
                    secrets,
                ))
            })?;
            let mut text = config.to_toml();
            if !secrets.is_empty() {
                let table: toml::Table = secrets
                    .into_iter()
                    .map(|(k, v)| (k, toml::Value::String(v)))
                    .collect();
                let mut wrapper = toml::Table::new();
                wrapper.insert("secrets".into(), toml::Value::Table(table));
                text.push('\n');
                text.push_str(&toml::to_string(&wrapper).unwrap_or_default());
            }
            json!({"revision": id, "text": text})
        }
        _ => return Err(unknown(&call)),
    };
    Ok(Reply::Value(value))
}
