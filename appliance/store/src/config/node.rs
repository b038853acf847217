use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, Section, check};

/// `[node]`: identity of the node and operator-defined daemons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Node {
    pub hostname: String,
    /// Seconds a risky change may stay unconfirmed before it is reverted.
    pub confirm_timeout: u64,
    pub timezone: String,
    pub extra_services: Vec<ExtraService>,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            hostname: "alpharen".into(),
            confirm_timeout: 120,
            timezone: "UTC".into(),
            extra_services: Vec::new(),
        }
    }
}

/// A daemon the operator wants supervised like the built-in services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtraService {
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub restart: RestartMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// Restart whenever it exits.
    #[default]
    Always,
    /// Restart only after a non-zero exit or a signal.
    OnFailure,
    Never,
}

/// Names the supervisor uses for its own services; extra services may not
/// take them.
pub const BUILTIN_SERVICES: [&str; 11] = [
    "net",
    "web",
    "ssh",
    "mail",
    "vpn",
    "dpx",
    "pgha",
    "integrator",
    "logfwd",
    "cluster",
    "reaction",
];

impl Node {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if self.hostname.contains('.') {
            check::push(
                out,
                &path.key("hostname"),
                "the node name is one DNS label, without dots",
            );
        } else {
            check::hostname(out, &path.key("hostname"), &self.hostname);
        }
        if !(1..=3600).contains(&self.confirm_timeout) {
            check::push(
                out,
                &path.key("confirm_timeout"),
                "must be between 1 and 3600 seconds",
            );
        }
        if super::parse_tz(&self.timezone).is_none() {
            check::push(
                out,
                &path.key("timezone"),
                format!(
                    "{:?} is not a known time zone such as \"Europe/Berlin\", \"UTC\" or \"+02:00\"",
                    self.timezone
                ),
            );
        }
        let list = path.key("extra_services");
        for (i, svc) in self.extra_services.iter().enumerate() {
            let at = list.index(i);
            check::object_name(out, &at.key("name"), &svc.name);
            if BUILTIN_SERVICES.contains(&svc.name.as_str()) || Section::parse(&svc.name).is_some()
            {
                check::push(
                    out,
                    &at.key("name"),
                    format!("{:?} is the name of a built-in service", svc.name),
                );
            }
            if !svc.command.starts_with('/') {
                check::push(
                    out,
                    &at.key("command"),
                    format!("{:?} must be an absolute path", svc.command),
                );
            }
            for key in svc.env.keys() {
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    check::push(
                        out,
                        &at.key("env"),
                        format!("{key:?} is not a valid environment variable name"),
                    );
                }
            }
        }
        check::unique(
            out,
            &list,
            "name",
            self.extra_services.iter().map(|s| s.name.as_str()),
        );
    }
}
