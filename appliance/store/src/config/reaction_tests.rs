//! `[reaction]` parsing and validation.

use crate::config::Config;
use crate::config::toml_problems as problems;

const GOOD: &str = r#"
[reaction]
[[reaction.agents]]
name = "host1"
[[reaction.agents.watch]]
path = "/var/log/app.log"
patterns = ["oom"]
[[reaction.agents]]
name = "host2"
[[reaction.patterns]]
name = "oom"
regex = "OutOfMemory"
[[reaction.rules]]
name = "r1"
pattern = "oom"
host = "host1"
flow = "f1"
start = "approval"
[[reaction.flows]]
name = "f1"
[[reaction.flows.tasks]]
name = "check"
kind = "command"
host = "host2"
command = "echo ok"
[[reaction.flows.tasks]]
name = "decide"
kind = "if"
op = "equals"
value = "ok"
else = "end"
[[reaction.flows.tasks]]
name = "tell"
kind = "mail"
to = ["ops@example.net"]
"#;

#[test]
fn a_full_section_parses_with_defaults() {
    let c = Config::from_toml(GOOD).unwrap();
    assert_eq!(c.reaction.port, 8444);
    assert_eq!(c.reaction.rules[0].count, 1);
    assert_eq!(c.reaction.flows[0].tasks[0].timeout, 60);
    assert_eq!(c.reaction.agents[0].secret_name(), "reaction.agent.host1");
}

#[test]
fn mistakes_name_their_field() {
    let bad = GOOD
        .replace("host = \"host2\"", "host = \"nobody\"")
        .replace("regex = \"OutOfMemory\"", "regex = \"(\"")
        .replace("else = \"end\"", "else = \"nowhere\"")
        .replace("value = \"ok\"", "value = \"ok\"\nto = [\"a@b.c\"]");
    let p = problems(&bad);
    for want in [
        "reaction.flows[0].tasks[0].host: no [[reaction.agents]] is named \"nobody\"",
        "reaction.patterns[0].regex: not a regular expression",
        "reaction.flows[0].tasks[1].else: no task of this flow is named \"nowhere\"",
        "reaction.flows[0].tasks[1].to: is not used by a if task",
    ] {
        assert!(p.iter().any(|p| p.starts_with(want)), "{want} not in {p:?}");
    }
    let p = problems(
        &GOOD
            .replace("flow = \"f1\"", "flow = \"f2\"")
            .replace("op = \"equals\"", "op = \"gt\""),
    );
    assert!(
        p.iter().any(|p| p.starts_with("reaction.rules[0].flow:")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p.starts_with("reaction.flows[0].tasks[1].value: \"ok\" is not a number")),
        "{p:?}"
    );
}

#[test]
fn a_service_task_names_its_service_and_an_if_may_test_it() {
    let flow = |task: &str| {
        format!(
            "[[reaction.flows]]\nname = \"s\"\n[[reaction.flows.tasks]]\nname = \"call\"\nkind = \"service\"\n{task}\n\
             [[reaction.flows.tasks]]\nname = \"test\"\nkind = \"if\"\nop = \"contains\"\nvalue = \"ok\"\nelse = \"end\"\n"
        )
    };
    let good = flow("service = \"billing.check\"\npayload = { account = 7, tags = [\"a\"] }");
    let c = Config::from_toml(&good).unwrap();
    let t = &c.reaction.flows[0].tasks[0];
    assert_eq!(t.service.as_deref(), Some("billing.check"));
    assert_eq!(
        t.payload,
        Some(serde_json::json!({"account": 7, "tags": ["a"]}))
    );
    let p = problems(&flow("host = \"x\""));
    for want in [
        "reaction.flows[0].tasks[0].service: a service task needs the name",
        "reaction.flows[0].tasks[0].host: is not used by a service task",
    ] {
        assert!(p.iter().any(|p| p.starts_with(want)), "{want} not in {p:?}");
    }
    assert!(!p.iter().any(|p| p.contains("tasks[1].kind")), "{p:?}");
}

#[test]
fn schedules_are_every_n_units() {
    use super::parse_every;
    assert_eq!(parse_every("every 10m"), Some(600));
    assert_eq!(parse_every("every 30s"), Some(30));
    assert_eq!(parse_every(" every 2h "), Some(7200));
    assert_eq!(parse_every("every1d"), Some(86_400));
    for bad in [
        "every 0m",
        "every m",
        "every 10",
        "every 10w",
        "10m",
        "every -1m",
        "",
    ] {
        assert_eq!(parse_every(bad), None, "{bad}");
    }
    let with = |sch: &str| {
        GOOD.replace(
            "name = \"f1\"\n",
            &format!("name = \"f1\"\nschedule = \"{sch}\"\n"),
        )
    };
    assert!(problems(&with("cron 30 2 * * *")).is_empty());
    assert!(
        problems(&with("cron 99 * * * *"))
            .iter()
            .any(|p| p.starts_with("reaction.flows[0].schedule: cron \"99 * * * *\"")),
    );
    let p = problems(&with("hourly"));
    assert!(
        p.iter()
            .any(|p| p.starts_with("reaction.flows[0].schedule: \"hourly\" is not")),
        "{p:?}"
    );
}

#[test]
fn a_scheduled_rule_has_at_or_cron_and_an_if_has_a_branch() {
    let sched = |when: &str| {
        GOOD.replace(
            "start = \"approval\"",
            &format!("start = \"scheduled\"\n{when}"),
        )
    };
    let c = Config::from_toml(&sched("at = \"02:30\"")).unwrap();
    assert_eq!(c.reaction.rules[0].start, super::Start::Scheduled);
    assert!(problems(&sched("at = \"02:30\"")).is_empty());
    assert!(problems(&sched("cron = \"0 2 * * MON-FRI\"")).is_empty());
    for (when, want) in [
        (
            "at = \"2:30\"",
            "reaction.rules[0].at: \"2:30\" is not a time of day",
        ),
        ("cron = \"99 * * * *\"", "reaction.rules[0].cron: "),
        ("", "reaction.rules[0].start: a scheduled start needs at"),
    ] {
        let p = problems(&sched(when));
        assert!(p.iter().any(|p| p.starts_with(want)), "{want} not in {p:?}");
    }
    let p = problems(&GOOD.replace("start = \"approval\"", "at = \"02:30\""));
    assert!(
        p.iter()
            .any(|p| p.starts_with("reaction.rules[0].at: is only used with start = \"scheduled\"")),
        "{p:?}"
    );
    let p = problems(&GOOD.replace("else = \"end\"\n", ""));
    assert!(
        p.iter().any(
            |p| p.starts_with("reaction.flows[0].tasks[1].then: an if task needs then or else")
        ),
        "{p:?}"
    );
}
