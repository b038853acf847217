//! Scheduled starts: a flow's `schedule = "every 10m"` or `"cron EXPR"`,
//! and one-off starts
//! at a given time (`reaction.start {flow, at_ms}`). When each is due is
//! kept in reaction.db, and a run and the move of its timer are one
//! transaction, so an engine restart neither loses a start nor makes one
//! twice; after downtime a periodic flow starts once, not once per missed
//! period. The decisions are plain functions; `run` is the timer task.

use std::sync::Arc;
use std::time::Duration;

use alpharen_store::config::{
    ReactionFlow, Zone, next_start, parse_cron, parse_every, schedule_cron,
};

use crate::db::DbError;
use crate::engine::Node;

/// The longest the timer sleeps without looking again.
const CAP_MS: i64 = 60_000;

/// What a periodic flow's timer does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub start: bool,
    pub next_due: i64,
}

/// `stored` is (due, period) as kept; `every` the configured period.
/// First seen (or its period changed): the first start is one period from
/// now. Due: one start, and the next due is the first period boundary
/// after now (missed periods are not made up).
pub fn decide(stored: Option<(i64, i64)>, every: i64, now: i64) -> Decision {
    match stored {
        Some((due, period)) if period == every && due <= now => Decision {
            start: true,
            next_due: due + ((now - due) / every + 1) * every,
        },
        Some((due, period)) if period == every => Decision {
            start: false,
            next_due: due,
        },
        _ => Decision {
            start: false,
            next_due: now + every,
        },
    }
}

/// What a cron flow's timer does now. `stored` is (due, expression) as
/// kept; `next(t)` the first time at or after `t` the expression names.
/// First seen (or the expression changed): its next time, no start. Due:
/// one start, and the next time after now (missed ones are not made up).
/// None when the expression names no time.
pub fn decide_cron(
    stored: Option<(i64, &str)>,
    spec: &str,
    next: impl Fn(i64) -> Option<i64>,
    now: i64,
) -> Option<Decision> {
    match stored {
        Some((due, s)) if s == spec && due <= now => Some(Decision {
            start: true,
            // Past this second, so one time never starts twice.
            next_due: next(now - now.rem_euclid(1000) + 1000)?,
        }),
        Some((due, s)) if s == spec => Some(Decision {
            start: false,
            next_due: due,
        }),
        _ => Some(Decision {
            start: false,
            next_due: next(now)?,
        }),
    }
}

/// How long the timer sleeps: until the earliest due time, at most CAP_MS.
pub fn wait_ms(dues: impl IntoIterator<Item = i64>, now: i64) -> u64 {
    let next = dues.into_iter().min().unwrap_or(now + CAP_MS);
    (next - now).clamp(0, CAP_MS) as u64
}

/// Starts what is due; the milliseconds until the next look.
pub async fn tick(node: &Node) -> Result<u64, DbError> {
    let now = node.clock.now_ms();
    let s = node.settings();
    let mut dues = Vec::new();
    let mut started = Vec::new();
    for f in &s.reaction.flows {
        if let Some(expr) = f.schedule.as_deref().and_then(schedule_cron) {
            if let Some(run) = cron_tick(node, f, expr, &s.tz, now, &mut dues)? {
                started.push(run);
            }
            continue;
        }
        let Some(every) = f.schedule.as_deref().and_then(parse_every) else {
            continue;
        };
        let every = every as i64 * 1000;
        let mut db = node.db();
        let stored = db.schedule(&f.name)?;
        let d = decide(stored, every, now);
        if d.start {
            let run = db.start_timed(f, Timer::Every(d.next_due, every), now)?;
            tracing::info!(run, flow = %f.name, "scheduled run started");
            started.push(run);
        } else if stored != Some((d.next_due, every)) {
            db.set_schedule(&f.name, d.next_due, every)?;
        }
        dues.push(d.next_due);
    }
    let waiting = node.db().waiting_starts()?;
    for w in waiting {
        if w.at_ms > now {
            dues.push(w.at_ms);
            continue;
        }
        let mut db = node.db();
        match s.reaction.flow(&w.flow) {
            Some(f) => {
                let run = db.start_timed(f, Timer::Once(w.id), now)?;
                tracing::info!(run, flow = %w.flow, start = w.id, "run started at its time");
                started.push(run);
            }
            None => {
                tracing::warn!(flow = %w.flow, start = w.id, "a timed start's flow is no longer configured");
                db.drop_start(w.id)?;
            }
        }
    }
    for run in started {
        node.drive(run).await?;
    }
    Ok(wait_ms(dues, now))
}

/// A cron flow: starts it when due; its next due time goes to `dues`.
fn cron_tick(
    node: &Node,
    f: &ReactionFlow,
    expr: &str,
    tz: &Zone,
    now: i64,
    dues: &mut Vec<i64>,
) -> Result<Option<i64>, DbError> {
    // Validation refuses a bad expression; one that names no time waits.
    let Ok(cron) = parse_cron(expr) else {
        return Ok(None);
    };
    let mut db = node.db();
    let stored = db.cron_schedule(&f.name)?;
    let next = |t| next_start(&cron, tz, t);
    let Some(d) = decide_cron(
        stored.as_ref().map(|(d, s)| (*d, s.as_str())),
        expr,
        next,
        now,
    ) else {
        return Ok(None);
    };
    dues.push(d.next_due);
    if d.start {
        let run = db.start_timed(f, Timer::Every(d.next_due, 0), now)?;
        tracing::info!(run, flow = %f.name, "scheduled run started (cron)");
        return Ok(Some(run));
    }
    if stored.as_ref().map(|(d, s)| (*d, s.as_str())) != Some((d.next_due, expr)) {
        db.set_cron_schedule(&f.name, d.next_due, expr)?;
    }
    Ok(None)
}

/// The timer moved with a run: a periodic flow's next due and period, or
/// a one-off start's id.
#[derive(Debug, Clone, Copy)]
pub enum Timer {
    Every(i64, i64),
    Once(i64),
}

/// The timer task: looks when something is due, when a start is added or
/// the configuration changes (`node.timers`), and at least every minute.
pub async fn run(node: Arc<Node>) {
    loop {
        let notified = node.timers.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let wait = tick(&node).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "scheduled starts failed; trying again");
            5_000
        });
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
}

/// Wall-clock milliseconds that move with tokio's clock (so tests can
/// pause and advance it): the wall clock at start plus the time since.
pub struct Clock {
    wall0: i64,
    mono0: tokio::time::Instant,
}

impl Clock {
    pub fn new(wall_ms: i64) -> Clock {
        Clock {
            wall0: wall_ms,
            mono0: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.wall0 + self.mono0.elapsed().as_millis() as i64
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
