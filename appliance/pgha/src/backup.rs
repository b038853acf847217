//! The seed's `backup_controller`: in its window (see [`crate::schedule`]),
//! a `pg_basebackup` of each instance made on its database host over SSH
//! (the next server of the instance when one fails) and sent from there to
//! the storage server with rsync or zip + scp, then the node's sync folder
//! the same way from the node. Any failure aborts the run; it is retried
//! 20 minutes later. Results go to `bkp_controller.log` and notifications.

use std::time::Duration;

use alpharen_store::config::{BackupController, BackupServer, SendMode, SyncFolder};

use crate::clock::Utc;
use crate::journal::Journal;
use crate::remote::{Remote, Target, quote};
use crate::schedule::{self, Memory, Schedule};

/// Longest one instance's backup and transfer may take.
const RUN_LIMIT: Duration = Duration::from_secs(6 * 3600);

/// Where an archive goes and how, with the seed's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub mode: SendMode,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub path: String,
    pub ssh: String,
    pub sshpass: String,
    pub rsync: String,
    pub zip: String,
    pub scp: String,
}

impl Send {
    /// `user@host` for ssh/scp/rsync.
    fn login(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// `sshpass -e` (password from $SSHPASS) when a password is set.
    fn pass(&self) -> String {
        match &self.password {
            Some(p) => format!("SSHPASS={} {} -e ", quote(p), self.sshpass),
            None => String::new(),
        }
    }

    /// The storage's key is recorded on first use by the sending host.
    fn ssh_opts(&self) -> &'static str {
        "-o StrictHostKeyChecking=accept-new"
    }

    /// Shell lines sending folder `dir` (inside the current directory) as
    /// `name` to the storage path. With `keep`, zip archives carry a UTC
    /// stamp and only the newest `keep` of them stay on the storage.
    pub fn script(&self, dir: &str, name: &str, excluded: &[String], keep: u32) -> Vec<String> {
        let remote_mkdir = quote(&format!("mkdir -p {}", quote(&self.path)));
        let ssh = format!("{} {} -p {}", self.ssh, self.ssh_opts(), self.port);
        let mut lines = vec![format!(
            "{}{ssh} {} {remote_mkdir}",
            self.pass(),
            self.login()
        )];
        match self.mode {
            SendMode::Rsync => {
                let excludes: String = excluded
                    .iter()
                    .map(|e| format!(" --exclude={}", quote(e)))
                    .collect();
                lines.push(format!(
                    "{}{} -a --delete{excludes} -e {} {}/ {}:{}/",
                    self.pass(),
                    self.rsync,
                    quote(&ssh),
                    quote(dir),
                    self.login(),
                    quote(&format!("{}/{name}", self.path)),
                ));
            }
            SendMode::ZipCmd => {
                let name = if keep > 0 {
                    format!("{name}_{}", Utc::now().compact())
                } else {
                    name.to_string()
                };
                let excludes: String = excluded
                    .iter()
                    .map(|e| format!(" -x {}", quote(e)))
                    .collect();
                lines.push(format!(
                    "{} -qr {} {}{excludes}",
                    self.zip,
                    quote(&format!("{name}.zip")),
                    quote(dir)
                ));
                lines.push(format!(
                    "{}{} {} -P {} {} {}:{}/",
                    self.pass(),
                    self.scp,
                    self.ssh_opts(),
                    self.port,
                    quote(&format!("{name}.zip")),
                    self.login(),
                    quote(&self.path),
                ));
                if keep > 0 {
                    let prune = format!(
                        "ls -1 {}/{name_glob}_*.zip | sort | head -n -{keep} | xargs -r rm -f",
                        quote(&self.path),
                        name_glob = name.rsplit_once('_').map_or(name.as_str(), |(n, _)| n),
                    );
                    lines.push(format!(
                        "{}{} {} -p {} {} {}",
                        self.pass(),
                        self.ssh,
                        self.ssh_opts(),
                        self.port,
                        self.login(),
                        quote(&prune)
                    ));
                }
            }
        }
        lines
    }
}

/// Storage and commands of one entry, falling back to the top level.
fn send_for(top: &BackupController, s: &BackupServer, at: &Utc) -> Option<Send> {
    Some(Send {
        mode: s.send_mode.unwrap_or_default(),
        host: s
            .storage_ssh_host
            .clone()
            .or(top.storage_ssh_host.clone())?,
        port: s.storage_ssh_port.or(top.storage_ssh_port).unwrap_or(22),
        user: s.storage_ssh_user.clone().or(top.storage_ssh_user.clone()),
        password: s.storage_ssh_pwd.clone().or(top.storage_ssh_pwd.clone()),
        path: schedule::expand(
            &s.storage_ssh_path
                .clone()
                .or(top.storage_ssh_path.clone())
                .unwrap_or_else(|| ".".into()),
            at,
        ),
        ssh: s.ssh_command.clone().unwrap_or_else(|| "ssh".into()),
        sshpass: s
            .sshpass_command
            .clone()
            .unwrap_or_else(|| "sshpass".into()),
        rsync: s.rsync_command.clone().unwrap_or_else(|| "rsync".into()),
        zip: s.zip_command.clone().unwrap_or_else(|| "zip".into()),
        scp: s.scp_command.clone().unwrap_or_else(|| "scp".into()),
    })
}

/// The sync folder's entry seen as a server entry (same keys).
fn sync_as_server(f: &SyncFolder) -> BackupServer {
    BackupServer {
        send_mode: f.send_mode,
        zip_command: f.zip_command.clone(),
        ssh_command: f.ssh_command.clone(),
        rsync_command: f.rsync_command.clone(),
        scp_command: f.scp_command.clone(),
        storage_ssh_host: f.storage_ssh_host.clone(),
        storage_ssh_port: f.storage_ssh_port,
        storage_ssh_user: f.storage_ssh_user.clone(),
        storage_ssh_pwd: f.storage_ssh_pwd.clone(),
        storage_ssh_path: f.storage_ssh_path.clone(),
        ..BackupServer::default()
    }
}

/// The script run on a database host: base backup into a temporary
/// folder, send it, remove the folder whatever happened.
pub fn instance_script(s: &BackupServer, send: &Send, name: &str, keep: u32) -> String {
    let tmp = format!(
        "{}/{name}",
        s.destination_folder
            .as_deref()
            .unwrap_or("/tmp/backup_temp/pgdb")
            .trim_end_matches('/')
    );
    let password = s
        .pg_replica_pwd
        .as_ref()
        .map(|p| format!("PGPASSWORD={} ", quote(p)))
        .unwrap_or_default();
    let host = s.pg_host.clone().or(s.ssh_host.clone()).unwrap_or_default();
    let mut lines = vec![
        "set -e".to_string(),
        format!(
            "rm -rf {t}; mkdir -p {t}; trap 'rm -rf {t}' EXIT; cd {t}",
            t = quote(&tmp)
        ),
        format!(
            "{password}{} -h {} -p {} -U {} -D data -X stream -c fast",
            s.pg_basebackup_command
                .as_deref()
                .unwrap_or("pg_basebackup"),
            quote(&host),
            s.pg_port.unwrap_or(5432),
            quote(s.pg_replica_user.as_deref().unwrap_or("postgres")),
        ),
    ];
    lines.extend(send.script("data", name, &[], keep));
    lines.join("\n")
}

/// One run over every instance and the sync folder; the first failure
/// ends it.
async fn run_once(
    cfg: &BackupController,
    remote: &Remote,
    journal: &Journal,
    at: &Utc,
) -> Result<(), String> {
    for (i, inst) in cfg.pgdb.iter().enumerate() {
        let mut errors = Vec::new();
        for s in inst.candidates() {
            let host = s.ssh_host.clone().or(s.pg_host.clone()).unwrap_or_default();
            let name = format!("pgdb{}_{host}", i + 1);
            let send = send_for(cfg, &s, at).ok_or("no storage server configured")?;
            let to = Target {
                host: host.clone(),
                port: s.ssh_port.unwrap_or(22),
                user: s.ssh_user.clone().unwrap_or_else(|| "postgres".into()),
                password: s.ssh_pwd.clone(),
            };
            match remote
                .run(&to, &instance_script(&s, &send, &name, cfg.keep), RUN_LIMIT)
                .await
            {
                Ok(out) if out.status == 0 => {
                    journal.note(&format!(
                        "pgdb[{i}] from {host} sent to {}:{}",
                        send.host, send.path
                    ));
                    errors.clear();
                    break;
                }
                Ok(out) => errors.push(format!("{host}: exit {}: {}", out.status, out.tail())),
                Err(e) => errors.push(e.to_string()),
            }
            journal.note(&format!(
                "pgdb[{i}] from {host} failed; trying the next server"
            ));
        }
        if !errors.is_empty() {
            return Err(format!(
                "pgdb[{i}]: every server failed: {}",
                errors.join("; ")
            ));
        }
    }
    if let Some(f) = &cfg.sync_folder
        && let Some(folder) = &f.folder
    {
        let send = send_for(cfg, &sync_as_server(f), at).ok_or("sync_folder: no storage server")?;
        let dir = std::path::Path::new(folder);
        let (parent, base) = (
            dir.parent()
                .map_or_else(|| "/".into(), |p| p.display().to_string()),
            dir.file_name()
                .map_or_else(|| ".".into(), |b| b.to_string_lossy().into_owned()),
        );
        let script = format!(
            "set -e\ncd {}\n{}",
            quote(&parent),
            send.script(&base, "sync", &f.excluded_paths, cfg.keep)
                .join("\n")
        );
        let out = tokio::time::timeout(
            RUN_LIMIT,
            tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output(),
        )
        .await
        .map_err(|_| "sync_folder: took too long".to_string())?
        .map_err(|e| format!("sync_folder: cannot run sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "sync_folder: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            ));
        }
        journal.note(&format!(
            "sync folder {folder} sent to {}:{}",
            send.host, send.path
        ));
    }
    Ok(())
}

/// Runs the backup controller until aborted: checks the schedule every
/// minute; `now` (from `pgha.backup`) starts a run at once. `last` holds
/// the last result for `pgha.status`.
pub async fn run(
    cfg: BackupController,
    remote: std::sync::Arc<Remote>,
    journal: Journal,
    now: std::sync::Arc<tokio::sync::Notify>,
    last: std::sync::Arc<std::sync::Mutex<Option<String>>>,
) {
    let schedule = Schedule {
        weekdays: cfg.weekdays.clone(),
        hours: cfg.hours_interval.unwrap_or([0, 0]),
    };
    let mut memory = Memory {
        started_at: alpharen_store::now_unix(),
        ..Memory::default()
    };
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        let asked = tokio::select! {
            _ = tick.tick() => false,
            _ = now.notified() => true,
        };
        let t = alpharen_store::now_unix();
        let day = schedule.due(t, &memory);
        if !asked && day.is_none() {
            continue;
        }
        journal.note(if asked {
            "backup asked for"
        } else {
            "backup started"
        });
        let result = run_once(&cfg, &remote, &journal, &Utc::from_unix(t)).await;
        let shown = match &result {
            Ok(()) => {
                memory.done_day = day.or(memory.done_day);
                memory.last_failure = None;
                journal.alert(
                    "backup done",
                    "every instance and the sync folder were sent",
                );
                format!("{} ok", Utc::from_unix(t).stamp())
            }
            Err(e) => {
                memory.last_failure = Some(t);
                journal.alert("backup failed; next try in 20 minutes", e);
                format!("{} failed: {e}", Utc::from_unix(t).stamp())
            }
        };
        if let Ok(mut l) = last.lock() {
            *l = Some(shown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(mode: SendMode) -> Send {
        Send {
            mode,
            host: "storage".into(),
            port: 8022,
            user: Some("user414".into()),
            password: Some("pw".into()),
            path: "backup/dow_1".into(),
            ssh: "ssh".into(),
            sshpass: "sshpass".into(),
            rsync: "rsync".into(),
            zip: "zip".into(),
            scp: "scp".into(),
        }
    }

    #[test]
    fn rsync_sends_the_folder_under_its_name() {
        let lines = send(SendMode::Rsync).script("data", "pgdb1_db1", &["**/temp/*".into()], 0);
        assert_eq!(
            lines[0],
            "SSHPASS='pw' sshpass -e ssh -o StrictHostKeyChecking=accept-new -p 8022 user414@storage 'mkdir -p '\\''backup/dow_1'\\'''"
        );
        assert_eq!(
            lines[1],
            "SSHPASS='pw' sshpass -e rsync -a --delete --exclude='**/temp/*' -e 'ssh -o StrictHostKeyChecking=accept-new -p 8022' 'data'/ user414@storage:'backup/dow_1/pgdb1_db1'/"
        );
    }

    #[test]
    fn zip_packs_then_copies() {
        let lines = send(SendMode::ZipCmd).script("data", "sync", &[], 0);
        assert_eq!(lines[1], "zip -qr 'sync.zip' 'data'");
        assert!(lines[2].ends_with("-P 8022 'sync.zip' user414@storage:'backup/dow_1'/"));
    }

    #[test]
    fn instance_settings_fall_back_to_the_top_and_expand_templates() {
        let top = BackupController {
            storage_ssh_host: Some("storage.local".into()),
            storage_ssh_path: Some("backup/dow_%weekday".into()),
            ..BackupController::default()
        };
        let s = BackupServer {
            ssh_host: Some("db1".into()),
            ..BackupServer::default()
        };
        let monday = Utc::from_unix(1_795_392_000);
        let send = send_for(&top, &s, &monday).unwrap();
        assert_eq!((send.host.as_str(), send.port), ("storage.local", 22));
        assert_eq!(send.path, "backup/dow_1");
        assert_eq!(send.mode, SendMode::Rsync);
        assert!(send_for(&BackupController::default(), &s, &monday).is_none());
    }
}
