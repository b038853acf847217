//! Where the controller's actions go: the seed's dedicated log files
//! (`<state>/log/pgctrl_<group>.log`, `bkp_controller.log`), tracing, and
//! for alerts an admin notification (`mail.notify` through the
//! supervisor's control socket, which forwards it to the mail service).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::clock;

/// A log file past this size is moved to `.1` (one old file kept).
const MAX_LOG: u64 = 1024 * 1024;

/// One log file and the name its alerts go out under.
#[derive(Clone)]
pub struct Journal {
    state_dir: PathBuf,
    stem: String,
    label: String,
}

impl Journal {
    /// A pg_controller group's journal.
    pub fn group(state_dir: &Path, key: &str) -> Journal {
        Journal {
            state_dir: state_dir.to_path_buf(),
            stem: format!("pgctrl_{key}"),
            label: format!("pgha {key}"),
        }
    }

    /// The backup controller's journal.
    pub fn backup(state_dir: &Path) -> Journal {
        Journal {
            state_dir: state_dir.to_path_buf(),
            stem: "bkp_controller".into(),
            label: "pgha backup".into(),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.state_dir
            .join("log")
            .join(format!("{}.log", self.stem))
    }

    /// One line in the log (line breaks folded) and in tracing.
    pub fn note(&self, text: &str) {
        tracing::info!(log = %self.stem, "{text}");
        let path = self.log_path();
        let line = format!(
            "{} {}\n",
            clock::stamp(&clock::now()),
            text.replace('\n', " | ")
        );
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
            tracing::error!(path = %path.display(), error = %e, "cannot write the log");
        }
    }

    /// A line in the log and a notification to the admins.
    pub fn alert(&self, subject: &str, body: &str) {
        self.note(&format!("alert: {subject}: {body}"));
        let socket = alpharen_rpc::control_socket(&self.state_dir);
        let params = json!({"subject": format!("{}: {subject}", self.label), "body": body});
        let label = self.label.clone();
        tokio::spawn(async move {
            let timeout = std::time::Duration::from_secs(30);
            if let Err(e) = alpharen_rpc::call(&socket, "mail.notify", params, timeout).await {
                tracing::warn!(log = %label, error = %e.message, "notification not handed to the mail service");
            }
        });
    }
}
