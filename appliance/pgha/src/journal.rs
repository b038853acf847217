//! Where the controller's actions go: the seed's dedicated log file
//! (`<state>/log/pgctrl_<group>.log`), tracing, and for alerts an admin
//! notification (`mail.notify` through the supervisor's control socket,
//! which forwards it to the mail service).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::clock::Utc;

/// A log file past this size is moved to `.1` (one old file kept).
const MAX_LOG: u64 = 1024 * 1024;

#[derive(Clone)]
pub struct Journal {
    state_dir: PathBuf,
}

impl Journal {
    pub fn new(state_dir: &Path) -> Journal {
        Journal {
            state_dir: state_dir.to_path_buf(),
        }
    }

    pub fn log_path(&self, group: &str) -> PathBuf {
        self.state_dir
            .join("log")
            .join(format!("pgctrl_{group}.log"))
    }

    /// One line in the group's log and in tracing.
    pub fn note(&self, group: &str, text: &str) {
        tracing::info!(group, "{text}");
        let path = self.log_path(group);
        let line = format!("{} {}\n", Utc::now().stamp(), text.replace('\n', " | "));
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_LOG) {
                std::fs::rename(&path, path.with_extension("log.1"))?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?
                .write_all(line.as_bytes())
        };
        if let Err(e) = write() {
            tracing::error!(group, path = %path.display(), error = %e, "cannot write the pgctrl log");
        }
    }

    /// A line in the log and a notification to the admins.
    pub fn alert(&self, group: &str, subject: &str, body: &str) {
        self.note(group, &format!("alert: {subject}: {body}"));
        let socket = self.state_dir.join("run").join("control.sock");
        let params = json!({"subject": format!("pgha {group}: {subject}"), "body": body});
        let group = group.to_string();
        tokio::task::spawn_blocking(move || {
            let sent = alpharen_rpc::Client::connect(&socket)
                .and_then(|mut c| c.call("mail.notify", params));
            if let Err(e) = sent {
                tracing::warn!(group, error = %e, "notification not handed to the mail service");
            }
        });
    }
}
