//! `[reaction]` flow tasks: what each kind needs, and the fields it does
//! not use, each problem at its own key (so it names its line).

use super::reaction::{END, IfOp, Reaction, Task, TaskKind};
use super::{KeyPath, Problem, check};

impl Reaction {
    pub(super) fn validate_tasks(&self, list: &KeyPath, tasks: &[Task], out: &mut Vec<Problem>) {
        check::unique(out, list, "name", tasks.iter().map(|t| t.name.as_str()));
        let target = |out: &mut Vec<Problem>, at: &KeyPath, name: &Option<String>| {
            if let Some(n) = name
                && n != END
                && !tasks.iter().any(|t| &t.name == n)
            {
                check::push(
                    out,
                    at,
                    format!("no task of this flow is named {n:?} (or \"end\")"),
                );
            }
        };
        for (i, t) in tasks.iter().enumerate() {
            let at = list.index(i);
            check::object_name(out, &at.key("name"), &t.name);
            if t.name == END {
                check::push(
                    out,
                    &at.key("name"),
                    "\"end\" is reserved: it ends the flow",
                );
            }
            let mut unused: Vec<(&str, bool)> = Vec::new();
            match t.kind {
                TaskKind::Command => {
                    match &t.host {
                        None => check::push(
                            out,
                            &at.key("host"),
                            "a command task needs the agent that runs it",
                        ),
                        Some(h) if self.agent(h).is_none() => check::push(
                            out,
                            &at.key("host"),
                            format!("no [[reaction.agents]] is named {h:?}"),
                        ),
                        Some(_) => {}
                    }
                    if t.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                        check::push(out, &at.key("command"), "a command task needs a command");
                    }
                    if t.timeout == 0 {
                        check::push(out, &at.key("timeout"), "must be at least 1 (seconds)");
                    }
                    target(out, &at.key("next"), &t.next);
                    unused.extend([
                        ("on", t.on.is_some()),
                        ("op", t.op.is_some()),
                        ("value", t.value.is_some()),
                        ("then", t.then.is_some()),
                        ("else", t.otherwise.is_some()),
                        ("to", !t.to.is_empty()),
                        ("subject", t.subject.is_some()),
                        ("service", t.service.is_some()),
                        ("payload", t.payload.is_some()),
                    ]);
                }
                TaskKind::If => {
                    if !tasks[..i]
                        .iter()
                        .any(|p| matches!(p.kind, TaskKind::Command | TaskKind::Service))
                    {
                        check::push(
                            out,
                            &at.key("kind"),
                            "an if task needs a command or service task before it (it tests that task's result)",
                        );
                    }
                    match (t.op, &t.value) {
                        (None, _) => check::push(
                            out,
                            &at.key("op"),
                            "an if task needs op (equals, contains, regex, lt, le, gt or ge)",
                        ),
                        (_, None) => check::push(
                            out,
                            &at.key("value"),
                            "an if task needs the value to compare with",
                        ),
                        (Some(IfOp::Regex), Some(v)) => {
                            if let Err(e) = regex::Regex::new(v) {
                                check::push(
                                    out,
                                    &at.key("value"),
                                    format!("not a regular expression: {e}"),
                                );
                            }
                        }
                        (Some(op), Some(v)) if op.numeric() && v.trim().parse::<f64>().is_err() => {
                            check::push(
                                out,
                                &at.key("value"),
                                format!("{v:?} is not a number (op {op:?} compares numbers)"),
                            );
                        }
                        _ => {}
                    }
                    if t.then.is_none() && t.otherwise.is_none() {
                        check::push(
                            out,
                            &at.key("then"),
                            "an if task needs then or else (a task name or \"end\"): with neither, both outcomes go to the next task",
                        );
                    }
                    target(out, &at.key("then"), &t.then);
                    target(out, &at.key("else"), &t.otherwise);
                    unused.extend([
                        ("host", t.host.is_some()),
                        ("command", t.command.is_some()),
                        ("to", !t.to.is_empty()),
                        ("subject", t.subject.is_some()),
                        ("next", t.next.is_some()),
                        ("service", t.service.is_some()),
                        ("payload", t.payload.is_some()),
                    ]);
                }
                TaskKind::Service => {
                    if t.service.as_deref().is_none_or(|v| v.trim().is_empty()) {
                        check::push(
                            out,
                            &at.key("service"),
                            "a service task needs the name of an integrator service",
                        );
                    }
                    if t.timeout == 0 {
                        check::push(out, &at.key("timeout"), "must be at least 1 (seconds)");
                    }
                    target(out, &at.key("next"), &t.next);
                    unused.extend([
                        ("host", t.host.is_some()),
                        ("command", t.command.is_some()),
                        ("on", t.on.is_some()),
                        ("op", t.op.is_some()),
                        ("value", t.value.is_some()),
                        ("then", t.then.is_some()),
                        ("else", t.otherwise.is_some()),
                        ("to", !t.to.is_empty()),
                        ("subject", t.subject.is_some()),
                    ]);
                }
                TaskKind::Mail => {
                    if t.to.is_empty() {
                        check::push(
                            out,
                            &at.key("to"),
                            "a mail task needs at least one recipient",
                        );
                    }
                    for (k, r) in t.to.iter().enumerate() {
                        if !super::is_mail_address(r) {
                            check::push(
                                out,
                                &at.key("to").index(k),
                                format!("{r:?} is not a mail address"),
                            );
                        }
                    }
                    target(out, &at.key("next"), &t.next);
                    unused.extend([
                        ("host", t.host.is_some()),
                        ("command", t.command.is_some()),
                        ("on", t.on.is_some()),
                        ("op", t.op.is_some()),
                        ("value", t.value.is_some()),
                        ("then", t.then.is_some()),
                        ("else", t.otherwise.is_some()),
                        ("service", t.service.is_some()),
                        ("payload", t.payload.is_some()),
                    ]);
                }
            }
            for (key, set) in unused {
                if set {
                    check::push(
                        out,
                        &at.key(key),
                        format!("is not used by a {:?} task", t.kind).to_lowercase(),
                    );
                }
            }
        }
    }
}
