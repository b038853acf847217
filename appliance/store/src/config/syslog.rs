//! `[syslog]`: remote collectors that receive every log line of the node
//! (the logfwd service owns it).

use serde::{Deserialize, Serialize};

use super::syslog_receive::Receiver;
use super::{KeyPath, Problem, check};

/// `[syslog]`: where the node's log lines go besides its own log files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Syslog {
    /// Each collector gets every line; none means nothing leaves the node.
    pub collectors: Vec<Collector>,
    /// Megabytes of lines kept on disk per TCP or TLS collector while it
    /// cannot be reached; when full, the oldest lines are dropped.
    pub buffer_mb: u32,
    /// Syslog from other hosts turned into SNMP traps.
    pub receiver: Receiver,
}

impl Default for Syslog {
    fn default() -> Self {
        Syslog {
            collectors: Vec::new(),
            buffer_mb: 16,
            receiver: Receiver::default(),
        }
    }
}

/// One remote syslog collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Collector {
    /// Host name or IP address.
    pub host: String,
    /// Left out: 514 for UDP and TCP, 6514 for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub transport: Transport,
    /// TLS only: PEM file of the CA that signed the collector's
    /// certificate (absolute path, readable by the logfwd service's
    /// user); left out, the public CAs built into the firmware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// TLS only: the name the collector's certificate must carry; left
    /// out, `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(default)]
    pub facility: Facility,
}

impl Collector {
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.transport {
            Transport::Tls => 6514,
            Transport::Udp | Transport::Tcp => 514,
        })
    }
}

/// How lines travel: RFC 5426 (UDP), RFC 6587 octet counting (TCP),
/// RFC 5425 (TLS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

/// The syslog facility the lines are sent with (RFC 5424 section 6.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    /// Its number in the PRI field.
    pub fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::Authpriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

impl Syslog {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if !(1..=1024).contains(&self.buffer_mb) {
            check::push(
                out,
                &path.key("buffer_mb"),
                "must be between 1 and 1024 (megabytes)",
            );
        }
        self.receiver.validate(&path.key("receiver"), out);
        let list = path.key("collectors");
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.collectors.iter().enumerate() {
            let at = list.index(i);
            check::host_port(out, &at, &c.host, c.port);
            if c.transport != Transport::Tls {
                for (key, set) in [
                    ("ca", c.ca.is_some()),
                    ("server_name", c.server_name.is_some()),
                ] {
                    if set {
                        check::push(out, &at.key(key), "is only used with transport = \"tls\"");
                    }
                }
            }
            if let Some(ca) = &c.ca
                && !ca.starts_with('/')
            {
                check::push(
                    out,
                    &at.key("ca"),
                    format!("{ca:?} must be an absolute path"),
                );
            }
            if let Some(name) = &c.server_name {
                check::hostname(out, &at.key("server_name"), name);
            }
            if !seen.insert((c.host.as_str(), c.port_or_default(), c.transport)) {
                check::push(
                    out,
                    &at,
                    format!(
                        "{}:{} is listed more than once with the same transport",
                        c.host,
                        c.port_or_default()
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
    fn a_collector_list_parses_with_defaults() {
        let c = Config::from_toml(
            "[syslog]\n[[syslog.collectors]]\nhost = \"10.0.0.5\"\n[[syslog.collectors]]\nhost = \"logs.example.net\"\ntransport = \"tls\"\nfacility = \"local3\"\n",
        )
        .unwrap();
        assert_eq!(c.syslog.buffer_mb, 16);
        assert_eq!(c.syslog.collectors[0].port_or_default(), 514);
        assert_eq!(c.syslog.collectors[1].port_or_default(), 6514);
        assert_eq!(c.syslog.collectors[1].facility.code(), 19);
    }

    #[test]
    fn mistakes_are_reported_at_their_key_path() {
        let p = problems(
            "[syslog]\nbuffer_mb = 0\n[[syslog.collectors]]\nhost = \"bad host\"\nport = 0\nca = \"rel.pem\"\n",
        );
        assert!(
            p.iter().any(|p| p.starts_with("syslog.buffer_mb:")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("syslog.collectors[0].host:")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.starts_with("syslog.collectors[0].port:")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|p| p.contains("collectors[0].ca: is only used with")),
            "{p:?}"
        );
        let p = problems("[[syslog.collectors]]\nhost = \"h\"\ntransport = \"smoke\"\n");
        assert!(
            p.iter()
                .any(|p| p.starts_with("syslog.collectors[0].transport")),
            "{p:?}"
        );
        let p = problems(
            "[[syslog.collectors]]\nhost = \"h\"\n[[syslog.collectors]]\nhost = \"h\"\nport = 514\n",
        );
        assert!(p.iter().any(|p| p.contains("more than once")), "{p:?}");
        let p = problems("[syslog]\nsurprise = 1\n");
        assert!(p.iter().any(|p| p.contains("surprise")), "{p:?}");
    }
}
