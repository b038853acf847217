//! The engine: events from readers become incidents (rules), incidents
//! start flow runs at once or after an approval, and `drive` moves a run
//! on: a command waits for its executor, an `if` and a mail are done here,
//! a service is invoked through the integrator's control methods.
//! Every step is in `reaction.db` before anything acts on it, so a
//! restarted engine picks each running run up where it was.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use alpharen_store::config::{Reaction, ReactionStart, TaskKind, Zone};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::db::{Db, DbError, Incident};
use crate::logic::{self, Hit, Outcome, RuleWindow};
use crate::{service, smtp};

/// What the service runs on: the current `[reaction]` and what it needs
/// from the rest of the view.
pub struct Settings {
    pub reaction: Reaction,
    /// Agent name → its HMAC key.
    pub keys: HashMap<String, String>,
    pub smtp_port: u16,
    pub hostname: String,
    /// `[node] timezone`: a scheduled rule's `at` and `cron` are read in it.
    pub tz: Zone,
}

/// What the engine knows of an agent between its calls.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Seen {
    pub last_ms: i64,
    pub version: String,
    pub calls: u64,
}

pub struct Node {
    pub state_dir: PathBuf,
    pub db: Mutex<Db>,
    pub settings: RwLock<Arc<Settings>>,
    pub windows: Mutex<HashMap<String, RuleWindow>>,
    /// Woken when a command becomes ready (long-polling executors).
    pub work: Notify,
    /// One run moves at a time, so two callers never take the same step.
    pub driving: tokio::sync::Mutex<()>,
    pub replay: Mutex<alpharen_httpsig::ReplayCache>,
    pub agents: Mutex<HashMap<String, Seen>>,
    /// The scheduler's clock (tokio's, so tests can advance it).
    pub clock: crate::schedule::Clock,
    /// Woken when a timed start is added or the configuration changes.
    pub timers: Notify,
}

/// One matching line a reader reports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub seq: i64,
    pub path: String,
    pub pattern: String,
    pub line: String,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Node {
    pub fn new(state_dir: PathBuf, db: Db, settings: Settings) -> Result<Node, DbError> {
        let mut windows = HashMap::new();
        for (rule, at) in db.last_incidents()? {
            windows.insert(rule, RuleWindow::after(at as u64));
        }
        Ok(Node {
            state_dir,
            db: Mutex::new(db),
            settings: RwLock::new(Arc::new(settings)),
            windows: Mutex::new(windows),
            work: Notify::new(),
            driving: tokio::sync::Mutex::new(()),
            replay: Mutex::new(Default::default()),
            agents: Mutex::new(HashMap::new()),
            clock: crate::schedule::Clock::new(now_ms()),
            timers: Notify::new(),
        })
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        lock(&self.db)
    }

    /// Takes a reader's events: new ones are matched against the rules;
    /// returns the runs started.
    pub async fn events(
        &self,
        agent: &str,
        epoch: &str,
        events: Vec<Event>,
    ) -> Result<usize, DbError> {
        let s = self.settings();
        let now = now_ms();
        let mut started = Vec::new();
        let mut accepted = 0;
        for ev in events {
            if !self.db().is_new_event(agent, epoch, ev.seq)? {
                continue;
            }
            accepted += 1;
            tracing::info!(agent, path = %ev.path, pattern = %ev.pattern, seq = ev.seq, "event");
            for rule in
                s.reaction.rules.iter().filter(|r| {
                    r.pattern == ev.pattern && r.host.as_deref().is_none_or(|h| h == agent)
                })
            {
                let hit = lock(&self.windows)
                    .entry(rule.name.clone())
                    .or_default()
                    .hit(
                        now as u64,
                        rule.count,
                        rule.window * 1000,
                        rule.quiet * 1000,
                    );
                if hit != Hit::Incident {
                    tracing::info!(rule = %rule.name, ?hit, "event counted, no incident");
                    continue;
                }
                let Some(flow) = s.reaction.flow(&rule.flow) else {
                    continue;
                };
                let pending = rule.start == ReactionStart::Approval;
                let mut inc = Incident {
                    id: 0,
                    rule: rule.name.clone(),
                    agent: agent.to_string(),
                    pattern: ev.pattern.clone(),
                    path: ev.path.clone(),
                    line: ev.line.clone(),
                    at_ms: now,
                    state: if pending { "pending" } else { "started" }.into(),
                    run_id: None,
                };
                if rule.start == ReactionStart::Scheduled {
                    // The timer's clock, so the start and its check agree.
                    inc.at_ms = self.clock.now_ms();
                    self.schedule_incident(rule, &inc, &s.tz)?;
                    continue;
                }
                let mut db = self.db();
                inc.id = db.add_incident(&inc)?;
                if pending {
                    tracing::info!(incident = inc.id, rule = %rule.name, "incident waits for approval");
                } else {
                    let run = db.start_run(flow, Some(inc.id), now)?;
                    tracing::info!(incident = inc.id, rule = %rule.name, run, "incident started a run");
                    started.push(run);
                }
            }
            self.db().mark_event(agent, epoch, ev.seq)?;
        }
        for run in started {
            self.drive(run).await?;
        }
        Ok(accepted)
    }

    /// A scheduled rule's incident, kept with its planned start for the
    /// timer task (so an engine restart neither loses nor doubles it).
    fn schedule_incident(
        &self,
        rule: &alpharen_store::config::ReactionRule,
        inc: &Incident,
        tz: &Zone,
    ) -> Result<(), DbError> {
        let at = alpharen_store::config::rule_when(rule.at.as_deref(), rule.cron.as_deref())
            .ok()
            .and_then(|w| alpharen_store::config::next_start(&w, tz, inc.at_ms));
        let Some(at) = at else {
            // Validation refuses a bad `at`/`cron`; a cron that names no
            // time (30 February) leaves the incident without a start.
            tracing::warn!(rule = %rule.name, "scheduled rule names no start time; incident not kept");
            return Ok(());
        };
        let (incident, start) = self.db().add_scheduled_incident(inc, &rule.flow, at)?;
        tracing::info!(incident, start, rule = %rule.name, at_ms = at, "incident's flow scheduled");
        self.timers.notify_one();
        Ok(())
    }

    /// Moves a run on until it waits for an executor or ends.
    pub async fn drive(&self, run_id: i64) -> Result<(), DbError> {
        let mut one = self.driving.lock().await;
        loop {
            let Some(run) = self.db().run(run_id)? else {
                return Ok(());
            };
            if run.state != "running" {
                return Ok(());
            }
            let Some(def) = run.def.clone() else {
                self.db().end_run(
                    run_id,
                    "failed",
                    Some("the run's flow cannot be read"),
                    now_ms(),
                )?;
                return Ok(());
            };
            let next = match run.steps.last() {
                None => Some(0),
                Some(step) => match step.state.as_str() {
                    "ready" if step.kind == "service" => {
                        // In flight ("leased") while the engine waits for
                        // the integrator without holding up other runs.
                        let task = def.tasks.get(step.task).cloned();
                        let seq = step.seq;
                        self.db().set_step_state(run_id, seq, "leased")?;
                        drop(one);
                        let got = match &task {
                            Some(t) => {
                                service::invoke(
                                    &self.state_dir,
                                    t.service.as_deref().unwrap_or_default(),
                                    t.payload.as_ref(),
                                    run_id,
                                    Duration::from_secs(t.timeout),
                                )
                                .await
                            }
                            None => Err("the run's flow has no such task".into()),
                        };
                        one = self.driving.lock().await;
                        self.service_done(run_id, seq, got)?;
                        continue;
                    }
                    "ready" if step.kind != "command" => {
                        self.act(run_id, step.seq, step.task, &def.tasks, &run)
                            .await?;
                        continue;
                    }
                    "ready" | "leased" => return Ok(()),
                    "failed" => return Ok(()),
                    "skipped" => logic::next_task(&def.tasks, step.task, Outcome::Skipped),
                    _ if step.kind == "if" => logic::next_task(
                        &def.tasks,
                        step.task,
                        Outcome::Branch(step.output.as_deref() == Some("true")),
                    ),
                    _ => logic::next_task(&def.tasks, step.task, Outcome::Done),
                },
            };
            let Some(idx) = next else {
                self.db().end_run(run_id, "done", None, now_ms())?;
                tracing::info!(run = run_id, flow = %def.name, "run done");
                return Ok(());
            };
            let task = &def.tasks[idx];
            let seq = self.db().add_step(
                run_id,
                idx,
                &task.name,
                task.kind,
                task.host.as_deref(),
                now_ms(),
            )?;
            tracing::info!(run = run_id, seq, task = %task.name, "step ready");
            if task.kind == TaskKind::Command {
                self.work.notify_waiters();
            }
        }
    }

    /// Records a service step's answer, unless an operator skipped the
    /// step while the engine waited for it.
    fn service_done(
        &self,
        run_id: i64,
        seq: i64,
        got: Result<service::Answer, String>,
    ) -> Result<(), DbError> {
        let mut db = self.db();
        let still = db
            .run(run_id)?
            .and_then(|r| r.steps.into_iter().find(|s| s.seq == seq))
            .is_some_and(|s| s.state == "leased");
        if !still {
            tracing::info!(
                run = run_id,
                seq,
                "service answer dropped: the step was skipped"
            );
            return Ok(());
        }
        match got {
            Ok(a) => {
                tracing::info!(
                    run = run_id,
                    seq,
                    status = a.status,
                    ok = a.ok,
                    "service answered"
                );
                let state = if a.ok { "done" } else { "failed" };
                db.end_step(
                    run_id,
                    seq,
                    state,
                    Some(a.status),
                    Some(&a.output),
                    now_ms(),
                )
            }
            Err(e) => {
                tracing::warn!(run = run_id, seq, error = %e, "service not invoked");
                db.end_step(run_id, seq, "failed", None, Some(&e), now_ms())
            }
        }
    }

    /// Does an `if` or mail step here.
    async fn act(
        &self,
        run_id: i64,
        seq: i64,
        idx: usize,
        tasks: &[alpharen_store::config::ReactionTask],
        run: &crate::db::Run,
    ) -> Result<(), DbError> {
        let task = &tasks[idx];
        let now = now_ms();
        let last_cmd = run
            .steps
            .iter()
            .rev()
            .find(|s| (s.kind == "command" || s.kind == "service") && s.state == "done");
        match task.kind {
            TaskKind::If => {
                let decided = match last_cmd {
                    Some(c) => logic::decide(
                        task,
                        c.output.as_deref().unwrap_or(""),
                        c.exit_code.unwrap_or(-1),
                    ),
                    None => Err("no command or service before this if has finished".into()),
                };
                match decided {
                    Ok(b) => {
                        tracing::info!(run = run_id, task = %task.name, branch = b, "if decided");
                        self.db().end_step(
                            run_id,
                            seq,
                            "done",
                            None,
                            Some(if b { "true" } else { "false" }),
                            now,
                        )
                    }
                    Err(e) => {
                        tracing::warn!(run = run_id, task = %task.name, error = %e, "if failed");
                        self.db()
                            .end_step(run_id, seq, "failed", None, Some(&e), now)
                    }
                }
            }
            _ => {
                let body = self.mail_body(run);
                let s = self.settings();
                let from = format!("reaction@{}", s.hostname);
                let subject = task
                    .subject
                    .clone()
                    .unwrap_or_else(|| format!("reaction: flow {} run {run_id}", run.flow));
                let sent = smtp::send(
                    s.smtp_port,
                    &smtp::Message {
                        from: &from,
                        to: &task.to,
                        subject: &subject,
                        body: &body,
                    },
                )
                .await;
                match sent {
                    Ok(()) => {
                        tracing::info!(run = run_id, task = %task.name, "mail queued");
                        self.db()
                            .end_step(run_id, seq, "done", None, Some("queued"), now_ms())
                    }
                    Err(e) => {
                        tracing::warn!(run = run_id, task = %task.name, error = %e, "mail not sent");
                        self.db()
                            .end_step(run_id, seq, "failed", None, Some(&e), now_ms())
                    }
                }
            }
        }
    }

    fn mail_body(&self, run: &crate::db::Run) -> String {
        let mut out = format!("Flow {} run {} ({})\n", run.flow, run.id, run.state);
        if let Some(i) = run
            .incident_id
            .and_then(|i| self.db().incident(i).ok().flatten())
        {
            out.push_str(&format!(
                "\nIncident {} (rule {}) on {}: {}\n  {}\n",
                i.id, i.rule, i.agent, i.path, i.line
            ));
        }
        for s in run
            .steps
            .iter()
            .filter(|s| s.kind == "command" || s.kind == "service")
        {
            out.push_str(&format!(
                "\nTask {} on {}: {} exit {}\n{}\n",
                s.name,
                s.host.as_deref().unwrap_or("?"),
                s.state,
                s.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                s.output.as_deref().unwrap_or("")
            ));
        }
        out
    }

    /// An executor's result for the step its lease token holds; false when
    /// the lease is no longer its own (expired and taken, or skipped),
    /// `NotFound` when the run has no such step (or there is no such run).
    pub async fn result(
        &self,
        run_id: i64,
        seq: i64,
        token: &str,
        exit_code: i32,
        output: &str,
        timed_out: bool,
    ) -> Result<bool, DbError> {
        let task_idx = self.db().leased_task(run_id, seq, token)?;
        let Some(idx) = task_idx else {
            if !self.db().step_exists(run_id, seq)? {
                return Err(DbError::NotFound(format!("run {run_id} has no step {seq}")));
            }
            return Ok(false);
        };
        let def = self.db().run(run_id)?.and_then(|r| r.def);
        let ok = def
            .as_ref()
            .and_then(|d| d.tasks.get(idx))
            .is_some_and(|t| logic::command_ok(t, exit_code, timed_out));
        tracing::info!(
            run = run_id,
            seq,
            exit_code,
            timed_out,
            ok,
            "command result"
        );
        self.db().end_step(
            run_id,
            seq,
            if ok { "done" } else { "failed" },
            Some(exit_code),
            Some(output),
            now_ms(),
        )?;
        self.drive(run_id).await?;
        Ok(true)
    }

    /// Drives every run that was running when the engine stopped.
    pub async fn resume(&self) -> Result<(), DbError> {
        // A service call in flight died with the old engine: call it again
        // (at least once, like a mail).
        self.db().requeue_services()?;
        let runs = self.db().running()?;
        for r in runs {
            tracing::info!(run = r, "resuming run");
            self.drive(r).await?;
        }
        Ok(())
    }
}
