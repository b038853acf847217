//! `[snmp]`: SNMPv2c trap receivers for the node's own events (the
//! logfwd service owns it). The community is the secret `snmp.community`.

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// The secret holding the v2c community the traps carry.
pub const SNMP_COMMUNITY_SECRET: &str = "snmp.community";

/// `[snmp]`: where the node's traps go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Snmp {
    /// Each manager gets every trap; none means no traps.
    pub trap_targets: Vec<TrapTarget>,
}

/// One SNMP manager that receives traps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TrapTarget {
    /// Host name or IP address.
    pub host: String,
    /// Left out: 162.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl TrapTarget {
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(162)
    }
}

impl Snmp {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        let list = path.key("trap_targets");
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.trap_targets.iter().enumerate() {
            let at = list.index(i);
            check::host_port(out, &at, &t.host, t.port);
            if !seen.insert((t.host.as_str(), t.port_or_default())) {
                check::push(
                    out,
                    &at,
                    format!(
                        "{}:{} is listed more than once",
                        t.host,
                        t.port_or_default()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::toml_problems as problems;

    #[test]
    fn targets_parse_and_mistakes_name_their_key() {
        let c = Config::from_toml(
            "[[snmp.trap_targets]]\nhost = \"10.0.0.9\"\n[[snmp.trap_targets]]\nhost = \"nms.example.net\"\nport = 1162\n",
        )
        .unwrap();
        assert_eq!(c.snmp.trap_targets[0].port_or_default(), 162);
        assert_eq!(c.snmp.trap_targets[1].port_or_default(), 1162);
        let p = problems(
            "[[snmp.trap_targets]]\nhost = \"bad host\"\nport = 0\n[[snmp.trap_targets]]\nhost = \"h\"\n[[snmp.trap_targets]]\nhost = \"h\"\nport = 162\n",
        );
        for want in [
            "snmp.trap_targets[0].host:",
            "snmp.trap_targets[0].port:",
            "snmp.trap_targets[2]: h:162 is listed more than once",
        ] {
            assert!(p.iter().any(|p| p.starts_with(want)), "{want} in {p:?}");
        }
    }
}
