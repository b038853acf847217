//! The engine's decisions as plain functions: when matching lines make an
//! incident (count within a window, quiet period), which task a run goes
//! to next, what an `if` decides, and whether a lease has run out.

use std::collections::VecDeque;

use alpharen_store::config::{IfOn, IfOp, REACTION_END, ReactionTask, TaskKind};

/// What one matching line does to its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// The rule's criteria hold: a new incident.
    Incident,
    /// Counted; not enough lines within the window yet.
    Counting,
    /// Within the quiet period after the last incident: deduplicated.
    Quiet,
}

/// A rule's recent lines and its last incident, in milliseconds.
#[derive(Debug, Default)]
pub struct RuleWindow {
    hits: VecDeque<u64>,
    pub last_incident: Option<u64>,
}

impl RuleWindow {
    /// A rule whose last incident (kept in reaction.db) was at `at`.
    pub fn after(at: u64) -> RuleWindow {
        RuleWindow {
            hits: VecDeque::new(),
            last_incident: Some(at),
        }
    }

    /// Counts a line seen at `now`: an incident when `count` lines fell
    /// within `window_ms` and the last incident is `quiet_ms` old or more.
    pub fn hit(&mut self, now: u64, count: u32, window_ms: u64, quiet_ms: u64) -> Hit {
        if let Some(last) = self.last_incident
            && now.saturating_sub(last) < quiet_ms
        {
            return Hit::Quiet;
        }
        self.hits.push_back(now);
        while self
            .hits
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= window_ms)
        {
            self.hits.pop_front();
        }
        if self.hits.len() >= count as usize {
            self.hits.clear();
            self.last_incident = Some(now);
            Hit::Incident
        } else {
            Hit::Counting
        }
    }
}

/// How a finished task ended, for choosing the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// An `if` that decided.
    Branch(bool),
    Skipped,
}

/// The index of the task after `idx`, or None when the run ends.
pub fn next_task(tasks: &[ReactionTask], idx: usize, outcome: Outcome) -> Option<usize> {
    let t = tasks.get(idx)?;
    let target = match (t.kind, outcome) {
        (TaskKind::If, Outcome::Branch(true)) => t.then.as_deref(),
        (TaskKind::If, Outcome::Branch(false)) => t.otherwise.as_deref(),
        (TaskKind::If, _) => None,
        (_, Outcome::Skipped) => None,
        _ => t.next.as_deref(),
    };
    match target {
        Some(REACTION_END) => None,
        Some(name) => tasks.iter().position(|x| x.name == name),
        None => (idx + 1 < tasks.len()).then_some(idx + 1),
    }
}

/// Whether a command ended as its task expects.
pub fn command_ok(task: &ReactionTask, exit_code: i32, timed_out: bool) -> bool {
    !timed_out && exit_code == task.expect_exit
}

/// An `if` task's decision on the preceding command's result.
pub fn decide(task: &ReactionTask, output: &str, exit_code: i32) -> Result<bool, String> {
    let subject = match task.on.unwrap_or_default() {
        IfOn::Output => output.trim_end_matches(['\n', '\r']).to_string(),
        IfOn::ExitCode => exit_code.to_string(),
    };
    let value = task.value.as_deref().unwrap_or_default();
    let op = task.op.ok_or("the if task has no op")?;
    Ok(match op {
        IfOp::Equals => subject == value,
        IfOp::Contains => subject.contains(value),
        IfOp::Regex => regex::Regex::new(value)
            .map_err(|e| format!("value is not a regular expression: {e}"))?
            .is_match(&subject),
        _ => {
            let want: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("value {value:?} is not a number"))?;
            let got: f64 = subject
                .trim()
                .parse()
                .map_err(|_| format!("the command's {subject:?} is not a number"))?;
            match op {
                IfOp::Lt => got < want,
                IfOp::Le => got <= want,
                IfOp::Gt => got > want,
                _ => got >= want,
            }
        }
    })
}

/// Until when an executor holds a command: its timeout plus the grace;
/// from then on (`lease_until <= now` in `Db::lease`) another poll gets it.
pub fn lease_until(now_ms: u64, timeout_s: u64, grace_s: u64) -> u64 {
    now_ms + (timeout_s + grace_s) * 1000
}

/// The share of ended runs that finished `done`; none before one ended
/// (a run still going counts neither way).
pub fn success_rate(done: i64, failed: i64) -> Option<f64> {
    let ended = done + failed;
    (ended > 0).then(|| done as f64 / ended as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpharen_store::config::Config;

    #[test]
    fn success_rate_counts_ended_runs() {
        assert_eq!(success_rate(0, 0), None);
        assert_eq!(success_rate(3, 1), Some(0.75));
        assert_eq!(success_rate(0, 2), Some(0.0));
    }

    fn flow() -> Vec<ReactionTask> {
        let c = Config::from_toml(
            r#"
[[reaction.agents]]
name = "h"
[[reaction.flows]]
name = "f"
[[reaction.flows.tasks]]
name = "run"
kind = "command"
host = "h"
command = "true"
[[reaction.flows.tasks]]
name = "test"
kind = "if"
op = "contains"
value = "ok"
then = "good"
else = "bad"
[[reaction.flows.tasks]]
name = "good"
kind = "mail"
to = ["a@example.net"]
next = "end"
[[reaction.flows.tasks]]
name = "bad"
kind = "mail"
to = ["a@example.net"]
"#,
        )
        .unwrap();
        c.reaction.flows[0].tasks.clone()
    }

    #[test]
    fn count_within_window_then_quiet() {
        let mut w = RuleWindow::default();
        assert_eq!(w.hit(0, 3, 10_000, 60_000), Hit::Counting);
        assert_eq!(w.hit(4_000, 3, 10_000, 60_000), Hit::Counting);
        // The first line fell out of the window.
        assert_eq!(w.hit(12_000, 3, 10_000, 60_000), Hit::Counting);
        assert_eq!(w.hit(13_000, 3, 10_000, 60_000), Hit::Incident);
        assert_eq!(w.hit(14_000, 1, 10_000, 60_000), Hit::Quiet);
        assert_eq!(w.hit(73_000, 1, 10_000, 60_000), Hit::Incident);
        let mut every = RuleWindow::default();
        assert_eq!(every.hit(5, 1, 1000, 0), Hit::Incident);
        assert_eq!(every.hit(5, 1, 1000, 0), Hit::Incident);
    }

    #[test]
    fn flow_steps_follow_branches_next_and_end() {
        let t = flow();
        assert_eq!(next_task(&t, 0, Outcome::Done), Some(1));
        assert_eq!(next_task(&t, 1, Outcome::Branch(true)), Some(2));
        assert_eq!(next_task(&t, 1, Outcome::Branch(false)), Some(3));
        assert_eq!(next_task(&t, 1, Outcome::Skipped), Some(2));
        assert_eq!(next_task(&t, 2, Outcome::Done), None);
        assert_eq!(next_task(&t, 3, Outcome::Done), None);
    }

    #[test]
    fn if_compares_text_regex_numbers_and_exit_codes() {
        let mut t = flow()[1].clone();
        assert_eq!(decide(&t, "all ok\n", 0), Ok(true));
        assert_eq!(decide(&t, "failed\n", 0), Ok(false));
        t.op = Some(IfOp::Equals);
        assert_eq!(decide(&t, "ok\n", 0), Ok(true));
        t.op = Some(IfOp::Regex);
        t.value = Some("^o.$".into());
        assert_eq!(decide(&t, "ok", 0), Ok(true));
        t.op = Some(IfOp::Gt);
        t.value = Some("90".into());
        assert_eq!(decide(&t, "95\n", 0), Ok(true));
        assert!(decide(&t, "n/a", 0).is_err());
        t.on = Some(IfOn::ExitCode);
        t.op = Some(IfOp::Ge);
        t.value = Some("2".into());
        assert_eq!(decide(&t, "", 1), Ok(false));
        assert_eq!(decide(&t, "", 2), Ok(true));
    }

    #[test]
    fn commands_and_leases() {
        let t = flow()[0].clone();
        assert!(command_ok(&t, 0, false));
        assert!(!command_ok(&t, 0, true));
        assert!(!command_ok(&t, 1, false));
        let until = lease_until(1_000, 5, 2);
        assert_eq!(until, 8_000);
    }
}
