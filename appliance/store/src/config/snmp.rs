//! `[snmp]`: the managers that receive the node's traps (the logfwd
//! service owns it): SNMPv2c with the community in the secret
//! `snmp.community`, or SNMPv3 (USM, SHA auth, AES-128 priv) with the
//! user's passphrases in the secrets `snmp.v3.<user>.auth` and `.priv`.

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
    /// SNMPv3: the node's snmpEngineID in hex (5-32 bytes); left out,
    /// `80007ed904` followed by the host name (RFC 3411 text format, the
    /// name cut at 27 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_id: Option<String>,
}

/// The secret with a v3 user's authentication passphrase.
pub fn v3_auth_secret(user: &str) -> String {
    format!("snmp.v3.{user}.auth")
}

/// The secret with a v3 user's privacy (encryption) passphrase.
pub fn v3_priv_secret(user: &str) -> String {
    format!("snmp.v3.{user}.priv")
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
    #[serde(default)]
    pub version: SnmpVersion,
    /// v3 only: the USM user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// v3 only: the authentication protocol; default `sha` (HMAC-SHA-96).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthProtocol>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum SnmpVersion {
    #[default]
    V2c,
    /// authPriv: authenticated and encrypted (AES-128).
    V3,
}

/// SNMPv3 authentication: HMAC-SHA-96 (RFC 3414) or HMAC-SHA-256-192
/// (RFC 7860).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AuthProtocol {
    #[default]
    Sha,
    Sha256,
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
            match (t.version, &t.user) {
                (SnmpVersion::V3, None) => {
                    check::push(out, &at.key("user"), "is required with version = \"v3\"")
                }
                (SnmpVersion::V3, Some(u)) => check::object_name(out, &at.key("user"), u),
                (SnmpVersion::V2c, _) => {
                    for (key, set) in [("user", t.user.is_some()), ("auth", t.auth.is_some())] {
                        if set {
                            check::push(out, &at.key(key), "is only used with version = \"v3\"");
                        }
                    }
                }
            }
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
        if let Some(id) = &self.engine_id {
            let ok = id.len() % 2 == 0
                && (10..=64).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                check::push(
                    out,
                    &path.key("engine_id"),
                    format!("{id:?} is not 5 to 32 bytes in hex"),
                );
            }
        }
    }

    /// The snmpEngineID the node's v3 traps carry (see `engine_id`).
    pub fn engine_id_bytes(&self, hostname: &str) -> Vec<u8> {
        let given = self.engine_id.as_deref().and_then(|h| {
            (0..h.len())
                .step_by(2)
                .map(|i| h.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
                .collect::<Option<Vec<u8>>>()
        });
        given.unwrap_or_else(|| {
            let mut id = vec![0x80, 0x00, 0x7e, 0xd9, 0x04];
            id.extend(hostname.bytes().take(27));
            if id.len() == 5 {
                id.push(b'-');
            }
            id
        })
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

    #[test]
    fn v3_targets_need_a_user_and_the_engine_id_is_hex() {
        let c = Config::from_toml(
            "[snmp]\nengine_id = \"8000000001020304\"\n[[snmp.trap_targets]]\nhost = \"nms\"\nversion = \"v3\"\nuser = \"ops\"\nauth = \"sha256\"\n",
        )
        .unwrap();
        assert_eq!(c.snmp.engine_id_bytes("n"), [0x80, 0, 0, 0, 1, 2, 3, 4]);
        let d = Config::default().snmp;
        assert_eq!(
            d.engine_id_bytes("trapnode"),
            b"\x80\x00\x7e\xd9\x04trapnode"
        );
        assert_eq!(d.engine_id_bytes(&"x".repeat(40)).len(), 32);
        let p = problems(
            "[snmp]\nengine_id = \"80zz\"\n[[snmp.trap_targets]]\nhost = \"a\"\nversion = \"v3\"\n[[snmp.trap_targets]]\nhost = \"b\"\nuser = \"ops\"\n[[snmp.trap_targets]]\nhost = \"c\"\nversion = \"v3\"\nuser = \"a b\"\n",
        );
        for want in [
            "snmp.engine_id:",
            "snmp.trap_targets[0].user: is required",
            "snmp.trap_targets[1].user: is only used",
            "snmp.trap_targets[2].user:",
        ] {
            assert!(p.iter().any(|p| p.starts_with(want)), "{want} in {p:?}");
        }
    }
}
