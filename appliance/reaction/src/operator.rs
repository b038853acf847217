//! The operator's actions on the engine (`reaction.approve`, `deny`,
//! `start`, `cancel`, `retry`, `skip`): each checks the object exists (404)
//! and is in a state the action fits (409) before it changes anything.

use crate::db::DbError;
use crate::engine::{Node, now_ms};

impl Node {
    /// Operator: start a pending incident's flow, or deny it.
    pub async fn decide(&self, incident: i64, approve: bool) -> Result<Option<i64>, DbError> {
        let s = self.settings();
        let flow = if approve {
            let inc = self
                .db()
                .incident(incident)?
                .ok_or_else(|| DbError::NotFound(format!("no incident {incident}")))?;
            let rule = s.reaction.rules.iter().find(|r| r.name == inc.rule);
            let flow = rule.and_then(|r| s.reaction.flow(&r.flow)).ok_or_else(|| {
                DbError::State(format!(
                    "incident {incident}: its rule {:?} or its flow is no longer configured",
                    inc.rule
                ))
            })?;
            Some(flow.clone())
        } else {
            None
        };
        let run = self
            .db()
            .decide_incident(incident, flow.as_ref(), now_ms())?;
        tracing::info!(incident, approve, run, "incident decided");
        if let Some(r) = run {
            self.drive(r).await?;
        }
        Ok(run)
    }

    /// Operator: a flow started by hand.
    pub async fn start(&self, flow: &str) -> Result<i64, DbError> {
        let s = self.settings();
        let f = s
            .reaction
            .flow(flow)
            .ok_or_else(|| DbError::NotFound(format!("no flow {flow:?} in [reaction]")))?;
        let run = self.db().start_run(f, None, now_ms())?;
        tracing::info!(run, flow, "run started by hand");
        self.drive(run).await?;
        Ok(run)
    }

    /// Operator: a flow to start once at `at_ms` (kept in reaction.db, so
    /// it survives a restart); the id of that start.
    pub fn start_at(&self, flow: &str, at_ms: i64) -> Result<i64, DbError> {
        if self.settings().reaction.flow(flow).is_none() {
            return Err(DbError::NotFound(format!("no flow {flow:?} in [reaction]")));
        }
        let id = self.db().add_start(flow, at_ms, self.clock.now_ms())?;
        tracing::info!(start = id, flow, at_ms, "run to start at its time");
        self.timers.notify_one();
        Ok(id)
    }

    /// Operator: a waiting start (by hand or a scheduled rule's) that
    /// will not happen.
    pub fn cancel_start(&self, id: i64) -> Result<crate::db_timers::Start, DbError> {
        let start = self.db().cancel_start(id)?;
        tracing::info!(start = id, flow = %start.flow, incident = ?start.incident_id, "scheduled start cancelled");
        self.timers.notify_one();
        Ok(start)
    }

    /// Operator: run a failed task again, or skip it (or a waiting one)
    /// and go on.
    pub async fn retry_or_skip(&self, run_id: i64, task: &str, skip: bool) -> Result<(), DbError> {
        {
            let _one = self.driving.lock().await;
            let run = self
                .db()
                .run(run_id)?
                .ok_or_else(|| DbError::NotFound(format!("no run {run_id}")))?;
            if !run
                .def
                .as_ref()
                .is_some_and(|d| d.tasks.iter().any(|t| t.name == task))
            {
                return Err(DbError::NotFound(format!(
                    "run {run_id} (flow {}) has no task {task:?}",
                    run.flow
                )));
            }
            let last = run.steps.last().filter(|s| s.name == task).ok_or_else(|| {
                DbError::State(format!(
                    "task {task:?} is not the current step of run {run_id}"
                ))
            })?;
            let now = now_ms();
            let mut db = self.db();
            match (skip, last.state.as_str(), run.state.as_str()) {
                (true, "failed", _) | (true, "ready" | "leased", "running") => {
                    db.end_step(run_id, last.seq, "skipped", None, None, now)?;
                }
                (false, "failed", _) => {
                    let def = run
                        .def
                        .as_ref()
                        .ok_or_else(|| DbError::State("the run's flow cannot be read".into()))?;
                    let t = &def.tasks[last.task];
                    db.add_step(run_id, last.task, &t.name, t.kind, t.host.as_deref(), now)?;
                }
                (_, s, _) => {
                    return Err(DbError::State(format!(
                        "task {task:?} of run {run_id} is {s}; only a failed task can be {}",
                        if skip {
                            "skipped (or a waiting one)"
                        } else {
                            "retried"
                        }
                    )));
                }
            }
            db.reopen(run_id)?;
            tracing::info!(run = run_id, task, skip, "operator moved the run on");
        }
        self.work.notify_waiters();
        self.drive(run_id).await
    }
}
