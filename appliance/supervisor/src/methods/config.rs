//! `config.*`: read, apply, set, history, diff, rollback, confirm, export.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use alpharen_rpc::config::{
    self as m, Apply, Confirm, Confirmed, Diff, Export, Exported, Get, Limit, PeerAdd, PeerEnable,
    PeerRemove, Rollback, Set,
};
use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_store::config::VpnPeer;
use alpharen_store::diff::{self, Change};
use alpharen_store::{ApplyOutcome, Config, Problem, Section, Write, now_unix};
use serde_json::{Value, json};

use super::{author, store_err, unknown, with_store};
use crate::state::NodeState;

pub(super) fn or_default(given: String, default: impl FnOnce() -> String) -> String {
    if given.is_empty() { default() } else { given }
}

fn invalid(problems: Vec<alpharen_store::Problem>) -> RpcError {
    store_err(alpharen_store::StoreError::Invalid(problems))
}

pub fn outcome_json(out: &ApplyOutcome, changes: &[Change]) -> Value {
    json!({
        "revision": out.revision,
        "changed": out.changed,
        "changes": changes,
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
    write: impl FnOnce(&mut alpharen_store::Store) -> Result<ApplyOutcome, alpharen_store::StoreError>
    + Send
    + 'static,
) -> Result<Value, RpcError> {
    // Off the supervisor's one thread: on a cluster member the write
    // waits for the cluster's configuration log (up to seconds during a
    // leader election), and services, status and the control socket must
    // not wait with it.
    let n = node.clone();
    let (old, out, new) = tokio::task::spawn_blocking(move || {
        with_store(&n, |s| {
            let old = s.current_config()?;
            let out = write(s)?;
            let new = s.current_config()?;
            Ok((old, out, new))
        })
    })
    .await
    .map_err(|e| {
        RpcError::new(
            "internal_error",
            format!("the configuration write failed: {e}"),
        )
    })??;
    let changes = if out.revision.is_some() {
        node.reconcile(&old, &new, &out.changed).await;
        diff::diff(&old.to_json(), &new.to_json())
    } else {
        Vec::new()
    };
    Ok(outcome_json(&out, &changes))
}

/// How often, and how far apart, a path set is tried again on a cluster
/// member that is behind the cluster's configuration log (it follows
/// the log within a second or two of being woken).
const BEHIND_TRIES: u32 = 10;
const BEHIND_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// `config.set`: the current document with `p.path` set, as a new
/// revision. `behind` is set when the cluster's configuration log found
/// this member behind it.
async fn set_path(
    node: &Arc<NodeState>,
    p: &Set,
    who: &str,
    behind: Arc<AtomicBool>,
) -> Result<Value, RpcError> {
    let mut doc = with_store(node, |s| Ok(s.current_config()?.to_json()))?;
    alpharen_store::diff::set_path(&mut doc, &p.path, p.value.clone())
        .map_err(RpcError::invalid_params)?;
    let config = Config::from_value(doc).map_err(invalid)?;
    let comment = if p.comment.is_empty() {
        // The value as it will be stored: a password shows as a
        // reference, never in clear.
        let shown = diff::get_path(&config.redacted().to_json(), &p.path).unwrap_or(Value::Null);
        format!("set {} = {}", p.path, shown)
    } else {
        p.comment.clone()
    };
    let (who, expect) = (who.to_string(), p.expect_revision);
    commit(node, move |s| {
        let out = s.write(&config, &write(&who, &comment, expect));
        if matches!(out, Err(alpharen_store::StoreError::ClusterBehind)) {
            behind.store(true, Ordering::Relaxed);
        }
        out
    })
    .await
}

/// The document an apply asks for: the sections it has over the current
/// ones, or the whole of it with `replace`.
fn merged(current: Value, doc: Value, replace: bool) -> Value {
    match (current, doc) {
        (Value::Object(mut cur), Value::Object(new)) if !replace => {
            for (k, v) in new {
                cur.insert(k, v);
            }
            Value::Object(cur)
        }
        (_, doc) => doc,
    }
}

fn write<'a>(who: &'a str, comment: &'a str, expect_revision: Option<i64>) -> Write<'a> {
    Write {
        expect_revision,
        ..Write::new(who, comment)
    }
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
                line: None,
                path: format!("secrets.{k}"),
                message: "a secret must be a string".into(),
            }])),
        })
        .collect()
}

pub async fn call(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let value = match call.method.as_str() {
        m::GET => {
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
            let (id, config, pending, mark) = with_store(node, |s| {
                let rev = match p.revision {
                    Some(id) => Some(s.revision(id)?),
                    None => s.current()?,
                };
                let id = rev.as_ref().map(|r| r.meta.id);
                Ok((
                    id,
                    rev.map(|r| r.config).unwrap_or_default(),
                    s.pending()?,
                    s.shared_mark()?,
                ))
            })?;
            let doc = match section {
                Some(sec) => config.section_json(sec),
                None => config.to_json(),
            };
            // The cluster-wide revision of [integrator]'s shared part this
            // member has applied (absent outside a cluster).
            json!({"revision": id, "config": doc, "pending": pending,
                "cluster_revision": mark.map(|m| m.seq)})
        }
        m::APPLY => {
            let p: Apply = call.params()?;
            let mut doc = match (p.config, &p.text) {
                (Some(v), None) => v,
                (None, Some(t)) => alpharen_store::config::text_to_json(t).map_err(invalid)?,
                _ => {
                    return Err(RpcError::invalid_params(
                        "config.apply needs exactly one of `config` (JSON) or `text` (TOML or JSON)",
                    ));
                }
            };
            let secrets = take_secrets(&mut doc)?;
            let current = with_store(node, |s| s.current_config())?;
            // Problems in a text point at its lines too (a path it does
            // not hold, from the merged document, gets none).
            let config = Config::from_value(merged(current.to_json(), doc, p.replace))
                .map_err(|e| match &p.text {
                    Some(t) => alpharen_store::config::add_lines(t, e),
                    None => e,
                })
                .map_err(invalid)?;
            if p.dry_run {
                let changes = diff::diff(&current.to_json(), &config.redacted().to_json());
                return Ok(Reply::Value(json!({"dry_run": true, "changes": changes})));
            }
            let who = author(&call, p.author);
            let comment = p.comment;
            let names: Vec<String> = secrets.iter().map(|(k, _)| k.clone()).collect();
            let readers = config.clone();
            let out = commit(node, move |s| {
                for (k, v) in &secrets {
                    s.set_secret(k, v)?;
                }
                s.write(&config, &write(&who, &comment, p.expect_revision))
            })
            .await?;
            node.secrets_changed(&readers, &names).await;
            out
        }
        m::SET => {
            let p: Set = call.params()?;
            let who = author(&call, p.author.clone());
            // A path set on a cluster member that has not applied the
            // cluster's latest [integrator] yet is set again on it once
            // applied (the set is of one path, so nothing of the other
            // change is lost); one that names the revision it expects
            // is not.
            let mut tries = 0;
            loop {
                let behind = Arc::new(AtomicBool::new(false));
                let set = set_path(node, &p, &who, behind.clone()).await;
                if set.is_ok()
                    || !behind.load(Ordering::Relaxed)
                    || p.expect_revision.is_some()
                    || tries == BEHIND_TRIES
                {
                    break set?;
                }
                tries += 1;
                tokio::time::sleep(BEHIND_PAUSE).await;
            }
        }
        m::HISTORY => {
            let p: Limit = call.params()?;
            let (hist, pending) = with_store(node, |s| Ok((s.history(p.limit)?, s.pending()?)))?;
            json!({"revisions": hist, "pending": pending})
        }
        m::DIFF => {
            let p: Diff = call.params()?;
            json!(with_store(node, |s| s.diff(p.a, p.b))?)
        }
        m::ROLLBACK => {
            let p: Rollback = call.params()?;
            let who = author(&call, p.author);
            commit(node, move |s| {
                s.rollback(p.revision, &write(&who, "", p.expect_revision))
            })
            .await?
        }
        m::CONFIRM => {
            let p: Confirm = call.params()?;
            let who = author(&call, p.author);
            let p = with_store(node, |s| s.confirm(p.revision, &who))?;
            node.pending_changed.notify_one();
            json!(Confirmed {
                confirmed: p.revision
            })
        }
        m::VPN_PEER_ADD => {
            let p: PeerAdd<VpnPeer> = call.params()?;
            let who = author(&call, p.author);
            let comment = or_default(p.comment, || format!("vpn peer {} added", p.peer.name));
            let peer = p.peer;
            commit(node, move |s| {
                s.edit(&write(&who, &comment, p.expect_revision), |c| {
                    if c.vpn.peers.iter().any(|q| q.name == peer.name) {
                        return Err(vec![Problem {
                            line: None,
                            path: "vpn.peers".into(),
                            message: format!("a peer named {:?} already exists", peer.name),
                        }]);
                    }
                    c.vpn.peers.push(peer.clone());
                    Ok(())
                })
            })
            .await?
        }
        m::VPN_PEER_REMOVE => {
            let p: PeerRemove = call.params()?;
            let who = author(&call, p.author);
            let comment = or_default(p.comment, || format!("vpn peer {} removed", p.name));
            let name = p.name;
            commit(node, move |s| {
                s.edit(&Write::new(&who, &comment), |c| {
                    let before = c.vpn.peers.len();
                    c.vpn.peers.retain(|q| q.name != name);
                    if c.vpn.peers.len() == before {
                        return Err(vec![Problem {
                            line: None,
                            path: "vpn.peers".into(),
                            message: format!("there is no peer named {name:?}"),
                        }]);
                    }
                    Ok(())
                })
            })
            .await?
        }
        m::VPN_PEER_ENABLE => {
            let p: PeerEnable = call.params()?;
            let who = author(&call, p.author);
            let verb = if p.enabled { "enabled" } else { "disabled" };
            let comment = or_default(p.comment, || format!("vpn peer {} {verb}", p.name));
            let (name, enabled) = (p.name, p.enabled);
            commit(node, move |s| {
                s.edit(&Write::new(&who, &comment), |c| {
                    let Some(peer) = c.vpn.peers.iter_mut().find(|q| q.name == name) else {
                        return Err(vec![Problem {
                            line: None,
                            path: "vpn.peers".into(),
                            message: format!("there is no peer named {name:?}"),
                        }]);
                    };
                    peer.enabled = enabled;
                    Ok(())
                })
            })
            .await?
        }
        m::DNS_RECORD_ADD | m::DNS_RECORD_REMOVE => super::dns::call(node, &call).await?,
        m::EXPORT => {
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
            json!(Exported { revision: id, text })
        }
        _ => return Err(unknown(&call)),
    };
    Ok(Reply::Value(value))
}
