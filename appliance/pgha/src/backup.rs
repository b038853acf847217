//! The seed's `backup_controller`: in its window (see [`crate::schedule`]),
//! a `pg_basebackup` of each instance made on its database host over SSH
//! (the next server of the instance when one fails) and sent from there to
//! the storage server with rsync or zip + scp, then the node's sync folder
//! the same way from the node. Any failure aborts the run; it is retried
//! 20 minutes later. Results go to `bkp_controller.log` and notifications.

use std::time::Duration;

use alpharen_store::config::{BackupController, BackupServer, SendMode, SyncFolder};

use crate::clock::{self, Utc};
use crate::journal::Journal;
use crate::remote::{Remote, Target};
use crate::schedule::{self, Memory, Schedule};
use crate::shell::{self, Script, ShellError, quote};
use crate::singleton::{BACKUP, Fence};

/// What `pgha.status` shows of the backup controller.
#[derive(Debug, Clone, Default)]
pub struct Shown {
    /// The last run: its time and `ok` or `failed: <why>`.
    pub last: Option<String>,
    /// Unix time of the next run (now when one is due).
    pub next: Option<i64>,
}

/// Longest one instance's backup and transfer may take.
const RUN_LIMIT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}: no storage server configured")]
    NoStorage(String),
    #[error(transparent)]
    Shell(#[from] ShellError),
    #[error("pgdb[{index}]: every server failed: {}", errors.join("; "))]
    EveryServerFailed { index: usize, errors: Vec<String> },
    #[error("sync_folder: took longer than {} hours", RUN_LIMIT.as_secs() / 3600)]
    SyncTimeout,
    #[error("sync_folder: cannot run sh: {0}")]
    SyncSpawn(std::io::Error),
    #[error("sync_folder: {0}")]
    SyncFailed(String),
}

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
    /// `user@host` for ssh/scp/rsync, one quoted word.
    fn login(&self) -> String {
        quote(&match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        })
    }

    /// The storage's key is recorded on first use by the sending host.
    fn ssh_opts(&self) -> &'static str {
        "-o StrictHostKeyChecking=accept-new"
    }

    /// Adds the lines sending folder `dir` (inside the current directory)
    /// as `name` to the storage path. With `keep`, zip archives carry a
    /// UTC stamp and only the newest `keep` of them stay on the storage.
    /// A password goes to `sshpass -f` in a file of the script's own.
    pub fn script(
        &self,
        s: &mut Script,
        dir: &str,
        name: &str,
        excluded: &[String],
        keep: u32,
    ) -> Result<(), ShellError> {
        let pass = match &self.password {
            Some(p) => format!(
                "{} -f {} ",
                shell::command(&self.sshpass),
                s.secret("storage", "storage_ssh_pwd", p)?
            ),
            None => String::new(),
        };
        let ssh = format!(
            "{} {} -p {}",
            shell::command(&self.ssh),
            self.ssh_opts(),
            self.port
        );
        let remote_mkdir = quote(&format!("mkdir -p {}", quote(&self.path)));
        s.line(format!("{pass}{ssh} {} {remote_mkdir}", self.login()));
        match self.mode {
            SendMode::Rsync => {
                let excludes: String = excluded
                    .iter()
                    .map(|e| format!(" --exclude={}", quote(e)))
                    .collect();
                s.line(format!(
                    "{pass}{} -a --delete{excludes} -e {} {}/ {}:{}/",
                    shell::command(&self.rsync),
                    quote(&ssh),
                    quote(dir),
                    self.login(),
                    quote(&format!("{}/{name}", self.path)),
                ));
            }
            SendMode::ZipCmd => {
                let stamped = if keep > 0 {
                    format!("{name}_{}", clock::compact(&clock::now()))
                } else {
                    name.to_string()
                };
                let excludes: String = excluded
                    .iter()
                    .map(|e| format!(" -x {}", quote(e)))
                    .collect();
                s.line(format!(
                    "{} -qr {} {}{excludes}",
                    shell::command(&self.zip),
                    quote(&format!("{stamped}.zip")),
                    quote(dir)
                ));
                s.line(format!(
                    "{pass}{} {} -P {} {} {}:{}/",
                    shell::command(&self.scp),
                    self.ssh_opts(),
                    self.port,
                    quote(&format!("{stamped}.zip")),
                    self.login(),
                    quote(&self.path),
                ));
                if keep > 0 {
                    let prune = format!(
                        "ls -1 {}/{}_*.zip | sort | head -n -{keep} | xargs -r rm -f",
                        quote(&self.path),
                        quote(name),
                    );
                    s.line(format!("{pass}{ssh} {} {}", self.login(), quote(&prune)));
                }
            }
        }
        Ok(())
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
/// folder, send it, remove the folder whatever happened. The replica
/// password reaches `pg_basebackup` in a password file.
pub fn instance_script(
    s: &BackupServer,
    send: &Send,
    name: &str,
    keep: u32,
) -> Result<String, ShellError> {
    let tmp = format!(
        "{}/{name}",
        s.destination_folder
            .as_deref()
            .unwrap_or("/tmp/backup_temp/pgdb")
            .trim_end_matches('/')
    );
    let mut script = Script::new();
    script.remove_on_exit(&tmp);
    let passfile = match &s.pg_replica_pwd {
        Some(p) => format!(
            "PGPASSFILE={} ",
            script.secret("pgpass", "pg_replica_pwd", &shell::pgpass_line(p))?
        ),
        None => String::new(),
    };
    let host = s.pg_host.clone().or(s.ssh_host.clone()).unwrap_or_default();
    script.line(format!("rm -rf {t}; mkdir -p {t}; cd {t}", t = quote(&tmp)));
    script.line(format!(
        "{passfile}{} -h {} -p {} -U {} -D data -X stream -c fast",
        shell::command(
            s.pg_basebackup_command
                .as_deref()
                .unwrap_or("pg_basebackup")
        ),
        quote(&host),
        s.pg_port.unwrap_or(5432),
        quote(s.pg_replica_user.as_deref().unwrap_or("postgres")),
    ));
    send.script(&mut script, "data", name, &[], keep)?;
    Ok(script.text())
}

/// Runs a script on this node, given to `sh` on stdin (see
/// [`crate::shell`]); on failure, the last line of its stderr.
async fn run_local(script: &str) -> Result<(), BackupError> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", shell::EVAL_STDIN])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(BackupError::SyncSpawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(BackupError::SyncSpawn)?;
    }
    let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .map_err(|_| BackupError::SyncTimeout)?
        .map_err(BackupError::SyncSpawn)?;
    if out.status.success() {
        return Ok(());
    }
    Err(BackupError::SyncFailed(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string(),
    ))
}

/// One run over every instance and the sync folder; the first failure
/// ends it.
async fn run_once(
    cfg: &BackupController,
    remote: &Remote,
    journal: &Journal,
    at: &Utc,
) -> Result<(), BackupError> {
    for (i, inst) in cfg.pgdb.iter().enumerate() {
        let mut errors = Vec::new();
        for s in inst.candidates() {
            let host = s.ssh_host.clone().or(s.pg_host.clone()).unwrap_or_default();
            let name = format!("pgdb{}_{host}", i + 1);
            let send = send_for(cfg, &s, at)
                .ok_or_else(|| BackupError::NoStorage(format!("pgdb[{i}]")))?;
            let to = Target {
                host: host.clone(),
                port: s.ssh_port.unwrap_or(22),
                user: s.ssh_user.clone().unwrap_or_else(|| "postgres".into()),
                password: s.ssh_pwd.clone(),
            };
            let script = instance_script(&s, &send, &name, cfg.keep)?;
            match remote.run(&to, &script, RUN_LIMIT).await {
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
            return Err(BackupError::EveryServerFailed { index: i, errors });
        }
    }
    if let Some(f) = &cfg.sync_folder
        && let Some(folder) = &f.folder
    {
        let send = send_for(cfg, &sync_as_server(f), at)
            .ok_or_else(|| BackupError::NoStorage("sync_folder".into()))?;
        let dir = std::path::Path::new(folder);
        let (parent, base) = (
            dir.parent()
                .map_or_else(|| "/".into(), |p| p.display().to_string()),
            dir.file_name()
                .map_or_else(|| ".".into(), |b| b.to_string_lossy().into_owned()),
        );
        let mut script = Script::new();
        script.line(format!("cd {}", quote(&parent)));
        send.script(&mut script, &base, "sync", &f.excluded_paths, cfg.keep)?;
        run_local(&script.text()).await?;
        journal.note(&format!(
            "sync folder {folder} sent to {}:{}",
            send.host, send.path
        ));
    }
    Ok(())
}

/// Runs the backup controller until aborted: checks the schedule every
/// minute; `now` (from `pgha.backup`) starts a run at once. `shown` holds
/// the last result and the next run for `pgha.status`.
/// The backup history a successor resumes from in a cluster.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct History {
    memory: Memory,
    last: Option<String>,
}

const HISTORY: &str = "history";

pub async fn run(
    cfg: BackupController,
    remote: std::sync::Arc<Remote>,
    journal: Journal,
    now: std::sync::Arc<tokio::sync::Notify>,
    shown: std::sync::Arc<std::sync::Mutex<Shown>>,
    fence: Option<Fence>,
) {
    let schedule = Schedule {
        weekdays: cfg.weekdays.clone(),
        hours: cfg.hours_interval.unwrap_or([0, 0]),
    };
    let mut memory = Memory {
        started_at: alpharen_store::now_unix(),
        ..Memory::default()
    };
    // Taking over in a cluster: the last holder's window day and failure
    // count here too (no second run in a window, no early retry).
    if let Some(f) = &fence
        && let Some(h) = f.get::<History>(BACKUP, HISTORY).await
    {
        memory.done_day = h.memory.done_day;
        memory.last_failure = h.memory.last_failure;
        if let Ok(mut s) = shown.lock() {
            s.last = h.last;
        }
        journal.note(&format!(
            "backup history resumed from the cluster (lease epoch {})",
            f.epoch
        ));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        let asked = tokio::select! {
            _ = tick.tick() => false,
            _ = now.notified() => true,
        };
        let t = alpharen_store::now_unix();
        if let Ok(mut s) = shown.lock() {
            s.next = schedule.next_run(t, &memory);
        }
        let day = schedule.due(t, &memory);
        if !asked && day.is_none() {
            continue;
        }
        journal.note(if asked {
            "backup asked for"
        } else {
            "backup started"
        });
        let result = run_once(&cfg, &remote, &journal, &clock::from_unix(t)).await;
        let result_text = match &result {
            Ok(()) => {
                memory.done_day = day.or(memory.done_day);
                memory.last_failure = None;
                journal.alert(
                    "backup done",
                    "every instance and the sync folder were sent",
                );
                format!("{} ok", clock::stamp(&clock::from_unix(t)))
            }
            Err(e) => {
                memory.last_failure = Some(t);
                journal.alert("backup failed; next try in 20 minutes", &e.to_string());
                format!("{} failed: {e}", clock::stamp(&clock::from_unix(t)))
            }
        };
        let next = schedule.next_run(alpharen_store::now_unix(), &memory);
        if let Some(f) = &fence {
            let h = History {
                memory,
                last: Some(result_text.clone()),
            };
            f.set(BACKUP, HISTORY, &h).await;
        }
        if let Ok(mut s) = shown.lock() {
            *s = Shown {
                last: Some(result_text),
                next,
            };
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

    fn lines(send: &Send, excluded: &[String], keep: u32) -> Vec<String> {
        let mut s = Script::new();
        send.script(&mut s, "data", "pgdb1_db1", excluded, keep)
            .unwrap();
        s.text().lines().map(str::to_string).collect()
    }

    #[test]
    fn rsync_sends_the_folder_under_its_name_with_the_password_in_a_file() {
        let lines = lines(&send(SendMode::Rsync), &["**/temp/*".into()], 0);
        let text = lines.join("\n");
        assert!(!text.contains("SSHPASS"), "{text}");
        assert_eq!(lines[1], "secrets=$(mktemp -d)");
        assert_eq!(lines[2], r#"trap 'rm -rf "$secrets"' EXIT"#);
        assert_eq!(lines[4], "pw");
        assert_eq!(
            lines[6],
            r#"'sshpass' -f "$secrets"/'storage' 'ssh' -o StrictHostKeyChecking=accept-new -p 8022 'user414@storage' 'mkdir -p '\''backup/dow_1'\'''"#
        );
        assert_eq!(
            lines[7],
            r#"'sshpass' -f "$secrets"/'storage' 'rsync' -a --delete --exclude='**/temp/*' -e ''\''ssh'\'' -o StrictHostKeyChecking=accept-new -p 8022' 'data'/ 'user414@storage':'backup/dow_1/pgdb1_db1'/"#
        );
    }

    #[test]
    fn zip_packs_copies_and_prunes() {
        let lines = lines(&send(SendMode::ZipCmd), &[], 2);
        assert!(
            lines[7].starts_with("'zip' -qr 'pgdb1_db1_2"),
            "{}",
            lines[7]
        );
        assert!(
            lines[8].ends_with("'user414@storage':'backup/dow_1'/"),
            "{}",
            lines[8]
        );
        assert!(
            lines[9].ends_with(
                r"'ls -1 '\''backup/dow_1'\''/'\''pgdb1_db1'\''_*.zip | sort | head -n -2 | xargs -r rm -f'"
            ),
            "{}",
            lines[9]
        );
    }

    #[test]
    fn the_instance_script_gives_the_replica_password_in_a_file() {
        let s = BackupServer {
            ssh_host: Some("db1".into()),
            pg_replica_pwd: Some("s3cret:x".into()),
            ..BackupServer::default()
        };
        let text = instance_script(&s, &send(SendMode::Rsync), "pgdb1_db1", 0).unwrap();
        assert!(!text.contains("PGPASSWORD"), "{text}");
        assert!(text.contains("\n*:*:*:*:s3cret\\:x\n"), "{text}");
        assert!(
            text.contains(r#"PGPASSFILE="$secrets"/'pgpass' 'pg_basebackup' -h 'db1' -p 5432"#)
        );
        assert!(
            text.contains(
                r#"trap 'rm -rf "$secrets" '\''/tmp/backup_temp/pgdb/pgdb1_db1'\''' EXIT"#
            )
        );
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
        let monday = clock::from_unix(1_795_392_000);
        let send = send_for(&top, &s, &monday).unwrap();
        assert_eq!((send.host.as_str(), send.port), ("storage.local", 22));
        assert_eq!(send.path, "backup/dow_1");
        assert_eq!(send.mode, SendMode::Rsync);
        assert!(send_for(&BackupController::default(), &s, &monday).is_none());
    }
}
