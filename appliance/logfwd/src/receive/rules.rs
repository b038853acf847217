//! `[[syslog.receiver.rules]]` compiled once per configuration, and the
//! pure decision which rule (the first that fits) a message matches.

use alpharen_store::config::Rule;
use regex::Regex;

use super::parse::Message;

pub struct Compiled {
    pub name: String,
    host: Option<String>,
    facility: Option<u8>,
    /// The least severe code that still matches (severity codes grow as
    /// severity falls).
    severity: Option<u8>,
    program: Option<String>,
    message: Option<Regex>,
}

/// The rules in order; a pattern that does not compile (the store
/// validates them, so only a newer regex syntax could) leaves its rule out.
pub fn compile(rules: &[Rule]) -> Vec<Compiled> {
    rules
        .iter()
        .filter_map(|r| {
            let message = match r.message.as_deref().map(Regex::new).transpose() {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(rule = %r.name, error = %e, "syslog rule left out: its message pattern does not compile");
                    return None;
                }
            };
            Some(Compiled {
                name: r.name.clone(),
                host: r.host.clone(),
                facility: r.facility.map(|f| f.code()),
                severity: r.severity.map(|s| s.code()),
                program: r.program.clone(),
                message,
            })
        })
        .collect()
}

impl Compiled {
    /// Whether `m` (from `host`: its HOSTNAME, or the sender's address)
    /// meets every condition of the rule.
    pub fn matches(&self, m: &Message, host: &str) -> bool {
        self.host
            .as_ref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host))
            && self.facility.is_none_or(|f| f == m.facility)
            && self.severity.is_none_or(|s| m.severity <= s)
            && self.program.as_ref().is_none_or(|p| *p == m.program)
            && self.message.as_ref().is_none_or(|r| r.is_match(&m.text))
    }
}

/// The index of the first rule `m` matches.
pub fn first_match(rules: &[Compiled], m: &Message, host: &str) -> Option<usize> {
    rules.iter().position(|r| r.matches(m, host))
}

#[cfg(test)]
mod tests {
    use alpharen_store::config::Config;

    use super::*;
    use crate::receive::parse::parse;

    fn rules(toml: &str) -> Vec<Compiled> {
        compile(&Config::from_toml(toml).unwrap().syslog.receiver.rules)
    }

    #[test]
    fn every_condition_must_hold_and_the_first_rule_wins() {
        let r = rules(
            "[[syslog.receiver.rules]]\nname = \"ssh\"\nhost = \"GW\"\nfacility = \"auth\"\nseverity = \"warning\"\nprogram = \"sshd\"\nmessage = \"^Failed password for (\\\\S+)\"\n[[syslog.receiver.rules]]\nname = \"any-err\"\nseverity = \"err\"\n",
        );
        let m = |line: &[u8]| parse(line).unwrap();
        // auth.warning from gw: the first rule.
        let hit = m(b"<36>Dec  2 19:00:01 gw sshd[1]: Failed password for root");
        assert_eq!(first_match(&r, &hit, &hit.host), Some(0));
        // auth.crit is above warning: still the first.
        let crit = m(b"<34>Dec  2 19:00:01 gw sshd[1]: Failed password for root");
        assert_eq!(first_match(&r, &crit, "gw"), Some(0));
        // auth.notice is below warning: neither rule.
        let notice = m(b"<37>Dec  2 19:00:01 gw sshd[1]: Failed password for root");
        assert_eq!(first_match(&r, &notice, "gw"), None);
        // Another host, program, facility or text: not the first rule.
        for line in [
            &b"<36>Dec  2 19:00:01 web sshd[1]: Failed password for root"[..],
            b"<36>Dec  2 19:00:01 gw sshd2[1]: Failed password for root",
            b"<12>Dec  2 19:00:01 gw sshd[1]: Failed password for root",
            b"<36>Dec  2 19:00:01 gw sshd[1]: Accepted password for root",
        ] {
            let x = m(line);
            assert_eq!(first_match(&r, &x, &x.host), None, "{line:?}");
        }
        // Any error from anywhere: the second rule.
        let err = m(b"<11>1 - db1 postgres - - - out of disk");
        assert_eq!(first_match(&r, &err, "db1"), Some(1));
        assert!(rules("").is_empty());
        let all = rules("[[syslog.receiver.rules]]\nname = \"all\"\n");
        assert_eq!(first_match(&all, &notice, "x"), Some(0));
    }
}
