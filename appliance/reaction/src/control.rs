//! Control methods on `<state>/run/reaction.sock` (`alpharen ctl
//! reaction ...` and `/api/v1/reaction/...`): `reaction.status`,
//! `reaction.incidents {limit, pending}`, `reaction.stats`,
//! `reaction.runs`, `reaction.run {id}`, `reaction.approve {id}`,
//! `reaction.deny {id}`, `reaction.start {flow, at_ms}`,
//! `reaction.schedules`, `reaction.cancel {id}` (a waiting start),
//! `reaction.retry {run, task}`, `reaction.skip {run, task}`.

use std::sync::Arc;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use serde::Deserialize;
use serde_json::json;

use crate::db::DbError;
use crate::engine::{Node, now_ms};

pub struct Rpc {
    pub node: Arc<Node>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Id {
    id: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    #[serde(default = "fifty")]
    limit: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentsQuery {
    #[serde(default = "fifty")]
    limit: i64,
    /// Only those waiting for approve or deny.
    #[serde(default)]
    pending: bool,
}

fn fifty() -> i64 {
    50
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartParams {
    flow: String,
    /// Start once at this time (unix ms) instead of now.
    #[serde(default)]
    at_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunTask {
    run: i64,
    task: String,
}

fn err(e: DbError) -> RpcError {
    match e {
        DbError::State(m) => RpcError::new("conflict", m),
        DbError::NotFound(m) => RpcError::new("not_found", m),
        e => RpcError::new("internal", e.to_string()),
    }
}

impl Handler for Rpc {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        let n = &self.node;
        match call.method.as_str() {
            "reaction.status" => Ok(self.status().into()),
            "reaction.incidents" => {
                let p: IncidentsQuery = call.params()?;
                let list = n.db().incidents(p.limit.clamp(1, 1000), p.pending);
                Ok(json!(list.map_err(err)?).into())
            }
            "reaction.stats" => Ok(json!(n.db().stats().map_err(err)?).into()),
            "reaction.runs" => {
                let p: Limit = call.params()?;
                Ok(json!(n.db().runs(p.limit.clamp(1, 1000)).map_err(err)?).into())
            }
            "reaction.run" => {
                let p: Id = call.params()?;
                let run = n.db().run(p.id).map_err(err)?;
                run.map(|r| json!(r).into())
                    .ok_or_else(|| RpcError::new("not_found", format!("no run {}", p.id)))
            }
            "reaction.approve" | "reaction.deny" => {
                let p: Id = call.params()?;
                let approve = call.method == "reaction.approve";
                let run = n.decide(p.id, approve).await.map_err(err)?;
                Ok(json!({ "incident": p.id, "run": run }).into())
            }
            "reaction.start" => {
                let p: StartParams = call.params()?;
                match p.at_ms.filter(|at| *at > n.clock.now_ms()) {
                    Some(at) => {
                        let id = n.start_at(&p.flow, at).map_err(err)?;
                        Ok(json!({ "start": id, "at_ms": at }).into())
                    }
                    None => {
                        let run = n.start(&p.flow).await.map_err(err)?;
                        Ok(json!({ "run": run }).into())
                    }
                }
            }
            "reaction.schedules" => Ok(self.schedules().map_err(err)?.into()),
            "reaction.cancel" => {
                let p: Id = call.params()?;
                Ok(json!(n.cancel_start(p.id).map_err(err)?).into())
            }
            "reaction.retry" | "reaction.skip" => {
                let p: RunTask = call.params()?;
                n.retry_or_skip(p.run, &p.task, call.method == "reaction.skip")
                    .await
                    .map_err(err)?;
                Ok(json!({ "run": p.run, "task": p.task }).into())
            }
            m => Err(RpcError::new(
                "method_not_found",
                format!("no method {m:?} in the reaction service"),
            )),
        }
    }
}

impl Rpc {
    /// Each periodic flow with its next start, and the newest one-off starts.
    fn schedules(&self) -> Result<serde_json::Value, DbError> {
        let s = self.node.settings();
        let db = self.node.db();
        let due: std::collections::HashMap<String, i64> = db
            .schedules()?
            .into_iter()
            .map(|(f, due, _)| (f, due))
            .collect();
        let flows: Vec<_> = s
            .reaction
            .flows
            .iter()
            .filter_map(|f| {
                let sch = f.schedule.as_ref()?;
                Some(json!({ "flow": f.name, "schedule": sch, "next_ms": due.get(&f.name) }))
            })
            .collect();
        Ok(json!({ "flows": flows, "starts": db.starts(50)? }))
    }

    fn status(&self) -> serde_json::Value {
        let s = self.node.settings();
        let seen = self
            .node
            .agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let now = now_ms();
        let agents: Vec<_> = s
            .reaction
            .agents
            .iter()
            .map(|a| {
                let e = seen.get(&a.name);
                json!({
                    "name": a.name,
                    "has_secret": s.keys.contains_key(&a.name),
                    // An executor long-polls at least every 30 s.
                    "online": e.is_some_and(|e| now - e.last_ms < 60_000),
                    "last_seen_ms": e.map(|e| e.last_ms),
                    "version": e.map(|e| e.version.clone()),
                    "calls": e.map(|e| e.calls).unwrap_or(0),
                })
            })
            .collect();
        json!({
            "port": s.reaction.port,
            "agents": agents,
            "rules": s.reaction.rules.len(),
            "flows": s.reaction.flows.len(),
        })
    }
}
