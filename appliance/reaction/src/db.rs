//! `reaction.db`: incidents, flow runs and their steps, and the last event
//! each agent reported. WAL with synchronous=FULL (`open_service_db`), so
//! every change a caller was told about survives a crash; a run carries a
//! copy of its flow, so a configuration change does not alter it midway.

use std::path::Path;

use alpharen_store::config::{ReactionFlow, TaskKind};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

const SCHEMA: &[&str] = &[
    "
CREATE TABLE incidents(
  id INTEGER PRIMARY KEY, rule TEXT NOT NULL, agent TEXT NOT NULL, pattern TEXT NOT NULL,
  path TEXT NOT NULL, line TEXT NOT NULL, at_ms INTEGER NOT NULL,
  state TEXT NOT NULL, run_id INTEGER);
CREATE TABLE runs(
  id INTEGER PRIMARY KEY, flow TEXT NOT NULL, def TEXT NOT NULL, incident_id INTEGER,
  state TEXT NOT NULL, started_ms INTEGER NOT NULL, ended_ms INTEGER, error TEXT);
CREATE TABLE steps(
  run_id INTEGER NOT NULL, seq INTEGER NOT NULL, task INTEGER NOT NULL, name TEXT NOT NULL,
  kind TEXT NOT NULL, state TEXT NOT NULL, host TEXT, lease_token TEXT, lease_until INTEGER,
  exit_code INTEGER, output TEXT, started_ms INTEGER NOT NULL, ended_ms INTEGER,
  leases INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(run_id, seq));
CREATE INDEX steps_ready ON steps(state, host);
CREATE TABLE agent_events(agent TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_seq INTEGER NOT NULL);
",
    "
CREATE TABLE schedules(flow TEXT PRIMARY KEY, due_ms INTEGER NOT NULL, every_ms INTEGER NOT NULL);
CREATE TABLE starts(
  id INTEGER PRIMARY KEY, flow TEXT NOT NULL, at_ms INTEGER NOT NULL, state TEXT NOT NULL,
  run_id INTEGER, created_ms INTEGER NOT NULL);
",
    // An incident of a `start = "scheduled"` rule waits as a start.
    "ALTER TABLE starts ADD COLUMN incident_id INTEGER;",
    // A flow on a cron schedule: its expression (every_ms is 0).
    "ALTER TABLE schedules ADD COLUMN spec TEXT;",
];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("reaction.db: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("reaction.db: {0}")]
    Store(#[from] alpharen_store::StoreError),
    /// An action that does not fit the state of its object (409).
    #[error("{0}")]
    State(String),
    /// No such incident, run, task or flow (404).
    #[error("{0}")]
    NotFound(String),
}

pub struct Db {
    pub(crate) conn: Connection,
}

#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: i64,
    pub rule: String,
    pub agent: String,
    pub pattern: String,
    pub path: String,
    pub line: String,
    pub at_ms: i64,
    pub state: String,
    pub run_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub seq: i64,
    pub task: usize,
    pub name: String,
    pub kind: String,
    pub state: String,
    pub host: Option<String>,
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub leases: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: i64,
    pub flow: String,
    pub incident_id: Option<i64>,
    pub state: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub error: Option<String>,
    pub steps: Vec<Step>,
    #[serde(skip)]
    pub def: Option<ReactionFlow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleStats {
    pub rule: String,
    pub incidents: i64,
    pub pending: i64,
    pub denied: i64,
    /// Incidents whose run finished `done`.
    pub resolved: i64,
    pub mean_resolve_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowStats {
    pub flow: String,
    pub runs: i64,
    pub done: i64,
    pub failed: i64,
    pub running: i64,
    /// done / (done + failed); none before a run has ended.
    pub success_rate: Option<f64>,
    pub mean_run_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub rules: Vec<RuleStats>,
    pub flows: Vec<FlowStats>,
}

/// A command handed to an executor.
#[derive(Debug, Clone, Serialize)]
pub struct Lease {
    pub run: i64,
    pub seq: i64,
    pub token: String,
    pub command: String,
    pub timeout: u64,
}

pub fn kind_name(k: TaskKind) -> &'static str {
    match k {
        TaskKind::Command => "command",
        TaskKind::If => "if",
        TaskKind::Mail => "mail",
        TaskKind::Service => "service",
    }
}

fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        rule: r.get(1)?,
        agent: r.get(2)?,
        pattern: r.get(3)?,
        path: r.get(4)?,
        line: r.get(5)?,
        at_ms: r.get(6)?,
        state: r.get(7)?,
        run_id: r.get(8)?,
    })
}

const INCIDENT_COLS: &str = "id, rule, agent, pattern, path, line, at_ms, state, run_id";

impl Db {
    pub fn open(state_dir: &Path) -> Result<Db, DbError> {
        Ok(Db {
            conn: alpharen_store::open_service_db(state_dir, "reaction", SCHEMA)?,
        })
    }

    /// Whether an agent's event is new: sequence numbers grow per agent
    /// state (`epoch`); a resent batch is ignored, a new epoch starts over.
    pub fn is_new_event(&self, agent: &str, epoch: &str, seq: i64) -> Result<bool, DbError> {
        let last: Option<(String, i64)> = self
            .conn
            .query_row(
                "SELECT epoch, last_seq FROM agent_events WHERE agent = ?1",
                [agent],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(!matches!(last, Some((e, l)) if e == epoch && seq <= l))
    }

    /// Records an event as taken, after its incident is stored: a crash in
    /// between makes the agent send it again (a duplicate, never a loss).
    pub fn mark_event(&mut self, agent: &str, epoch: &str, seq: i64) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO agent_events(agent, epoch, last_seq) VALUES (?1, ?2, ?3)
             ON CONFLICT(agent) DO UPDATE SET epoch = ?2, last_seq = ?3",
            params![agent, epoch, seq],
        )?;
        Ok(())
    }

    pub fn last_incidents(&self) -> Result<Vec<(String, i64)>, DbError> {
        let mut st = self
            .conn
            .prepare("SELECT rule, MAX(at_ms) FROM incidents GROUP BY rule")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn add_incident(&mut self, i: &Incident) -> Result<i64, DbError> {
        self.conn.execute(
            "INSERT INTO incidents(rule, agent, pattern, path, line, at_ms, state) VALUES (?1,?2,?3,?4,?5,?6,?7)",
            params![i.rule, i.agent, i.pattern, i.path, i.line, i.at_ms, i.state],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn incident(&self, id: i64) -> Result<Option<Incident>, DbError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {INCIDENT_COLS} FROM incidents WHERE id = ?1"),
                [id],
                incident_row,
            )
            .optional()?)
    }

    /// The newest incidents; only those waiting for a decision with
    /// `pending` (the approvals inbox, however old they are).
    pub fn incidents(&self, limit: i64, pending: bool) -> Result<Vec<Incident>, DbError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {INCIDENT_COLS} FROM incidents WHERE NOT ?2 OR state = 'pending'
             ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = st.query_map(params![limit, pending], incident_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Incidents per rule with their mean time to resolve (incident to the
    /// end of a run that finished `done`), and runs per flow by outcome.
    pub fn stats(&self) -> Result<Stats, DbError> {
        let mut st = self.conn.prepare(
            "SELECT i.rule, COUNT(*), SUM(i.state = 'pending'), SUM(i.state = 'denied'),
                    COALESCE(SUM(r.state = 'done'), 0), AVG(CASE WHEN r.state = 'done' THEN r.ended_ms - i.at_ms END)
             FROM incidents i LEFT JOIN runs r ON r.id = i.run_id GROUP BY i.rule ORDER BY i.rule",
        )?;
        let rules = st
            .query_map([], |r| {
                Ok(RuleStats {
                    rule: r.get(0)?,
                    incidents: r.get(1)?,
                    pending: r.get(2)?,
                    denied: r.get(3)?,
                    resolved: r.get(4)?,
                    mean_resolve_ms: r.get::<_, Option<f64>>(5)?.map(|v| v.round() as i64),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut st = self.conn.prepare(
            "SELECT flow, COUNT(*), SUM(state = 'done'), SUM(state = 'failed'), SUM(state = 'running'),
                    AVG(CASE WHEN state = 'done' THEN ended_ms - started_ms END)
             FROM runs GROUP BY flow ORDER BY flow",
        )?;
        let flows = st
            .query_map([], |r| {
                let (runs, done, failed): (i64, i64, i64) = (r.get(1)?, r.get(2)?, r.get(3)?);
                Ok(FlowStats {
                    flow: r.get(0)?,
                    runs,
                    done,
                    failed,
                    running: r.get(4)?,
                    success_rate: crate::logic::success_rate(done, failed),
                    mean_run_ms: r.get::<_, Option<f64>>(5)?.map(|v| v.round() as i64),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Stats { rules, flows })
    }

    /// Decides a pending incident: `denied`, or `started` with a new run.
    pub fn decide_incident(
        &mut self,
        id: i64,
        flow: Option<&ReactionFlow>,
        now: i64,
    ) -> Result<Option<i64>, DbError> {
        let tx = self.conn.transaction()?;
        let state: Option<String> = tx
            .query_row("SELECT state FROM incidents WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        match state.as_deref() {
            None => return Err(DbError::NotFound(format!("no incident {id}"))),
            Some("pending") => {}
            Some(s) => return Err(DbError::State(format!("incident {id} is {s}, not pending"))),
        }
        let run = match flow {
            Some(f) => Some(insert_run(&tx, f, Some(id), now)?),
            None => {
                tx.execute("UPDATE incidents SET state = 'denied' WHERE id = ?1", [id])?;
                None
            }
        };
        tx.commit()?;
        Ok(run)
    }

    pub fn start_run(
        &mut self,
        flow: &ReactionFlow,
        incident: Option<i64>,
        now: i64,
    ) -> Result<i64, DbError> {
        let tx = self.conn.transaction()?;
        let run = insert_run(&tx, flow, incident, now)?;
        tx.commit()?;
        Ok(run)
    }

    pub fn running(&self) -> Result<Vec<i64>, DbError> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM runs WHERE state = 'running' ORDER BY id")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn run(&self, id: i64) -> Result<Option<Run>, DbError> {
        let run = self
            .conn
            .query_row(
                "SELECT id, flow, incident_id, state, started_ms, ended_ms, error, def FROM runs WHERE id = ?1",
                [id],
                |r| {
                    let def: String = r.get(7)?;
                    Ok(Run {
                        id: r.get(0)?,
                        flow: r.get(1)?,
                        incident_id: r.get(2)?,
                        state: r.get(3)?,
                        started_ms: r.get(4)?,
                        ended_ms: r.get(5)?,
                        error: r.get(6)?,
                        steps: Vec::new(),
                        def: serde_json::from_str(&def).ok(),
                    })
                },
            )
            .optional()?;
        let Some(mut run) = run else { return Ok(None) };
        let mut st = self.conn.prepare(
            "SELECT seq, task, name, kind, state, host, exit_code, output, started_ms, ended_ms, leases
             FROM steps WHERE run_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map([id], |r| {
            Ok(Step {
                seq: r.get(0)?,
                task: r.get::<_, i64>(1)? as usize,
                name: r.get(2)?,
                kind: r.get(3)?,
                state: r.get(4)?,
                host: r.get(5)?,
                exit_code: r.get(6)?,
                output: r.get(7)?,
                started_ms: r.get(8)?,
                ended_ms: r.get(9)?,
                leases: r.get(10)?,
            })
        })?;
        run.steps = rows.collect::<Result<_, _>>()?;
        Ok(Some(run))
    }

    pub fn runs(&self, limit: i64) -> Result<Vec<Run>, DbError> {
        let ids: Vec<i64> = {
            let mut st = self
                .conn
                .prepare("SELECT id FROM runs ORDER BY id DESC LIMIT ?1")?;
            let rows = st.query_map([limit], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.run(id)?);
        }
        Ok(out)
    }

    pub fn add_step(
        &mut self,
        run: i64,
        task: usize,
        name: &str,
        kind: TaskKind,
        host: Option<&str>,
        now: i64,
    ) -> Result<i64, DbError> {
        let seq: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE run_id = ?1",
            [run],
            |r| r.get(0),
        )?;
        self.conn.execute(
            "INSERT INTO steps(run_id, seq, task, name, kind, state, host, started_ms) VALUES (?1,?2,?3,?4,?5,'ready',?6,?7)",
            params![run, seq, task as i64, name, kind_name(kind), host, now],
        )?;
        Ok(seq)
    }

    /// Ends a step (`done`, `failed` or `skipped`); a failure also fails its run.
    pub fn end_step(
        &mut self,
        run: i64,
        seq: i64,
        state: &str,
        exit_code: Option<i32>,
        output: Option<&str>,
        now: i64,
    ) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE steps SET state = ?3, exit_code = COALESCE(?4, exit_code), output = COALESCE(?5, output),
             ended_ms = ?6, lease_token = NULL WHERE run_id = ?1 AND seq = ?2",
            params![run, seq, state, exit_code, output, now],
        )?;
        if state == "failed" {
            tx.execute(
                "UPDATE runs SET state = 'failed', ended_ms = ?2, error = ?3 WHERE id = ?1",
                params![run, now, format!("step {seq} failed")],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn end_run(
        &mut self,
        run: i64,
        state: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), DbError> {
        self.conn.execute(
            "UPDATE runs SET state = ?2, ended_ms = ?3, error = ?4 WHERE id = ?1",
            params![run, state, now, error],
        )?;
        Ok(())
    }

    /// A service step being invoked is `leased` (no executor ever leases it).
    pub fn set_step_state(&mut self, run: i64, seq: i64, state: &str) -> Result<(), DbError> {
        self.conn.execute(
            "UPDATE steps SET state = ?3 WHERE run_id = ?1 AND seq = ?2",
            params![run, seq, state],
        )?;
        Ok(())
    }

    /// At start: service calls that were in flight are made again.
    pub fn requeue_services(&mut self) -> Result<usize, DbError> {
        Ok(self.conn.execute(
            "UPDATE steps SET state = 'ready' WHERE kind = 'service' AND state = 'leased'",
            [],
        )?)
    }

    /// Sets a failed run going again (retry or skip of its last step).
    pub fn reopen(&mut self, run: i64) -> Result<(), DbError> {
        self.conn.execute(
            "UPDATE runs SET state = 'running', ended_ms = NULL, error = NULL WHERE id = ?1",
            [run],
        )?;
        Ok(())
    }

    /// The oldest command for `host` that is ready or whose lease ran out,
    /// leased to the caller until `until`.
    pub fn lease(
        &mut self,
        host: &str,
        now: i64,
        grace: u64,
        def_of: impl Fn(&Db, i64, i64) -> Option<(String, u64)>,
    ) -> Result<Option<Lease>, DbError> {
        let found: Option<(i64, i64)> = self
            .conn
            .query_row(
                "SELECT s.run_id, s.seq FROM steps s JOIN runs r ON r.id = s.run_id
                 WHERE r.state = 'running' AND s.kind = 'command' AND s.host = ?1
                   AND (s.state = 'ready' OR (s.state = 'leased' AND s.lease_until <= ?2))
                 ORDER BY s.run_id, s.seq LIMIT 1",
                params![host, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((run, seq)) = found else {
            return Ok(None);
        };
        let Some((command, timeout)) = def_of(self, run, seq) else {
            return Err(DbError::State(format!(
                "run {run} has no command for step {seq}"
            )));
        };
        let token = format!("{:032x}", rand::random::<u128>());
        let until = crate::logic::lease_until(now as u64, timeout, grace) as i64;
        self.conn.execute(
            "UPDATE steps SET state = 'leased', lease_token = ?3, lease_until = ?4, leases = leases + 1
             WHERE run_id = ?1 AND seq = ?2",
            params![run, seq, token, until],
        )?;
        Ok(Some(Lease {
            run,
            seq,
            token,
            command,
            timeout,
        }))
    }

    pub fn step_exists(&self, run: i64, seq: i64) -> Result<bool, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM steps WHERE run_id = ?1 AND seq = ?2",
                params![run, seq],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The step a lease token holds, if it still holds it.
    pub fn leased_task(&self, run: i64, seq: i64, token: &str) -> Result<Option<usize>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT task FROM steps WHERE run_id = ?1 AND seq = ?2 AND state = 'leased' AND lease_token = ?3",
                params![run, seq, token],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|t| t as usize))
    }
}

/// A new running run of `flow`; the incident it answers, if any, is
/// marked started by it in the same transaction.
pub(crate) fn insert_run(
    tx: &rusqlite::Transaction<'_>,
    flow: &ReactionFlow,
    incident: Option<i64>,
    now: i64,
) -> Result<i64, DbError> {
    let def = serde_json::to_string(flow).map_err(|e| DbError::State(e.to_string()))?;
    tx.execute(
        "INSERT INTO runs(flow, def, incident_id, state, started_ms) VALUES (?1, ?2, ?3, 'running', ?4)",
        params![flow.name, def, incident, now],
    )?;
    let run = tx.last_insert_rowid();
    if let Some(i) = incident {
        tx.execute(
            "UPDATE incidents SET state = 'started', run_id = ?2 WHERE id = ?1",
            params![i, run],
        )?;
    }
    Ok(run)
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
