//! reaction.db's timers: each periodic flow's next due time and period
//! (`schedules`), and one-off starts at a given time (`starts`: `waiting`,
//! then `started` with its run, `cancelled` by an operator, or `dropped`
//! when its flow went away). A start with an `incident_id` is the planned
//! start of a `start = "scheduled"` rule's incident, which moves with it.

use alpharen_store::config::ReactionFlow;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::db::{Db, DbError, Incident, insert_run};
use crate::schedule::Timer;

/// A one-off start.
#[derive(Debug, Clone, Serialize)]
pub struct Start {
    pub id: i64,
    pub flow: String,
    pub at_ms: i64,
    pub state: String,
    pub run_id: Option<i64>,
    pub created_ms: i64,
    /// The incident it starts the flow for (a scheduled rule's).
    pub incident_id: Option<i64>,
}

fn start_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Start> {
    Ok(Start {
        id: r.get(0)?,
        flow: r.get(1)?,
        at_ms: r.get(2)?,
        state: r.get(3)?,
        run_id: r.get(4)?,
        created_ms: r.get(5)?,
        incident_id: r.get(6)?,
    })
}

const START_COLS: &str = "id, flow, at_ms, state, run_id, created_ms, incident_id";

impl Db {
    /// A periodic flow's (due, period), in ms.
    pub fn schedule(&self, flow: &str) -> Result<Option<(i64, i64)>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT due_ms, every_ms FROM schedules WHERE flow = ?1",
                [flow],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn set_schedule(&mut self, flow: &str, due: i64, every: i64) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO schedules(flow, due_ms, every_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(flow) DO UPDATE SET due_ms = ?2, every_ms = ?3",
            params![flow, due, every],
        )?;
        Ok(())
    }

    /// A cron flow's (due, expression).
    pub fn cron_schedule(&self, flow: &str) -> Result<Option<(i64, String)>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT due_ms, spec FROM schedules WHERE flow = ?1 AND every_ms = 0 AND spec IS NOT NULL",
                [flow],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn set_cron_schedule(&mut self, flow: &str, due: i64, spec: &str) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO schedules(flow, due_ms, every_ms, spec) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT(flow) DO UPDATE SET due_ms = ?2, every_ms = 0, spec = ?3",
            params![flow, due, spec],
        )?;
        Ok(())
    }

    /// Every periodic flow's next due time.
    pub fn schedules(&self) -> Result<Vec<(String, i64, i64)>, DbError> {
        let mut st = self
            .conn
            .prepare("SELECT flow, due_ms, every_ms FROM schedules ORDER BY flow")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A one-off start of `flow` at `at_ms`.
    pub fn add_start(&mut self, flow: &str, at_ms: i64, now: i64) -> Result<i64, DbError> {
        self.conn.execute(
            "INSERT INTO starts(flow, at_ms, state, created_ms) VALUES (?1, ?2, 'waiting', ?3)",
            params![flow, at_ms, now],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn waiting_starts(&self) -> Result<Vec<Start>, DbError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {START_COLS} FROM starts WHERE state = 'waiting' ORDER BY at_ms, id"
        ))?;
        let rows = st.query_map([], start_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest one-off starts, waiting or not.
    pub fn starts(&self, limit: i64) -> Result<Vec<Start>, DbError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {START_COLS} FROM starts ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = st.query_map([limit], start_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A scheduled rule's incident and its planned start, in one
    /// transaction: (incident id, start id).
    pub fn add_scheduled_incident(
        &mut self,
        inc: &Incident,
        flow: &str,
        at_ms: i64,
    ) -> Result<(i64, i64), DbError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO incidents(rule, agent, pattern, path, line, at_ms, state) VALUES (?1,?2,?3,?4,?5,?6,'scheduled')",
            params![inc.rule, inc.agent, inc.pattern, inc.path, inc.line, inc.at_ms],
        )?;
        let incident = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO starts(flow, at_ms, state, created_ms, incident_id) VALUES (?1, ?2, 'waiting', ?3, ?4)",
            params![flow, at_ms, inc.at_ms, incident],
        )?;
        let start = tx.last_insert_rowid();
        tx.commit()?;
        Ok((incident, start))
    }

    pub fn drop_start(&mut self, id: i64) -> Result<(), DbError> {
        self.end_start(id, "dropped")
    }

    /// Operator: a waiting start that will not happen (its incident, if
    /// any, is `cancelled` too). 404 unknown, 409 no longer waiting.
    pub fn cancel_start(&mut self, id: i64) -> Result<Start, DbError> {
        let start = self
            .conn
            .query_row(
                &format!("SELECT {START_COLS} FROM starts WHERE id = ?1"),
                [id],
                start_row,
            )
            .optional()?
            .ok_or_else(|| DbError::NotFound(format!("no scheduled start {id}")))?;
        if start.state != "waiting" {
            return Err(DbError::State(format!(
                "start {id} is {}; only a waiting start can be cancelled",
                start.state
            )));
        }
        self.end_start(id, "cancelled")?;
        Ok(Start {
            state: "cancelled".into(),
            ..start
        })
    }

    /// A waiting start that ends without a run, with its incident.
    fn end_start(&mut self, id: i64, state: &str) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE starts SET state = ?2 WHERE id = ?1 AND state = 'waiting'",
            params![id, state],
        )?;
        tx.execute(
            "UPDATE incidents SET state = ?2
             WHERE id = (SELECT incident_id FROM starts WHERE id = ?1) AND state = 'scheduled'",
            params![id, state],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A run of `flow` and the move of the timer that started it, in one
    /// transaction: after a crash either both happened or neither.
    pub fn start_timed(
        &mut self,
        flow: &ReactionFlow,
        timer: Timer,
        now: i64,
    ) -> Result<i64, DbError> {
        let tx = self.conn.transaction()?;
        let incident: Option<i64> = match timer {
            Timer::Once(id) => tx
                .query_row("SELECT incident_id FROM starts WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?
                .flatten(),
            Timer::Every(..) => None,
        };
        let run = insert_run(&tx, flow, incident, now)?;
        match timer {
            Timer::Every(due, every) => {
                tx.execute(
                    "INSERT INTO schedules(flow, due_ms, every_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT(flow) DO UPDATE SET due_ms = ?2, every_ms = ?3",
                    params![flow.name, due, every],
                )?;
            }
            Timer::Once(id) => {
                tx.execute(
                    "UPDATE starts SET state = 'started', run_id = ?2 WHERE id = ?1",
                    params![id, run],
                )?;
            }
        }
        tx.commit()?;
        Ok(run)
    }
}
