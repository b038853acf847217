//! `[syslog.receiver]`: syslog from other hosts (RFC 3164 and RFC 5424
//! over UDP and TCP), matched against rules that turn a line into an SNMP
//! trap to the `[snmp]` managers (the logfwd service owns it).

use serde::{Deserialize, Serialize};

use super::syslog::Facility;
use super::{KeyPath, Problem, check};

/// `[syslog.receiver]`: off unless `enabled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Receiver {
    pub enabled: bool,
    /// The port of both listeners (514, or 127.0.0.1:5514 in dev mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Listen on UDP (RFC 5426, one message per datagram).
    pub udp: bool,
    /// Listen on TCP (RFC 6587: octet counting or one message per line).
    pub tcp: bool,
    /// Checked in order; a line matched by a rule sends one trap and the
    /// later rules are not tried.
    pub rules: Vec<Rule>,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            enabled: false,
            port: None,
            udp: true,
            tcp: true,
            rules: Vec::new(),
        }
    }
}

impl Receiver {
    pub fn port_or_default(&self, dev: bool) -> u16 {
        self.port.unwrap_or(if dev { 5514 } else { 514 })
    }
}

/// One rule: every condition given must hold; none given matches every
/// line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Names the rule in `ctl syslog status` and in the trap.
    pub name: String,
    /// The sender's host name as the line gives it (or its address when
    /// the line has none); exact, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<Facility>,
    /// This severity or a more severe one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// The program (RFC 3164 tag, RFC 5424 APP-NAME); exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// A regular expression (Rust `regex` syntax) found anywhere in the
    /// message text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// RFC 5424 section 6.2.1 severities, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Emerg,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Severity {
    pub const ALL: [Severity; 8] = [
        Severity::Emerg,
        Severity::Alert,
        Severity::Crit,
        Severity::Err,
        Severity::Warning,
        Severity::Notice,
        Severity::Info,
        Severity::Debug,
    ];

    /// Its number in the PRI field (0 is the most severe).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name for a PRI severity number (0-7).
    pub fn name(code: u8) -> &'static str {
        [
            "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
        ]
        .get(usize::from(code))
        .copied()
        .unwrap_or("debug")
    }
}

impl Receiver {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        check::port(out, &path.key("port"), self.port);
        if self.enabled && !self.udp && !self.tcp {
            check::push(
                out,
                &path.key("udp"),
                "udp and tcp are both false: enabled needs at least one",
            );
        }
        let list = path.key("rules");
        for (i, r) in self.rules.iter().enumerate() {
            let at = list.index(i);
            check::object_name(out, &at.key("name"), &r.name);
            if let Some(h) = &r.host
                && h.parse::<std::net::IpAddr>().is_err()
            {
                check::hostname(out, &at.key("host"), h);
            }
            if let Some(p) = &r.program
                && (p.is_empty() || p.len() > 48 || p.contains(char::is_whitespace))
            {
                check::push(
                    out,
                    &at.key("program"),
                    format!("{p:?} is not a program name (1-48 characters, no spaces)"),
                );
            }
            if let Some(m) = &r.message
                && let Err(e) = regex::RegexBuilder::new(m).size_limit(1 << 20).build()
            {
                check::push(
                    out,
                    &at.key("message"),
                    format!("{m:?} is not a regular expression: {e}"),
                );
            }
        }
        check::unique(
            out,
            &list,
            "name",
            self.rules.iter().map(|r| r.name.as_str()),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::toml_problems as problems;

    use super::Severity;

    #[test]
    fn a_receiver_parses_with_defaults() {
        let c = Config::from_toml(
            "[syslog.receiver]\nenabled = true\n[[syslog.receiver.rules]]\nname = \"ssh-fail\"\nprogram = \"sshd\"\nseverity = \"warning\"\nfacility = \"auth\"\nmessage = \"Failed password for \\\\S+\"\n",
        )
        .unwrap();
        let r = &c.syslog.receiver;
        assert!(r.enabled && r.udp && r.tcp);
        assert_eq!(r.port_or_default(false), 514);
        assert_eq!(r.port_or_default(true), 5514);
        assert_eq!(r.rules[0].severity, Some(Severity::Warning));
        assert!(!Config::default().syslog.receiver.enabled);
        assert_eq!(Severity::Warning.code(), 4);
        assert_eq!(Severity::name(3), "err");
    }

    #[test]
    fn mistakes_name_their_field() {
        let p = problems(
            "[syslog.receiver]\nenabled = true\nudp = false\ntcp = false\nport = 0\n[[syslog.receiver.rules]]\nname = \"a b\"\nhost = \"bad host\"\nprogram = \"two words\"\nmessage = \"(\"\n[[syslog.receiver.rules]]\nname = \"x\"\n[[syslog.receiver.rules]]\nname = \"x\"\n",
        );
        for want in [
            "syslog.receiver.port:",
            "syslog.receiver.udp:",
            "syslog.receiver.rules[0].name:",
            "syslog.receiver.rules[0].host:",
            "syslog.receiver.rules[0].program:",
            "syslog.receiver.rules[0].message:",
            "syslog.receiver.rules[2].name: \"x\" is used more than once",
        ] {
            assert!(p.iter().any(|p| p.starts_with(want)), "{want} in {p:?}");
        }
        let p = problems("[[syslog.receiver.rules]]\nname = \"x\"\nseverity = \"loud\"\n");
        assert!(
            p.iter()
                .any(|p| p.contains("syslog.receiver.rules[0].severity")),
            "{p:?}"
        );
    }
}
