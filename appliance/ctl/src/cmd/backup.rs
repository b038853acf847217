//! backup create|restore. The file holds secrets and password hashes, so
//! it is written 0600 and atomically.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::client::NodeClient;
use alpharen_rpc::backup::{CREATE, RESTORE, Restore};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::CtlError;
use crate::output::{Output, text};

#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// Write a backup to FILE ("-" for stdout).
    Create { file: PathBuf },
    /// Restore a backup; it is checked completely before anything changes.
    Restore { file: PathBuf },
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl BackupCmd {
    pub fn run(self, client: &mut NodeClient, out: &Output) -> Result<(), CtlError> {
        match self {
            BackupCmd::Create { file } => {
                let v = client.call(CREATE, json!({}))?;
                let mut data =
                    serde_json::to_vec_pretty(&v).map_err(|e| CtlError::Io(e.to_string()))?;
                data.push(b'\n');
                if file.as_os_str() == "-" {
                    std::io::stdout()
                        .write_all(&data)
                        .map_err(|e| CtlError::Io(e.to_string()))?;
                } else {
                    write_atomically(&file, &data).map_err(|e| {
                        CtlError::Io(format!("cannot write {}: {e}", file.display()))
                    })?;
                    out.show(&json!({"file": file}), |_| {
                        println!(
                            "backup of revision {} written to {}",
                            text(&v["revision"]),
                            file.display()
                        )
                    });
                }
            }
            BackupCmd::Restore { file } => {
                let data = super::read_input(&file)?;
                let backup: Value = serde_json::from_str(&data).map_err(|e| {
                    CtlError::Usage(format!(
                        "{} is not a backup file (not JSON: {e})",
                        file.display()
                    ))
                })?;
                let v = client.call(
                    RESTORE,
                    Restore {
                        backup,
                        author: None,
                    },
                )?;
                out.show(&v, |v| match v["revision"].as_object() {
                    Some(r) => println!("restored as revision {}", text(&r["id"])),
                    None => println!("restored; configuration unchanged"),
                });
            }
        }
        Ok(())
    }
}
