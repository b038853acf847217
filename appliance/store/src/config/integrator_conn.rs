//! `[[integrator.outgoing_sql]]` and `[[integrator.outgoing_smtp]]`: the
//! PostgreSQL databases and the mail senders services reach as
//! `self.outgoing.sql.get(NAME)` and `self.email.smtp.get(NAME)`.
//!
//! ```toml
//! [[integrator.outgoing_sql]]
//! name = "crm"
//! host = "db.lan"
//! database = "crm"
//! user = "crm_app"
//! password = "..."          # kept as the secret integrator.outgoing_sql.crm
//! tls = "verify-full"       # "disable" (default) | "require" | "verify-full"
//! # pgha_group = "main"     # instead of host and port: the group's current master
//!
//! [[integrator.outgoing_smtp]]
//! name = "alerts"
//! from = "alerts@node1.example.net"
//! ```

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check, is_mail_address};

/// A PostgreSQL database, reached through a pool of connections the
/// integrator keeps; services never hold a driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OutgoingSql {
    pub name: String,
    /// Host name or address of the server; empty with `pgha_group`.
    #[serde(default)]
    pub host: String,
    /// Not used with `pgha_group` (pgha's `pg_port` of the master is).
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// A pgha group (`pgha.pg_controller` key) whose current master the
    /// connection follows, instead of `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgha_group: Option<String>,
    pub database: String,
    pub user: String,
    /// Kept in the secret store as `integrator.outgoing_sql.NAME`; none
    /// for servers that trust the connection (peer or trust auth).
    #[serde(default)]
    pub password: Option<String>,
    /// Connections the pool may open; a session holds one until closed.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    #[serde(default)]
    pub tls: SqlTls,
    /// PEM CA certificates a `verify-full` server certificate must chain
    /// to; without it the public (Mozilla) roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Seconds to connect, wait for a free connection or run a statement;
    /// falls back to `integrator.timeout`.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// How the connection to the server is protected (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SqlTls {
    /// Plain TCP.
    #[default]
    Disable,
    /// TLS, without checking the server's certificate.
    Require,
    /// TLS with the certificate checked against `ca_file` (or the public
    /// roots) and the host name.
    VerifyFull,
}

/// A sender of mail through the node's own mail service (ARMAIL), so a
/// message is spooled durably and retried like any other mail of the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OutgoingSmtp {
    pub name: String,
    /// The sender of messages that name none; default
    /// `integrator@<node.hostname>`.
    #[serde(default)]
    pub from: Option<String>,
}

fn default_pg_port() -> u16 {
    5432
}

fn default_pool_size() -> u32 {
    10
}

/// The stored secret of a SQL connection's password.
pub(super) fn sql_password_secret(name: &str) -> String {
    format!("integrator.outgoing_sql.{name}")
}

/// Each `pgha_group` names a group of `pgha.pg_controller` (whose keys
/// are `groups`): a check across the two sections.
pub(super) fn pgha_groups(sql: &[OutgoingSql], groups: &[String], out: &mut Vec<Problem>) {
    let list = KeyPath::root().key("integrator").key("outgoing_sql");
    for (i, c) in sql.iter().enumerate() {
        if let Some(g) = &c.pgha_group
            && !g.is_empty()
            && !groups.contains(g)
        {
            let known = if groups.is_empty() {
                "none is configured".to_string()
            } else {
                format!("groups: {}", groups.join(", "))
            };
            check::push(
                out,
                &list.index(i).key("pgha_group"),
                format!("no pgha group is named {g:?} ({known})"),
            );
        }
    }
}

/// A connection's `host`: a name or address, no blanks or slashes.
pub(super) fn check_host(out: &mut Vec<Problem>, at: &KeyPath, host: &str) {
    if host.is_empty() || host.contains(|ch: char| ch.is_whitespace() || ch == '/') {
        check::push(out, at, format!("{host:?} is not a host name or address"));
    }
}

/// Checks both lists; `reserved` is the integrator's AR-name rule.
pub(super) fn validate(
    sql: &[OutgoingSql],
    smtp: &[OutgoingSmtp],
    path: &KeyPath,
    out: &mut Vec<Problem>,
    reserved: fn(&mut Vec<Problem>, &KeyPath, &str),
) {
    let list = path.key("outgoing_sql");
    for (i, c) in sql.iter().enumerate() {
        let at = list.index(i);
        check::object_name(out, &at.key("name"), &c.name);
        reserved(out, &at.key("name"), &c.name);
        if let Some(g) = &c.pgha_group {
            if !c.host.is_empty() {
                check::push(
                    out,
                    &at.key("host"),
                    "give host or pgha_group, not both (pgha_group follows the group's master)",
                );
            }
            if g.is_empty() {
                check::push(out, &at.key("pgha_group"), "must not be empty");
            }
        } else {
            check_host(out, &at.key("host"), &c.host);
        }
        if c.port == 0 {
            check::push(out, &at.key("port"), "must be 1-65535");
        }
        for (key, v) in [("database", &c.database), ("user", &c.user)] {
            if v.is_empty() {
                check::push(out, &at.key(key), "must not be empty");
            }
        }
        if c.password.as_deref() == Some("") {
            check::push(
                out,
                &at.key("password"),
                "must not be empty (leave it out when the server needs none)",
            );
        }
        if c.pool_size == 0 || c.pool_size > 100 {
            check::push(out, &at.key("pool_size"), "must be 1-100");
        }
        if let Some(ca) = &c.ca_file {
            if c.tls != SqlTls::VerifyFull {
                check::push(out, &at.key("ca_file"), "only with tls = \"verify-full\"");
            }
            if !ca.starts_with('/') {
                check::push(
                    out,
                    &at.key("ca_file"),
                    format!("{ca:?} is not an absolute path"),
                );
            }
        }
        if c.timeout.is_some_and(|t| t == 0 || t > 3600) {
            check::push(out, &at.key("timeout"), "must be 1-3600 seconds");
        }
    }
    check::unique(out, &list, "name", sql.iter().map(|c| c.name.as_str()));
    let list = path.key("outgoing_smtp");
    for (i, c) in smtp.iter().enumerate() {
        let at = list.index(i);
        check::object_name(out, &at.key("name"), &c.name);
        reserved(out, &at.key("name"), &c.name);
        if let Some(from) = &c.from
            && !is_mail_address(from)
        {
            check::push(
                out,
                &at.key("from"),
                format!("{from:?} is not a mail address"),
            );
        }
    }
    check::unique(out, &list, "name", smtp.iter().map(|c| c.name.as_str()));
}
