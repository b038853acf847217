//! `[reaction]`: the reaction engine's reference data (the reaction
//! service owns it): its agents and the files their readers watch, the
//! line patterns, the rules that turn matching lines into incidents and
//! the flows an incident starts. Agent secrets live in the secret store
//! as `reaction.agent.<name>`, never here.

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// Task name that ends a flow when a branch or `next` names it.
pub const END: &str = "end";

/// `[reaction]`: the agent API listener and the reference data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Reaction {
    /// HTTPS port the agents call (signed requests only).
    pub port: u16,
    /// Address the agent API listens on; left out, every address (on a
    /// `--dev` node, 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Seconds a signed request's date may differ from the node's clock.
    pub skew: u64,
    /// Seconds an executor may stay silent past a command's timeout
    /// before the command is handed to the next executor poll.
    pub lease_grace: u64,
    pub agents: Vec<Agent>,
    pub patterns: Vec<Pattern>,
    pub rules: Vec<Rule>,
    pub flows: Vec<Flow>,
}

impl Default for Reaction {
    fn default() -> Self {
        Reaction {
            port: 8444,
            address: None,
            skew: 300,
            lease_grace: 30,
            agents: Vec::new(),
            patterns: Vec::new(),
            rules: Vec::new(),
            flows: Vec::new(),
        }
    }
}

/// A host running `alpharen agent --name NAME`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub name: String,
    /// Files its reader watches.
    #[serde(default)]
    pub watch: Vec<Watch>,
    /// Every message body to and from this agent is also encrypted
    /// (AES-256-GCM, key from its secret), on top of TLS; the agent must
    /// run with `--encrypt`, and plaintext is refused both ways.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypt: bool,
}

impl Agent {
    /// Its HMAC key in the secret store.
    pub fn secret_name(&self) -> String {
        format!("reaction.agent.{}", self.name)
    }
}

/// One log file and the patterns looked for in its lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// Absolute path on the agent's host.
    pub path: String,
    /// Names of `[[reaction.patterns]]`.
    pub patterns: Vec<String>,
}

/// A named regular expression a line is matched against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    pub name: String,
    pub regex: String,
}

/// When a pattern's lines make an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub pattern: String,
    /// Only lines from this agent; left out, from any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Matching lines needed within `window` seconds.
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default = "sixty")]
    pub window: u64,
    /// Seconds after an incident during which the rule makes no other.
    #[serde(default)]
    pub quiet: u64,
    #[serde(default)]
    pub start: Start,
    /// `start = "scheduled"`: the flow starts at the next `HH:MM` (or
    /// `HH:MM:SS`) of the day, in the node's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// `start = "scheduled"`: the flow starts at the next time this cron
    /// expression names (5 fields, or 6 with seconds first), in the
    /// node's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    pub flow: String,
}

fn one() -> u32 {
    1
}
fn sixty() -> u64 {
    60
}

/// How an incident's flow starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Start {
    #[default]
    Immediate,
    /// Waits for an operator's approve (or deny).
    Approval,
    /// Waits for the rule's `at` or `cron` time (the operator may cancel).
    Scheduled,
}

/// Ordered tasks; a run goes from one to the next unless a branch or
/// `next` says otherwise, and ends after the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Flow {
    pub name: String,
    /// Started on its own every so often: `every 10m` (a number and
    /// s, m, h or d), or `cron 30 2 * * *` (a cron expression in the
    /// node's time zone); left out, only by incidents and by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    pub tasks: Vec<Task>,
}

/// The cron expression of a flow's `schedule = "cron EXPR"`.
pub fn schedule_cron(s: &str) -> Option<&str> {
    s.trim().strip_prefix("cron ").map(str::trim)
}

/// The period of a flow's `schedule` in seconds: `every N` with a unit of
/// s, m, h or d (`every 10m`, `every 1h`); None when it is not that form
/// or is zero.
pub fn parse_every(s: &str) -> Option<u64> {
    let rest = s.trim().strip_prefix("every")?.trim_start();
    let unit_at = rest.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = rest.split_at(unit_at);
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let mult = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// One task; which fields apply depends on `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub name: String,
    pub kind: TaskKind,
    /// command: the agent whose executor runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// command: run with `/bin/sh -c` on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// command: seconds before it is killed (and fails); service:
    /// seconds the engine waits for the integrator's answer.
    #[serde(default = "sixty")]
    pub timeout: u64,
    /// command: the exit code that means success.
    #[serde(default)]
    pub expect_exit: i32,
    /// if: what of the preceding command is tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<IfOn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<IfOp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// if: the task when the condition holds; left out, the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
    /// if: the task when it does not; left out, the next one.
    #[serde(default, rename = "else", skip_serializing_if = "Option::is_none")]
    pub otherwise: Option<String>,
    /// mail: recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// mail: subject (the flow, task and incident are in the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// service: the integrator service invoked (as `ctl integrator invoke`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// service: the payload it gets (any TOML value, sent as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// command, service and mail: the task after this one; left out, the
    /// next in order; `"end"` ends the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Command,
    If,
    Mail,
    /// Invokes an integrator service; its answer is the task's output.
    Service,
}

/// The part of the preceding command an `if` tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum IfOn {
    /// Its captured output, trailing newlines removed.
    #[default]
    Output,
    ExitCode,
}

/// How `value` is compared; `lt`..`ge` compare numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum IfOp {
    Equals,
    Contains,
    Regex,
    Lt,
    Le,
    Gt,
    Ge,
}

impl IfOp {
    pub fn numeric(self) -> bool {
        matches!(self, IfOp::Lt | IfOp::Le | IfOp::Gt | IfOp::Ge)
    }
}

impl Reaction {
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    pub fn flow(&self, name: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.name == name)
    }

    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if self.port == 0 {
            check::push(
                out,
                &path.key("port"),
                "must be a port number from 1 to 65535",
            );
        }
        if let Some(a) = &self.address
            && a.parse::<std::net::IpAddr>().is_err()
        {
            check::push(
                out,
                &path.key("address"),
                format!("{a:?} is not an IP address"),
            );
        }
        if self.skew == 0 {
            check::push(out, &path.key("skew"), "must be at least 1 (seconds)");
        }
        let agents = path.key("agents");
        check::unique(
            out,
            &agents,
            "name",
            self.agents.iter().map(|a| a.name.as_str()),
        );
        for (i, a) in self.agents.iter().enumerate() {
            let at = agents.index(i);
            check::object_name(out, &at.key("name"), &a.name);
            for (j, w) in a.watch.iter().enumerate() {
                let wat = at.key("watch").index(j);
                if !w.path.starts_with('/') {
                    check::push(
                        out,
                        &wat.key("path"),
                        format!("{:?} must be an absolute path", w.path),
                    );
                }
                for (k, p) in w.patterns.iter().enumerate() {
                    if !self.patterns.iter().any(|x| &x.name == p) {
                        check::push(
                            out,
                            &wat.key("patterns").index(k),
                            format!("no [[reaction.patterns]] is named {p:?}"),
                        );
                    }
                }
            }
        }
        let patterns = path.key("patterns");
        check::unique(
            out,
            &patterns,
            "name",
            self.patterns.iter().map(|p| p.name.as_str()),
        );
        for (i, p) in self.patterns.iter().enumerate() {
            check::object_name(out, &patterns.index(i).key("name"), &p.name);
            if let Err(e) = regex::Regex::new(&p.regex) {
                check::push(
                    out,
                    &patterns.index(i).key("regex"),
                    format!("not a regular expression: {e}"),
                );
            }
        }
        let rules = path.key("rules");
        check::unique(
            out,
            &rules,
            "name",
            self.rules.iter().map(|r| r.name.as_str()),
        );
        for (i, r) in self.rules.iter().enumerate() {
            let at = rules.index(i);
            check::object_name(out, &at.key("name"), &r.name);
            if !self.patterns.iter().any(|p| p.name == r.pattern) {
                check::push(
                    out,
                    &at.key("pattern"),
                    format!("no [[reaction.patterns]] is named {:?}", r.pattern),
                );
            }
            if let Some(h) = &r.host
                && self.agent(h).is_none()
            {
                check::push(
                    out,
                    &at.key("host"),
                    format!("no [[reaction.agents]] is named {h:?}"),
                );
            }
            if self.flow(&r.flow).is_none() {
                check::push(
                    out,
                    &at.key("flow"),
                    format!("no [[reaction.flows]] is named {:?}", r.flow),
                );
            }
            self.validate_when(&at, r, out);
            if r.count == 0 {
                check::push(out, &at.key("count"), "must be at least 1");
            }
            if r.window == 0 {
                check::push(out, &at.key("window"), "must be at least 1 (seconds)");
            }
        }
        let flows = path.key("flows");
        check::unique(
            out,
            &flows,
            "name",
            self.flows.iter().map(|f| f.name.as_str()),
        );
        for (i, f) in self.flows.iter().enumerate() {
            let at = flows.index(i);
            check::object_name(out, &at.key("name"), &f.name);
            match f.schedule.as_deref().map(|s| (s, schedule_cron(s))) {
                Some((_, Some(expr))) => {
                    if let Err(e) = super::reaction_when::parse_cron(expr) {
                        check::push(out, &at.key("schedule"), format!("cron {expr:?}: {e}"));
                    }
                }
                Some((sch, None)) if parse_every(sch).is_none() => check::push(
                    out,
                    &at.key("schedule"),
                    format!(
                        "{sch:?} is not \"every N\" with N a whole number followed by s, m, h or d (\"every 10m\"), nor \"cron\" and a cron expression"
                    ),
                ),
                _ => {}
            }
            if f.tasks.is_empty() {
                check::push(out, &at.key("tasks"), "a flow needs at least one task");
            }
            self.validate_tasks(&at.key("tasks"), &f.tasks, out);
        }
    }

    /// `at` / `cron` go with `start = "scheduled"` only, and it needs one.
    fn validate_when(&self, at: &KeyPath, r: &Rule, out: &mut Vec<Problem>) {
        if r.start != Start::Scheduled {
            for (key, set) in [("at", r.at.is_some()), ("cron", r.cron.is_some())] {
                if set {
                    check::push(out, &at.key(key), "is only used with start = \"scheduled\"");
                }
            }
            return;
        }
        if let Err(e) = super::reaction_when::rule_when(r.at.as_deref(), r.cron.as_deref()) {
            let key = match (&r.at, &r.cron) {
                (Some(_), None) => "at",
                (None, Some(_)) | (Some(_), Some(_)) => "cron",
                (None, None) => "start",
            };
            check::push(out, &at.key(key), e);
        }
    }
}

#[cfg(test)]
#[path = "reaction_tests.rs"]
mod tests;
