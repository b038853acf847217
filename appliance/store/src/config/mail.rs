use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[mail]`: the relay that carries the node's mail out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Mail {
    pub relay: Option<Relay>,
    pub admin_recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Relay {
    pub mode: RelayMode,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: RelayTls,
    #[serde(default)]
    pub username: Option<String>,
}

fn default_port() -> u16 {
    587
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RelayMode {
    Smarthost,
    Direct,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    None,
    #[default]
    Starttls,
    Tls,
}

impl Mail {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if let Some(relay) = &self.relay {
            let at = path.key("relay");
            match (&relay.mode, &relay.host) {
                (RelayMode::Smarthost, None) => {
                    check::push(out, &at.key("host"), "a smarthost relay needs a host")
                }
                (_, Some(host)) => check::hostname(out, &at.key("host"), host),
                _ => {}
            }
            if relay.port == 0 {
                check::push(out, &at.key("port"), "port 0 is not a port");
            }
        }
        for (i, addr) in self.admin_recipients.iter().enumerate() {
            let ok = addr
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !addr.contains(' '));
            if !ok {
                check::push(
                    out,
                    &path.key("admin_recipients").index(i),
                    format!("{addr:?} is not a mail address"),
                );
            }
        }
    }
}
