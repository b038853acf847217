//! The configuration document: one typed value per section, parsed from TOML
//! (files) or JSON (API), then validated as a whole. Every problem carries
//! the key path it is about, so a user can find it in their file.

mod acme;
mod cluster;
mod dpx;
mod integrator;
mod integrator_amqp;
mod integrator_cert;
mod integrator_conn;
mod integrator_security;
mod integrator_tls;
mod integrator_user_config;
mod jobtime;
mod lines;
mod mail;
mod network;
mod node;
mod path;
mod pgha;
mod reaction;
mod reaction_tasks;
mod reaction_when;
mod secret_fields;
mod snmp;
mod ssh;
mod syslog;
mod syslog_receive;
mod update;
mod url_template;
mod vpn;
mod web;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use acme::{
    Acme, Challenge as AcmeChallenge, Rfc2136 as AcmeRfc2136, TSIG_SECRET as ACME_TSIG_SECRET,
};
pub use cluster::{Cluster, ClusterLink, cluster_name_ok, split_host_port};
pub use dpx::{
    BackendHttp2, DnsRecord, Dpx, Dyndns, DyndnsClient, DyndnsUser, HealthCheck, ProxyRoute,
    RECORD_TYPES, TsigAlgorithm, TsigKey, UPDATE_TYPES, in_zone, split_url,
};
pub use integrator::{
    Calendar, Channel, Integrator, Job, Outgoing, Topic, Zone, parse_date, parse_datetime, parse_tz,
};
pub use integrator_amqp::{ChannelAmqp, OutgoingAmqp};
pub use integrator_cert::{
    Attribute, DN_ATTRIBUTES, Dn, attribute_type, ca_certificates, parse_dn,
};
pub use integrator_conn::{OutgoingSmtp, OutgoingSql, SqlTls};
pub use integrator_security::{SecurityDef, TLS_CLIENT_CERT};
pub use integrator_tls::{IntegratorTls, TlsFiles, TlsMode};
pub use lines::add_lines;
pub use mail::{Limits, Listen, Mail, Relay, RelayMode, RelayTls, Submission, is_mail_address};
pub use network::{Dns, Interface, Network, Route, Time, Vlan, in_subnet, parse_cidr, parse_dest};
pub use node::{ExtraService, Node, RestartMode};
pub use path::KeyPath;
pub use pgha::{
    BackupController, BackupServer, PgGroup, PgGroupResolved, PgServer, PgServerResolved, Pgha,
    SendMode, SyncFolder,
};
pub use reaction::{
    Agent as ReactionAgent, END as REACTION_END, Flow as ReactionFlow, IfOn, IfOp,
    Pattern as ReactionPattern, Reaction, Rule as ReactionRule, Start as ReactionStart,
    Task as ReactionTask, TaskKind, Watch as ReactionWatch, parse_every, schedule_cron,
};
pub use reaction_when::{next_start, parse_cron, rule_when};
pub use secret_fields::{SECRET_PREFIX, SecretField, make_ref, secret_ref};
pub use snmp::{
    AuthProtocol, SNMP_COMMUNITY_SECRET, Snmp, SnmpVersion, TrapTarget, v3_auth_secret,
    v3_priv_secret,
};
pub use ssh::{SSH_KEY_TYPES, Ssh, check_ssh_key};
pub use syslog::{Collector, Facility, Syslog, Transport};
pub use syslog_receive::{Receiver, Rule, Severity};
pub use update::{TrialCheck, Update};
pub use url_template::{Segment, Template, methods_overlap};
pub use vpn::{Vpn, VpnPeer, cidrs_overlap, decode_key, split_endpoint};
pub use web::Web;

/// The whole node configuration. Sections absent from a file take their
/// defaults; unknown keys anywhere are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: Node,
    pub network: Network,
    pub vpn: Vpn,
    pub dpx: Dpx,
    pub web: Web,
    pub ssh: Ssh,
    pub mail: Mail,
    pub pgha: Pgha,
    pub integrator: Integrator,
    pub syslog: Syslog,
    pub acme: Acme,
    pub snmp: Snmp,
    pub cluster: Cluster,
    pub reaction: Reaction,
    #[serde(skip_serializing_if = "Update::is_default")]
    pub update: Update,
}

/// One thing wrong with a document, at one key path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// The line of a TOML document the path points at, when the problem
    /// came from one ([`add_lines`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
            match self.line {
                Some(line) => write!(f, " (line {line})"),
                None => Ok(()),
            }
        }
    }
}

pub fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level sections; the supervisor signals the service owning a
/// section when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Node,
    Network,
    Vpn,
    Dpx,
    Web,
    Ssh,
    Mail,
    Pgha,
    Integrator,
    Syslog,
    Acme,
    Snmp,
    Cluster,
    Reaction,
    Update,
}

impl Section {
    pub const ALL: [Section; 15] = [
        Section::Node,
        Section::Network,
        Section::Vpn,
        Section::Dpx,
        Section::Web,
        Section::Ssh,
        Section::Mail,
        Section::Pgha,
        Section::Integrator,
        Section::Syslog,
        Section::Acme,
        Section::Snmp,
        Section::Cluster,
        Section::Reaction,
        Section::Update,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Section::Node => "node",
            Section::Network => "network",
            Section::Vpn => "vpn",
            Section::Dpx => "dpx",
            Section::Web => "web",
            Section::Ssh => "ssh",
            Section::Mail => "mail",
            Section::Pgha => "pgha",
            Section::Integrator => "integrator",
            Section::Syslog => "syslog",
            Section::Acme => "acme",
            Section::Snmp => "snmp",
            Section::Cluster => "cluster",
            Section::Reaction => "reaction",
            Section::Update => "update",
        }
    }

    pub fn parse(name: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Changes here can cut the admin off the node, so they must be confirmed.
    pub fn is_risky(self) -> bool {
        matches!(
            self,
            Section::Network | Section::Vpn | Section::Ssh | Section::Web
        )
    }
}

impl Config {
    /// Parses TOML text. Syntax errors name the line and column.
    pub fn from_toml(text: &str) -> Result<Config, Vec<Problem>> {
        Config::from_value(toml_to_json(text)?).map_err(|p| add_lines(text, p))
    }

    /// Parses TOML or JSON text, whichever it is (JSON starts with `{`).
    pub fn from_text(text: &str) -> Result<Config, Vec<Problem>> {
        Config::from_value(text_to_json(text)?).map_err(|p| add_lines(text, p))
    }

    /// Typed parse of a JSON value, then validation; the only way a document
    /// becomes a `Config`, so every entry point checks the same things.
    pub fn from_value(value: Value) -> Result<Config, Vec<Problem>> {
        let config: Config = serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = e.path().to_string();
            vec![Problem {
                line: None,
                path: if path == "." { String::new() } else { path },
                message: e.into_inner().to_string(),
            }]
        })?;
        let mut problems = Vec::new();
        arrays_for_tables(&value, &config.to_json(), &KeyPath::root(), &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let root = KeyPath::root();
        self.node.validate(&root.key("node"), &mut out);
        self.network.validate(&root.key("network"), &mut out);
        self.vpn.validate(&root.key("vpn"), &mut out);
        self.dpx.validate(&root.key("dpx"), &mut out);
        self.mail.validate(&root.key("mail"), &mut out);
        self.web.validate(&root.key("web"), &mut out);
        self.ssh.validate(&root.key("ssh"), &mut out);
        self.pgha.validate(&root.key("pgha"), &mut out);
        self.integrator.validate(&root.key("integrator"), &mut out);
        let groups: Vec<String> = (self.pgha.pg_controller.iter().enumerate())
            .map(|(i, g)| g.key_or(i))
            .collect();
        integrator_conn::pgha_groups(&self.integrator.outgoing_sql, &groups, &mut out);
        self.syslog.validate(&root.key("syslog"), &mut out);
        self.acme
            .validate(&root.key("acme"), self.dpx.zone.as_deref(), &mut out);
        self.snmp.validate(&root.key("snmp"), &mut out);
        self.cluster.validate(&root.key("cluster"), &mut out);
        self.reaction.validate(&root.key("reaction"), &mut out);
        self.update.validate(&root.key("update"), &mut out);
        out
    }

    pub fn to_json(&self) -> Value {
        // A derived Serialize of plain data cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn section_json(&self, section: Section) -> Value {
        self.to_json()
            .get(section.name())
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Sections whose content differs between two documents.
    pub fn changed_sections(&self, other: &Config) -> Vec<Section> {
        let (a, b) = (self.to_json(), other.to_json());
        Section::ALL
            .into_iter()
            .filter(|s| a.get(s.name()) != b.get(s.name()))
            .collect()
    }
}

/// serde lets a struct be written as a sequence of its fields, so `[]`
/// would read as a table of defaults (and `{"config": []}` would reset the
/// whole configuration). Refuses an array wherever the parsed document has
/// a table.
fn arrays_for_tables(input: &Value, parsed: &Value, path: &KeyPath, out: &mut Vec<Problem>) {
    match (input, parsed) {
        (Value::Array(_), Value::Object(_)) => {
            let at = path.to_string();
            out.push(Problem {
                line: None,
                path: if at.is_empty() {
                    "(document)".into()
                } else {
                    at
                },
                message: "must be a table (a JSON object), not an array".into(),
            });
        }
        (Value::Object(i), Value::Object(p)) => {
            for (k, v) in i {
                if let Some(pv) = p.get(k) {
                    arrays_for_tables(v, pv, &path.key(k), out);
                }
            }
        }
        (Value::Array(i), Value::Array(p)) => {
            for (n, (v, pv)) in i.iter().zip(p).enumerate() {
                arrays_for_tables(v, pv, &path.index(n), out);
            }
        }
        _ => {}
    }
}

/// TOML text → JSON value, with syntax errors turned into problems.
pub fn toml_to_json(text: &str) -> Result<Value, Vec<Problem>> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let place = match e.span() {
            Some(span) => {
                let (line, col) = line_col(text, span.start);
                format!("line {line}, column {col}")
            }
            None => String::new(),
        };
        vec![Problem {
            line: None,
            path: place,
            message: format!("not valid TOML: {}", e.message()),
        }]
    })?;
    serde_json::to_value(table).map_err(|e| {
        vec![Problem {
            line: None,
            path: String::new(),
            message: format!("unsupported TOML value: {e}"),
        }]
    })
}

/// JSON value → TOML text, leaving out nulls (TOML has none); `None` when
/// the value is not a table.
pub fn json_to_toml(value: &Value) -> Option<String> {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    let table: toml::Table = serde_json::from_value(strip(value)).ok()?;
    toml::to_string_pretty(&table).ok()
}

/// TOML or JSON text → JSON value.
pub fn text_to_json(text: &str) -> Result<Value, Vec<Problem>> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| {
            vec![Problem {
                line: None,
                path: format!("line {}, column {}", e.line(), e.column()),
                message: format!("not valid JSON: {e}"),
            }]
        })
    } else {
        toml_to_json(text)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Shared checks used by several sections.
pub(crate) mod check {
    use super::{KeyPath, Problem};

    pub fn push(out: &mut Vec<Problem>, path: &KeyPath, message: impl Into<String>) {
        out.push(Problem {
            line: None,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// RFC 1123 host name (dots allowed), as used for the node and DNS names.
    pub fn hostname(out: &mut Vec<Problem>, path: &KeyPath, name: &str) {
        if !crate::host::is_hostname(name) {
            push(
                out,
                path,
                format!(
                    "{name:?} is not a host name (letters, digits and '-', labels of 1-63 characters)"
                ),
            );
        }
    }

    /// A peer's `host` (a name or an IP address) and optional `port` under `at`.
    pub fn host_port(out: &mut Vec<Problem>, at: &KeyPath, host: &str, port: Option<u16>) {
        if host.parse::<std::net::IpAddr>().is_err() {
            hostname(out, &at.key("host"), host);
        }
        self::port(out, &at.key("port"), port);
    }

    /// An optional port: 0 is not one.
    pub fn port(out: &mut Vec<Problem>, path: &KeyPath, port: Option<u16>) {
        if port == Some(0) {
            push(out, path, "must be a port number from 1 to 65535");
        }
    }

    /// Names of objects users create: short, lowercase, no spaces.
    pub fn object_name(out: &mut Vec<Problem>, path: &KeyPath, name: &str) {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            push(
                out,
                path,
                format!("{name:?} is not a valid name (1-64 letters, digits, '-', '_' or '.')"),
            );
        }
    }

    /// Reports names that appear more than once in a list.
    pub fn unique<'a>(
        out: &mut Vec<Problem>,
        list: &KeyPath,
        field: &str,
        names: impl Iterator<Item = &'a str>,
    ) {
        let mut seen = std::collections::HashSet::new();
        for (i, name) in names.enumerate() {
            if !seen.insert(name) {
                push(
                    out,
                    &list.index(i).key(field),
                    format!("{name:?} is used more than once"),
                );
            }
        }
    }
}

/// A TOML document's problems as `path: message` lines; none when valid.
#[cfg(test)]
pub(crate) fn toml_problems(text: &str) -> Vec<String> {
    match Config::from_toml(text) {
        Ok(_) => Vec::new(),
        Err(p) => p.iter().map(|p| p.to_string()).collect(),
    }
}

#[cfg(test)]
mod dpx_tests;
#[cfg(test)]
mod pgha_doc_tests;
#[cfg(test)]
mod tests;
