//! Scheduled jobs: the job table reconciled with the config, due runs,
//! misfires at startup, and the loop that fires them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use alpharen_store::config::{Integrator, Job};
use serde_json::{Value, json};

use super::claim::{self, Claimed};
use super::{Engine, JobState, MISFIRE_GRACE, call_msg, call_result};
use crate::app::App;
use crate::data::{DataError, now_ms};
use crate::sched::{self, Misfire};

fn now_s() -> i64 {
    now_ms().div_euclid(1000)
}

impl Engine {
    /// Brings the job table in line with the config. At startup, jobs
    /// whose stored next run has passed get the misfire treatment.
    fn reconcile(&self, config: &Integrator, startup: bool) -> Vec<Fire> {
        let now = now_s();
        let clustered = self.data.cluster.clustered();
        let rows: HashMap<String, crate::data::JobRow> = match self.data.job_rows() {
            Ok(r) => r.into_iter().map(|r| (r.name.clone(), r)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the job table");
                HashMap::new()
            }
        };
        let mut jobs = self.jobs();
        let mut fire = Vec::new();
        let mut keep = Vec::new();
        for job in &config.jobs {
            keep.push(job.name.as_str());
            let spec = serde_json::to_string(job).unwrap_or_default();
            let dates = job
                .calendar
                .as_ref()
                .and_then(|c| config.calendars.iter().find(|k| &k.name == c))
                .map(|c| c.dates.as_slice());
            let row = rows.get(&job.name).filter(|r| r.spec == spec);
            let first_seen = row.map_or(now, |r| r.first_seen);
            // A fire is claimed in a cluster by its time, so the members
            // must agree on it: there intervals without a start count
            // from the epoch, not from when this member first saw them.
            let anchor = if clustered { 0 } else { first_seen };
            let plan = sched::plan(job, dates, anchor);
            let unchanged = jobs
                .get(&job.name)
                .is_some_and(|j| j.job == *job && j.plan == plan);
            if unchanged && !startup {
                continue;
            }
            let running = jobs
                .get(&job.name)
                .map(|j| j.running.clone())
                .unwrap_or_default();
            let next_run = match (&plan, row) {
                (Err(e), _) => {
                    tracing::warn!(job = %job.name, error = %e, "job cannot be scheduled");
                    None
                }
                (Ok(p), Some(r)) if startup => {
                    match sched::misfire(r.next_run, now, MISFIRE_GRACE, &job.misfire) {
                        Misfire::OnTime => r.next_run,
                        Misfire::RunOnce => {
                            if job.enabled {
                                fire.push((job.name.clone(), "misfire", r.next_run.unwrap_or(now)));
                            }
                            p.next_after(now)
                        }
                        Misfire::Skip => {
                            let _ = self.data.job_result(
                                &job.name,
                                now,
                                "skipped (misfire)",
                                "misfire",
                                0.0,
                                false,
                            );
                            p.next_after(now)
                        }
                    }
                }
                // A new job, or the same job with another plan (the node
                // joined or left a cluster: the stored next run was of the
                // old one).
                (Ok(p), _) => p.next_after(now - 1),
            };
            if let Err(e) = self.data.job_upsert(&job.name, &spec, first_seen, next_run) {
                tracing::warn!(job = %job.name, error = %e, "cannot store the job");
            }
            jobs.insert(
                job.name.clone(),
                JobState {
                    job: job.clone(),
                    plan,
                    next_run,
                    running,
                },
            );
        }
        jobs.retain(|name, _| keep.contains(&name.as_str()));
        let _ = self.data.job_forget_others(&keep);
        fire
    }

    /// Jobs due now (their next run is advanced and stored first, so a
    /// crash during the run does not repeat it).
    fn due(&self, now: i64) -> (Vec<Fire>, Option<i64>) {
        let clustered = self.data.cluster.clustered();
        let mut jobs = self.jobs();
        let mut fire = Vec::new();
        let mut soonest: Option<i64> = None;
        for (name, j) in jobs.iter_mut() {
            let Some(next) = j.next_run else { continue };
            if next <= now {
                let after = j.plan.as_ref().ok().and_then(|p| p.next_after(now));
                j.next_run = after;
                if let Err(e) = self.data.job_next(name, after) {
                    tracing::warn!(job = %name, error = %e, "cannot store the next run");
                }
                if j.job.enabled {
                    let times = match (&j.plan, clustered) {
                        (Ok(p), true) => catch_up(p, next, now),
                        _ => vec![next],
                    };
                    fire.extend(times.into_iter().map(|t| (name.clone(), "schedule", t)));
                }
            }
            if let Some(n) = j.next_run {
                soonest = Some(soonest.map_or(n, |s: i64| s.min(n)));
            }
        }
        (fire, soonest)
    }

    /// Every enabled job's fire times of the last
    /// [`claim::WATCH_FOR_S`] up to `now`, at most [`claim::MAX_WATCHED`]
    /// in all.
    fn recent(&self, now: i64) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for (name, j) in self.jobs().iter() {
            let Ok(plan) = j.plan.as_ref() else { continue };
            if !j.job.enabled {
                continue;
            }
            let left = claim::MAX_WATCHED as usize - out.len();
            let times = fire_times(plan, now - claim::WATCH_FOR_S, now, left);
            out.extend(times.into_iter().map(|t| (name.clone(), t)));
        }
        out
    }

    pub fn jobs_json(&self) -> Result<Value, DataError> {
        let rows = self.data.job_rows()?;
        let jobs = self.jobs();
        let mut out: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                let j = jobs.get(&r.name);
                json!({
                    "name": r.name,
                    "service": j.map(|j| j.job.service.clone()),
                    "kind": j.map(|j| j.job.kind.clone()),
                    "enabled": j.map(|j| j.job.enabled),
                    "next_run": r.next_run.map(sched::format_utc),
                    "next_run_unix": r.next_run,
                    "last_run": r.last_run.map(sched::format_utc),
                    "last_result": r.last_result,
                    "last_trigger": r.last_trigger,
                    "last_ms": r.last_ms,
                    "runs": r.runs,
                    "running": j.map(|j| j.running.load(Ordering::Relaxed)),
                    "error": j.and_then(|j| j.plan.as_ref().err().cloned()),
                })
            })
            .collect();
        out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(Value::Array(out))
    }
}

/// Starts one run of a job unless it already has `max_instances` running;
/// `fire_time` is the scheduled time it runs for (none when run by hand).
pub fn start_job(
    app: &Arc<App>,
    name: &str,
    trigger: &'static str,
    fire_time: Option<i64>,
) -> Result<(), String> {
    let (job, running) = job_of(app, name)?;
    if !take_slot(&running, job.max_instances) {
        let _ = app.engine.data.job_result(
            name,
            now_s(),
            "skipped (max_instances reached)",
            trigger,
            0.0,
            false,
        );
        return Err(format!(
            "job {name:?} already has {} run(s) in progress",
            job.max_instances
        ));
    }
    drop(spawn_run(app, job, running, trigger, fire_time));
    Ok(())
}

/// Job `name` as scheduled now, with its count of runs in progress.
pub(super) fn job_of(app: &App, name: &str) -> Result<(Job, Arc<AtomicU32>), String> {
    let jobs = app.engine.jobs();
    let j = jobs
        .get(name)
        .ok_or_else(|| format!("no job is named {name:?}"))?;
    Ok((j.job.clone(), j.running.clone()))
}

/// Counts one more run in progress if fewer than `max` are.
fn take_slot(running: &AtomicU32, max: u32) -> bool {
    if running.fetch_add(1, Ordering::SeqCst) >= max {
        running.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    true
}

/// [`take_slot`], waiting up to `patience` for a run to end: a fire this
/// member claimed runs nowhere else, so it waits its turn rather than
/// being skipped (claims landing together after a cluster outage).
pub(super) async fn wait_for_slot(running: &AtomicU32, max: u32, patience: Duration) -> bool {
    let give_up = tokio::time::Instant::now() + patience;
    while !take_slot(running, max) {
        if tokio::time::Instant::now() >= give_up {
            return false;
        }
        tokio::time::sleep(SLOT_POLL).await;
    }
    true
}

/// Runs `job` with the slot taken in `running` (given back when it
/// ends); the handle ends with the run.
pub(super) fn spawn_run(
    app: &Arc<App>,
    job: Job,
    running: Arc<AtomicU32>,
    trigger: &'static str,
    fire_time: Option<i64>,
) -> tokio::task::JoinHandle<()> {
    let app = app.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let at = now_s();
        let payload = job.payload.clone().unwrap_or(Value::Null);
        let meta = json!({"job": job.name, "trigger": trigger, "fire_time": fire_time});
        let msg = call_msg(&job.service, "scheduler", &payload, meta);
        let timeout = Duration::from_secs(app.config().timeout);
        let out = app.pool.clone().run(&msg, Instant::now() + timeout).await;
        let result = match call_result(out) {
            Ok(()) => "ok".to_string(),
            Err(None) => "error: no worker free".to_string(),
            Err(Some(e)) => format!("error: {e}"),
        };
        running.fetch_sub(1, Ordering::SeqCst);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(job = %job.name, service = %job.service, trigger, at = fire_time, result = %result, ms, "job ran");
        if let Err(e) = app
            .engine
            .data
            .job_result(&job.name, at, &result, trigger, ms, true)
        {
            tracing::warn!(job = %job.name, error = %e, "cannot record the job result");
        }
    })
}

/// A scheduled run: the job, its trigger and the time it is due at.
type Fire = (String, &'static str, i64);

/// How often a claimed fire looks for a free instance.
const SLOT_POLL: Duration = Duration::from_millis(50);
/// In a cluster, fire times a late scheduler loop still fires: those up
/// to this old (the claim patience: later the others gave up on them
/// too), at most [`CATCH_UP_MAX`] of them.
const CATCH_UP_S: i64 = 60;
const CATCH_UP_MAX: usize = 60;

/// The fire times to fire at `now` when `next` is due, in a cluster.
/// A member whose loop was held up (a blocking call while JetStream
/// elects a leader) must not skip the fire times in between: the other
/// members may not have run them either (one was killed, another
/// restarted). Alone, a late loop fires `next` once (misfire).
fn catch_up(plan: &sched::Plan, next: i64, now: i64) -> Vec<i64> {
    let from = next.max(now - CATCH_UP_S - 1);
    let mut times = vec![next];
    times.extend(fire_times(plan, from, now, CATCH_UP_MAX));
    times
}

/// `plan`'s fire times after `after` up to `until`, at most `max`.
fn fire_times(plan: &sched::Plan, after: i64, until: i64, max: usize) -> Vec<i64> {
    let mut times = Vec::new();
    let mut t = plan.next_after(after);
    while let Some(x) = t.filter(|&x| x <= until && times.len() < max) {
        times.push(x);
        t = plan.next_after(x);
    }
    times
}

/// Starts a scheduled run if this member claims it (in a cluster one
/// member does); the others record why they did not and watch the claim
/// (`claim.rs`), to take it over if its holder dies before marking it
/// done.
async fn fire(app: Arc<App>, (name, trigger, at): Fire) {
    let Ok((job, running)) = job_of(&app, &name) else {
        return; // dropped from the configuration meanwhile
    };
    let result = if running.load(Ordering::SeqCst) >= job.max_instances {
        // Not claimed: a member with a free instance runs it.
        "skipped (max_instances reached)".to_string()
    } else {
        let mine = claim::new_claim(&app);
        match claim::write_claim(&app, &name, at, None, &mine, claim::CLAIM_PATIENCE).await {
            Ok(Claimed::Alone) => {
                if wait_for_slot(&running, job.max_instances, claim::CLAIM_PATIENCE).await {
                    drop(spawn_run(&app, job, running, trigger, Some(at)));
                    return;
                }
                "skipped (max_instances reached)".to_string()
            }
            Ok(Claimed::Won(rev)) => {
                tracing::debug!(job = %name, at, "fire claimed");
                claim::run_claimed(app, job, running, trigger, at, mine, rev).await;
                return;
            }
            Ok(Claimed::Lost) => {
                tokio::spawn(claim::watch(app.clone(), name.clone(), trigger, at));
                "skipped (ran on another member)".to_string()
            }
            Err(e) => format!("error: {e}"),
        }
    };
    tracing::debug!(job = %name, at, result = %result, "run not started here");
    if let Err(e) = app
        .engine
        .data
        .job_result(&name, now_s(), &result, trigger, 0.0, false)
    {
        tracing::warn!(job = %name, error = %e, "cannot record the job result");
    }
}

/// Runs jobs when due; re-reads the config after SIGHUP.
pub async fn scheduler_loop(app: Arc<App>) {
    let mut startup = true;
    loop {
        let config = app.config();
        let changed = {
            let mut last = app
                .engine
                .jobs_config
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let changed = last.as_ref().is_none_or(|l| !Arc::ptr_eq(l, &config));
            *last = Some(config.clone());
            changed
        };
        if changed {
            for f in app.engine.reconcile(&config, startup) {
                tokio::spawn(fire(app.clone(), f));
            }
            if startup && app.engine.data.cluster.clustered() {
                // The watches of claims died with the last process: watch
                // the recent fires again, so a claim left held by a
                // member that died (this one, maybe) is taken over even
                // when every member that watched it was restarted too.
                for (name, at) in app.engine.recent(now_s()) {
                    tokio::spawn(claim::watch(app.clone(), name, "schedule", at));
                }
            }
            startup = false;
        }
        let now = now_s();
        let (fires, soonest) = app.engine.due(now);
        // Each fire claims on its own: one slow claim delays no other.
        for f in fires {
            tokio::spawn(fire(app.clone(), f));
        }
        sched::sleep_until_due(soonest, now_s(), Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(seconds: u32) -> sched::Plan {
        let job: Job = serde_json::from_value(json!({
            "name": "t", "service": "s", "kind": "interval", "seconds": seconds
        }))
        .unwrap();
        sched::plan(&job, None, 0).unwrap()
    }

    #[test]
    fn a_late_loop_in_a_cluster_fires_every_fire_time_it_missed() {
        let p = every(5);
        assert_eq!(catch_up(&p, 1000, 1000), [1000]);
        assert_eq!(catch_up(&p, 1000, 1004), [1000]);
        assert_eq!(catch_up(&p, 1000, 1017), [1000, 1005, 1010, 1015]);
    }

    #[test]
    fn catching_up_is_bounded_by_age_and_count() {
        // The stored next run is always fired; the rest only back to
        // CATCH_UP_S before now.
        let p = every(5);
        let times = catch_up(&p, 1000, 2000);
        assert_eq!(times[0], 1000);
        assert_eq!(times[1], 2000 - CATCH_UP_S);
        assert_eq!(times.last(), Some(&2000));
        let p = every(1);
        let times = catch_up(&p, 1000, 1000 + 500);
        assert_eq!(times.len(), CATCH_UP_MAX + 1);
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    }

    #[test]
    fn fire_times_are_those_after_up_to_until_at_most_max() {
        let p = every(5);
        assert_eq!(fire_times(&p, 1000, 1020, 10), [1005, 1010, 1015, 1020]);
        assert_eq!(fire_times(&p, 1000, 1020, 2), [1005, 1010]);
        assert!(fire_times(&p, 1000, 1004, 10).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_claimed_fire_waits_for_a_free_instance_within_its_patience() {
        let running = Arc::new(AtomicU32::new(1));
        assert!(!take_slot(&running, 1));
        let r = running.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            r.fetch_sub(1, Ordering::SeqCst);
        });
        let started = tokio::time::Instant::now();
        assert!(wait_for_slot(&running, 1, Duration::from_secs(60)).await);
        assert_eq!(running.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() >= Duration::from_secs(3));
        assert!(started.elapsed() < Duration::from_secs(4));
        assert!(!wait_for_slot(&running, 1, Duration::from_secs(5)).await);
        assert_eq!(running.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() >= Duration::from_secs(8));
    }
}
