//! `[pgha]`: the seed's `pg_controller` (groups of two PostgreSQL servers
//! kept at one master + one streaming replica) and `backup_controller`.
//! The seed's JSON keys load as written; the TOML form may say `groups`
//! and `backup` instead and put what both servers share in a group's
//! `defaults` table. Checks are per group, so a user sees every problem of
//! every group at once.

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// Seed: "Switching to master mode only after 30 seconds have elapsed".
const DEFAULT_GRACE: u64 = 30;
const DEFAULT_POLL: u64 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Pgha {
    #[serde(alias = "groups")]
    pub pg_controller: Vec<PgGroup>,
    #[serde(alias = "backup")]
    pub backup_controller: Option<BackupController>,
    /// Seconds the master must stay unreachable before the replica is
    /// promoted (the seed's 30 s).
    pub grace: u64,
    /// Seconds between two polls of a group.
    pub poll_interval: u64,
}

impl Default for Pgha {
    fn default() -> Self {
        Pgha {
            pg_controller: Vec::new(),
            backup_controller: None,
            grace: DEFAULT_GRACE,
            poll_interval: DEFAULT_POLL,
        }
    }
}

/// A host name or IP address that reaches ssh, rsync or a shell: refused
/// with the field named when it could be read as anything else.
fn host_name(out: &mut Vec<Problem>, path: &KeyPath, value: &Option<String>) {
    let Some(v) = value else { return };
    let mut not_a_name = Vec::new();
    check::hostname(&mut not_a_name, path, v);
    if !not_a_name.is_empty() && v.parse::<std::net::IpAddr>().is_err() {
        check::push(out, path, format!("{v:?} is not a host name or IP address"));
    }
}

/// A login or role name: letters, digits, `.`, `_`, `-`, not starting
/// with `-` (it would read as an option).
fn user_name(out: &mut Vec<Problem>, path: &KeyPath, value: &Option<String>) {
    let Some(v) = value else { return };
    let ok = !v.is_empty()
        && v.len() <= 64
        && !v.starts_with('-')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        check::push(
            out,
            path,
            format!(
                "{v:?} is not a user name (1-64 letters, digits, '.', '_' or '-', not starting with '-')"
            ),
        );
    }
}

/// One group: two servers in streaming replication and a referee.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PgGroup {
    /// Unique key; `group<N>` (N counted from 1) when missing.
    pub key: Option<String>,
    /// Arbiter: `host:port` (reachable = the controller is on the majority
    /// side) or `http://host:port/path` (asked whether it still
    /// sees the master: `?host=H&port=P` answers `up` or `down`).
    pub referee: Option<String>,
    /// Values both servers share unless a server sets its own (TOML form).
    pub defaults: Option<PgServer>,
    pub servers: Vec<PgServer>,
}

/// One PostgreSQL server of a group, keys as the seed writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PgServer {
    /// Defaults to `pg_host`.
    pub ssh_host: Option<String>,
    /// Defaults to 22.
    pub ssh_port: Option<u16>,
    pub ssh_user: Option<String>,
    /// Moved to the secret `pgha.<key>.<n>.ssh_pwd` by the service.
    pub ssh_pwd: Option<String>,
    /// Defaults to `ssh_host`.
    pub pg_host: Option<String>,
    /// Defaults to 5432.
    pub pg_port: Option<u16>,
    pub pg_replica_user: Option<String>,
    /// Moved to the secret `pgha.<key>.<n>.pg_replica_pwd` by the service.
    pub pg_replica_pwd: Option<String>,
    /// Defaults to `pg_ctl`.
    pub pg_ctl_command: Option<String>,
    /// Defaults to `pg_basebackup`.
    pub pg_basebackup_command: Option<String>,
    /// Defaults to `postgres`.
    pub pg_database: Option<String>,
    pub pg_data_folder: Option<String>,
    /// In the seed's example; kept for reference, the controller does not
    /// need it (the configuration lives in the data folder).
    pub pg_config_folder: Option<String>,
    /// Defaults to `/tmp/pg_backups`.
    pub pg_backup_folder: Option<String>,
    pub pg_log_filepath: Option<String>,
    pub pg_signal_filepath: Option<String>,
}

/// A server with its group's defaults and the seed's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgServerResolved {
    pub ssh_host: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    pub ssh_pwd: Option<String>,
    pub pg_host: String,
    pub pg_port: u16,
    pub pg_replica_user: String,
    pub pg_replica_pwd: Option<String>,
    pub pg_ctl_command: String,
    pub pg_basebackup_command: String,
    pub pg_database: String,
    pub pg_data_folder: String,
    pub pg_backup_folder: String,
    pub pg_log_filepath: Option<String>,
    pub pg_signal_filepath: Option<String>,
}

impl PgServer {
    /// Fields set here win over `base`.
    fn over(&self, base: &PgServer) -> PgServer {
        macro_rules! pick {
            ($($f:ident),*) => { PgServer { $($f: self.$f.clone().or_else(|| base.$f.clone())),* } };
        }
        pick!(
            ssh_host,
            ssh_port,
            ssh_user,
            ssh_pwd,
            pg_host,
            pg_port,
            pg_replica_user,
            pg_replica_pwd,
            pg_ctl_command,
            pg_basebackup_command,
            pg_database,
            pg_data_folder,
            pg_config_folder,
            pg_backup_folder,
            pg_log_filepath,
            pg_signal_filepath
        )
    }

    /// Applies the seed's defaults, or says which required key is missing.
    fn resolve(&self, path: &KeyPath, out: &mut Vec<Problem>) -> Option<PgServerResolved> {
        let before = out.len();
        let host = self.ssh_host.clone().or_else(|| self.pg_host.clone());
        if host.is_none() {
            check::push(
                out,
                &path.key("ssh_host"),
                "ssh_host or pg_host is required",
            );
        }
        let required = |key: &str, v: &Option<String>, out: &mut Vec<Problem>| {
            if v.as_deref().is_none_or(str::is_empty) {
                check::push(out, &path.key(key), "is required");
            }
        };
        required("ssh_user", &self.ssh_user, out);
        required("pg_replica_user", &self.pg_replica_user, out);
        required("pg_data_folder", &self.pg_data_folder, out);
        host_name(out, &path.key("ssh_host"), &self.ssh_host);
        host_name(out, &path.key("pg_host"), &self.pg_host);
        user_name(out, &path.key("ssh_user"), &self.ssh_user);
        user_name(out, &path.key("pg_replica_user"), &self.pg_replica_user);
        for (key, v) in [
            ("pg_data_folder", &self.pg_data_folder),
            ("pg_backup_folder", &self.pg_backup_folder),
            ("pg_log_filepath", &self.pg_log_filepath),
            ("pg_signal_filepath", &self.pg_signal_filepath),
        ] {
            if let Some(p) = v
                && !p.starts_with('/')
            {
                check::push(
                    out,
                    &path.key(key),
                    format!("{p:?} must be an absolute path"),
                );
            }
        }
        for (key, port) in [("ssh_port", self.ssh_port), ("pg_port", self.pg_port)] {
            check::port(out, &path.key(key), port);
        }
        if out.len() > before {
            return None;
        }
        let host = host.unwrap_or_default();
        let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
        Some(PgServerResolved {
            ssh_host: or(&self.ssh_host, &host),
            ssh_port: self.ssh_port.unwrap_or(22),
            ssh_user: or(&self.ssh_user, ""),
            ssh_pwd: self.ssh_pwd.clone(),
            pg_host: or(&self.pg_host, &host),
            pg_port: self.pg_port.unwrap_or(5432),
            pg_replica_user: or(&self.pg_replica_user, ""),
            pg_replica_pwd: self.pg_replica_pwd.clone(),
            pg_ctl_command: or(&self.pg_ctl_command, "pg_ctl"),
            pg_basebackup_command: or(&self.pg_basebackup_command, "pg_basebackup"),
            pg_database: or(&self.pg_database, "postgres"),
            pg_data_folder: or(&self.pg_data_folder, ""),
            pg_backup_folder: or(&self.pg_backup_folder, "/tmp/pg_backups"),
            pg_log_filepath: self.pg_log_filepath.clone(),
            pg_signal_filepath: self.pg_signal_filepath.clone(),
        })
    }
}

/// A group as the controller runs it: key, referee and two full servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgGroupResolved {
    pub key: String,
    /// Without one, only the replica's view backs the controller's.
    pub referee: Option<String>,
    pub servers: [PgServerResolved; 2],
}

impl PgGroup {
    /// The group's key, generated from its position when missing.
    pub fn key_or(&self, index: usize) -> String {
        self.key
            .clone()
            .unwrap_or_else(|| format!("group{}", index + 1))
    }

    /// The group ready to run, or every problem found in it; the service
    /// uses this to leave a bad group out and keep the others working.
    pub fn resolve(&self, index: usize, path: &KeyPath) -> Result<PgGroupResolved, Vec<Problem>> {
        let mut out = Vec::new();
        let key = self.key_or(index);
        check::object_name(&mut out, &path.key("key"), &key);
        let referee = self.referee.clone().filter(|r| !r.trim().is_empty());
        if self.servers.len() != 2 {
            check::push(
                &mut out,
                &path.key("servers"),
                format!(
                    "a group has exactly two servers (a master and its replica), not {}",
                    self.servers.len()
                ),
            );
        }
        let base = self.defaults.clone().unwrap_or_default();
        let servers: Vec<_> = self
            .servers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.over(&base)
                    .resolve(&path.key("servers").index(i), &mut out)
            })
            .collect();
        if let [a, b] = servers.as_slice()
            && (&a.pg_host, a.pg_port) == (&b.pg_host, b.pg_port)
        {
            check::push(
                &mut out,
                &path.key("servers").index(1).key("pg_host"),
                "both servers point at the same PostgreSQL (pg_host and pg_port)",
            );
        }
        match <[PgServerResolved; 2]>::try_from(servers) {
            Ok(servers) if out.is_empty() => Ok(PgGroupResolved {
                key,
                referee,
                servers,
            }),
            _ => Err(out),
        }
    }
}

/// `backup_controller`: when to run and what to archive where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct BackupController {
    /// `[from, to]` hours in UTC, wrapping past midnight (`[20, 3]`).
    pub hours_interval: Option<[u8; 2]>,
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub weekdays: Vec<u8>,
    /// Archives kept per storage folder; older ones are removed (0: all kept).
    pub keep: u32,
    /// Storage used by entries that name none.
    pub storage_ssh_host: Option<String>,
    pub storage_ssh_port: Option<u16>,
    pub storage_ssh_user: Option<String>,
    pub storage_ssh_pwd: Option<String>,
    pub storage_ssh_path: Option<String>,
    pub sync_folder: Option<SyncFolder>,
    pub pgdb: Vec<BackupServer>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SendMode {
    #[default]
    Rsync,
    ZipCmd,
}

/// The node's sync folder (the seed's `:SYNC`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SyncFolder {
    /// Local folder to archive; nothing is archived without it.
    pub folder: Option<String>,
    pub excluded_paths: Vec<String>,
    pub send_mode: Option<SendMode>,
    pub zip_command: Option<String>,
    pub ssh_command: Option<String>,
    pub sshkeygen_command: Option<String>,
    pub sshkeyscan_command: Option<String>,
    pub rsync_command: Option<String>,
    pub scp_command: Option<String>,
    pub rm_command: Option<String>,
    pub storage_ssh_host: Option<String>,
    pub storage_ssh_port: Option<u16>,
    pub storage_ssh_user: Option<String>,
    pub storage_ssh_pwd: Option<String>,
    pub storage_ssh_path: Option<String>,
}

/// One PostgreSQL instance to archive (an entry of `pgdb`), or one of its
/// `servers`: those are tried in order until one succeeds and take the
/// instance's values for the keys they leave out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct BackupServer {
    pub ssh_host: Option<String>,
    pub ssh_port: Option<u16>,
    pub ssh_user: Option<String>,
    pub ssh_pwd: Option<String>,
    pub pg_host: Option<String>,
    pub pg_port: Option<u16>,
    pub pg_replica_user: Option<String>,
    pub pg_replica_pwd: Option<String>,
    /// Temporary folder on the server; `/tmp/backup_temp/pgdb/` by default.
    pub destination_folder: Option<String>,
    pub pg_basebackup_command: Option<String>,
    pub send_mode: Option<SendMode>,
    pub zip_command: Option<String>,
    pub ssh_command: Option<String>,
    pub sshpass_command: Option<String>,
    pub sshkeygen_command: Option<String>,
    pub sshkeyscan_command: Option<String>,
    pub rsync_command: Option<String>,
    pub scp_command: Option<String>,
    pub rm_command: Option<String>,
    pub storage_ssh_host: Option<String>,
    pub storage_ssh_port: Option<u16>,
    pub storage_ssh_user: Option<String>,
    pub storage_ssh_pwd: Option<String>,
    pub storage_ssh_path: Option<String>,
    pub servers: Vec<BackupServer>,
}

impl BackupServer {
    /// The servers to try, each with the instance's values filled in.
    pub fn candidates(&self) -> Vec<BackupServer> {
        if self.servers.is_empty() {
            return vec![self.clone()];
        }
        macro_rules! pick {
            ($s:ident, $($f:ident),*) => { BackupServer {
                $($f: $s.$f.clone().or_else(|| self.$f.clone()),)*
                servers: Vec::new(),
            } };
        }
        self.servers
            .iter()
            .map(|s| {
                pick!(
                    s,
                    ssh_host,
                    ssh_port,
                    ssh_user,
                    ssh_pwd,
                    pg_host,
                    pg_port,
                    pg_replica_user,
                    pg_replica_pwd,
                    destination_folder,
                    pg_basebackup_command,
                    send_mode,
                    zip_command,
                    ssh_command,
                    sshpass_command,
                    sshkeygen_command,
                    sshkeyscan_command,
                    rsync_command,
                    scp_command,
                    rm_command,
                    storage_ssh_host,
                    storage_ssh_port,
                    storage_ssh_user,
                    storage_ssh_pwd,
                    storage_ssh_path
                )
            })
            .collect()
    }
}

impl BackupServer {
    /// Host and user names of this entry as written (not filled in from
    /// the instance, so each value is reported once, where it is).
    fn check_names(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        host_name(out, &path.key("ssh_host"), &self.ssh_host);
        host_name(out, &path.key("pg_host"), &self.pg_host);
        host_name(out, &path.key("storage_ssh_host"), &self.storage_ssh_host);
        user_name(out, &path.key("ssh_user"), &self.ssh_user);
        user_name(out, &path.key("pg_replica_user"), &self.pg_replica_user);
        user_name(out, &path.key("storage_ssh_user"), &self.storage_ssh_user);
    }
}

impl BackupController {
    fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        host_name(out, &path.key("storage_ssh_host"), &self.storage_ssh_host);
        user_name(out, &path.key("storage_ssh_user"), &self.storage_ssh_user);
        if let Some(f) = &self.sync_folder {
            let at = path.key("sync_folder");
            host_name(out, &at.key("storage_ssh_host"), &f.storage_ssh_host);
            user_name(out, &at.key("storage_ssh_user"), &f.storage_ssh_user);
        }
        if let Some([from, to]) = self.hours_interval
            && (from > 23 || to > 23)
        {
            check::push(out, &path.key("hours_interval"), "hours are 0 to 23 (UTC)");
        }
        for (i, d) in self.weekdays.iter().enumerate() {
            if !(1..=7).contains(d) {
                check::push(
                    out,
                    &path.key("weekdays").index(i),
                    "weekdays are 1 (Monday) to 7 (Sunday)",
                );
            }
        }
        for (i, inst) in self.pgdb.iter().enumerate() {
            let at = path.key("pgdb").index(i);
            inst.check_names(&at, out);
            for (n, s) in inst.servers.iter().enumerate() {
                s.check_names(&at.key("servers").index(n), out);
            }
            for (n, s) in inst.candidates().iter().enumerate() {
                let sp = if inst.servers.is_empty() {
                    at.clone()
                } else {
                    at.key("servers").index(n)
                };
                if inst.servers.get(n).is_some_and(|s| !s.servers.is_empty()) {
                    check::push(
                        out,
                        &sp.key("servers"),
                        "a server has no servers of its own",
                    );
                }
                if s.ssh_host.is_none() && s.pg_host.is_none() {
                    check::push(out, &sp.key("ssh_host"), "ssh_host or pg_host is required");
                }
                if s.storage_ssh_host.is_none() && self.storage_ssh_host.is_none() {
                    check::push(
                        out,
                        &sp.key("storage_ssh_host"),
                        "no storage server here nor at the top of backup_controller",
                    );
                }
            }
        }
    }
}

impl Pgha {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if !(1..=3600).contains(&self.grace) {
            check::push(
                out,
                &path.key("grace"),
                "must be between 1 and 3600 seconds",
            );
        }
        if !(1..=600).contains(&self.poll_interval) {
            check::push(
                out,
                &path.key("poll_interval"),
                "must be between 1 and 600 seconds",
            );
        }
        let groups = path.key("pg_controller");
        for (i, g) in self.pg_controller.iter().enumerate() {
            if let Err(problems) = g.resolve(i, &groups.index(i)) {
                out.extend(problems);
            }
        }
        check::unique(
            out,
            &groups,
            "key",
            self.pg_controller
                .iter()
                .enumerate()
                .map(|(i, g)| g.key_or(i))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        );
        if let Some(b) = &self.backup_controller {
            b.validate(&path.key("backup_controller"), out);
        }
    }
}

#[cfg(test)]
#[path = "pgha_tests.rs"]
mod tests;
