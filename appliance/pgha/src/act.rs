//! The actions of [`crate::decide`] carried out over SSH, each followed by
//! a check over SQL that it took effect: a promoted server leaves
//! recovery, a rebuilt one streams from the master.

use std::time::Duration;

use alpharen_store::config::PgServerResolved;

use crate::observe::{self, SqlTarget};
use crate::remote::{Remote, RemoteError, Target};
use crate::shell::{self, Script, ShellError, quote};

/// Longest a rebuild's base backup may take.
const REBUILD_LIMIT: Duration = Duration::from_secs(3600);
const CTL_LIMIT: Duration = Duration::from_secs(90);
/// Longest a promoted or rebuilt server gets to show the change.
const VERIFY_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error("exit status {status}: {tail}")]
    Exit { status: u32, tail: String },
    #[error("promoted, but it did not leave recovery")]
    NotPromoted,
    #[error("rebuilt and started, but it does not stream from the master")]
    NotStreaming,
}

/// One server's SSH and SQL coordinates with its secrets.
#[derive(Debug, Clone)]
pub struct Server {
    pub cfg: PgServerResolved,
    pub ssh: Target,
    pub sql: SqlTarget,
}

impl Server {
    pub fn new(cfg: PgServerResolved) -> Server {
        Server {
            ssh: Target {
                host: cfg.ssh_host.clone(),
                port: cfg.ssh_port,
                user: cfg.ssh_user.clone(),
                password: cfg.ssh_pwd.clone(),
            },
            sql: SqlTarget {
                host: cfg.pg_host.clone(),
                port: cfg.pg_port,
                user: cfg.pg_replica_user.clone(),
                password: cfg.pg_replica_pwd.clone(),
                database: cfg.pg_database.clone(),
            },
            cfg,
        }
    }

    fn pg_ctl(&self) -> String {
        format!(
            "{} -D {}",
            shell::command(&self.cfg.pg_ctl_command),
            quote(&self.cfg.pg_data_folder)
        )
    }

    /// Stops PostgreSQL if it runs (fast shutdown: clients are cut).
    fn stop_line(&self) -> String {
        let ctl = self.pg_ctl();
        format!("if {ctl} status >/dev/null 2>&1; then {ctl} stop -m fast -w -t 60; fi")
    }

    fn start_line(&self) -> String {
        let log = self
            .cfg
            .pg_log_filepath
            .clone()
            .unwrap_or_else(|| format!("{}/postgresql.log", self.cfg.pg_backup_folder));
        format!("{} -l {} start -w -t 60", self.pg_ctl(), quote(&log))
    }

    /// The seed's recovery: stop, move the data folder into the backup
    /// folder under a UTC stamp (never deleted by us), base backup from the
    /// master with `-R` (standby.signal + primary_conninfo), start. The
    /// replica password goes into `<pg_backup_folder>/replica.pgpass`
    /// (mode 0600), which `pg_basebackup` reads and `-R` names as the
    /// standby's `passfile`: the running standby keeps using it.
    fn rebuild_script(&self, from: &Server) -> Result<String, ShellError> {
        let data = quote(&self.cfg.pg_data_folder);
        let backups = quote(&self.cfg.pg_backup_folder);
        let mut s = Script::new();
        s.line(self.stop_line());
        s.line(format!("mkdir -p {backups}"));
        let passfile = match &self.cfg.pg_replica_pwd {
            Some(p) => format!(
                "PGPASSFILE={} ",
                s.kept_secret(
                    &format!("{}/replica.pgpass", self.cfg.pg_backup_folder),
                    "pg_replica_pwd",
                    &shell::pgpass_line(p)
                )?
            ),
            None => String::new(),
        };
        s.line(format!(
            "if [ -e {data} ]; then mv {data} {backups}/\"$(basename {data})\".\"$(date -u +%Y%m%dT%H%M%SZ)\"; fi"
        ));
        s.line(format!(
            "{passfile}{} -h {} -p {} -U {} -D {data} -R -X stream -c fast",
            shell::command(&self.cfg.pg_basebackup_command),
            quote(&from.cfg.pg_host),
            from.cfg.pg_port,
            quote(&self.cfg.pg_replica_user),
        ));
        s.line(self.start_line());
        Ok(s.text())
    }
}

/// Runs a script; a non-zero exit is an error carrying the output's tail.
async fn script(remote: &Remote, on: &Server, text: &str, limit: Duration) -> Result<(), ActError> {
    let out = remote.run(&on.ssh, text, limit).await?;
    if out.status == 0 {
        Ok(())
    } else {
        Err(ActError::Exit {
            status: out.status,
            tail: out.tail(),
        })
    }
}

pub async fn fence(remote: &Remote, server: &Server) -> Result<(), ActError> {
    script(remote, server, &server.stop_line(), CTL_LIMIT).await
}

/// `pg_ctl promote` (12–17), then waits until it leaves recovery; returns
/// the new timeline.
pub async fn promote(remote: &Remote, server: &Server) -> Result<i32, ActError> {
    let text = format!("{} promote -w -t 60", server.pg_ctl());
    script(remote, server, &text, CTL_LIMIT).await?;
    verify(server, |p| p.primary.then_some(p.timeline.unwrap_or(0)))
        .await
        .ok_or(ActError::NotPromoted)
}

/// Rebuilds `server` as a standby of `from`, then waits until it streams.
pub async fn rebuild(remote: &Remote, server: &Server, from: &Server) -> Result<(), ActError> {
    script(remote, server, &server.rebuild_script(from)?, REBUILD_LIMIT).await?;
    verify(server, |p| {
        p.receiver
            .as_ref()
            .is_some_and(|r| r.status == "streaming")
            .then_some(())
    })
    .await
    .ok_or(ActError::NotStreaming)
}

/// Polls `server` until `check` says yes or VERIFY_LIMIT passes.
async fn verify<T>(server: &Server, check: impl Fn(&observe::Polled) -> Option<T>) -> Option<T> {
    let end = tokio::time::Instant::now() + VERIFY_LIMIT;
    while tokio::time::Instant::now() < end {
        if let Ok(p) = observe::poll(&server.sql, Duration::from_secs(3)).await
            && let Some(v) = check(&p)
        {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(host: &str) -> Server {
        Server::new(PgServerResolved {
            ssh_host: host.into(),
            ssh_port: 22,
            ssh_user: "postgres".into(),
            ssh_pwd: None,
            pg_host: host.into(),
            pg_port: 5432,
            pg_replica_user: "era_replica".into(),
            pg_replica_pwd: Some("it's".into()),
            pg_ctl_command: "/usr/lib/postgresql/15/bin/pg_ctl".into(),
            pg_basebackup_command: "pg_basebackup".into(),
            pg_database: "postgres".into(),
            pg_data_folder: "/srv/pg data".into(),
            pg_backup_folder: "/srv/backups".into(),
            pg_log_filepath: None,
            pg_signal_filepath: None,
        })
    }

    #[test]
    fn rebuild_moves_the_data_aside_and_streams_from_the_master() {
        let s = server("db1").rebuild_script(&server("db2")).unwrap();
        assert!(!s.contains("PGPASSWORD"), "{s}");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "set -e");
        assert!(lines[1].contains("stop -m fast"));
        assert_eq!(lines[2], "mkdir -p '/srv/backups'");
        // The password file: a here-document, never an argument.
        assert_eq!(
            lines[3],
            "(umask 077; rm -f '/srv/backups/replica.pgpass'; cat >'/srv/backups/replica.pgpass') <<'ALPHAREN_SECRET_END'"
        );
        assert_eq!(lines[4], "*:*:*:*:it's");
        assert!(
            lines[6]
                .starts_with("if [ -e '/srv/pg data' ]; then mv '/srv/pg data' '/srv/backups'/")
        );
        assert_eq!(
            lines[7],
            "PGPASSFILE='/srv/backups/replica.pgpass' 'pg_basebackup' -h 'db2' -p 5432 -U 'era_replica' -D '/srv/pg data' -R -X stream -c fast"
        );
        assert!(lines[8].ends_with("-l '/srv/backups/postgresql.log' start -w -t 60"));
    }

    #[test]
    fn configured_commands_cannot_add_shell_syntax() {
        let mut s = server("db1");
        s.cfg.pg_ctl_command = "pg_ctl; reboot".into();
        assert_eq!(
            s.start_line(),
            "'pg_ctl;' 'reboot' -D '/srv/pg data' -l '/srv/backups/postgresql.log' start -w -t 60"
        );
    }
}
