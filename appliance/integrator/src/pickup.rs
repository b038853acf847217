//! Hot deploy from the seed's pickup directory,
//! `<state>/integrator/pickup/incoming/services/`: a `.py` file (or a
//! project `.zip`, deployed as one unit) dropped
//! there is deployed once its size and mtime hold still for one poll, then
//! moved to `processed/` (or `failed/`, with a `.error` file beside it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;

use crate::app::App;
use crate::project::Upload;

const POLL: Duration = Duration::from_millis(300);

pub fn incoming(state_dir: &Path) -> PathBuf {
    state_dir.join("integrator/pickup/incoming/services")
}

pub async fn watch(app: Arc<App>) {
    let dir = incoming(&app.state_dir);
    let base = app.state_dir.join("integrator/pickup");
    for d in [dir.clone(), base.join("processed"), base.join("failed")] {
        if let Err(e) = std::fs::create_dir_all(&d) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot create the pickup directory");
        }
    }
    let mut seen: HashMap<PathBuf, (u64, SystemTime)> = HashMap::new();
    loop {
        tokio::time::sleep(POLL).await;
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut now_seen = HashMap::new();
        for e in entries.flatten() {
            let path = e.path();
            if !matches!(
                path.extension().and_then(|x| x.to_str()),
                Some("py" | "zip")
            ) {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            let sig = (
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            );
            if seen.get(&path) == Some(&sig) {
                deploy_file(&app, &base, &path).await;
            } else {
                now_seen.insert(path, sig);
            }
        }
        seen = now_seen;
    }
}

async fn deploy_file(app: &App, base: &Path, path: &Path) {
    let Some(file) = path
        .file_name()
        .and_then(|f| f.to_str())
        .map(str::to_string)
    else {
        return;
    };
    let upload = match std::fs::read(path) {
        Ok(b) if file.ends_with(".zip") => {
            Upload::Zip(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Ok(b) => match String::from_utf8(b) {
            Ok(s) => Upload::Source(s),
            Err(_) => {
                finish(base, path, &file, Some("the file is not UTF-8 text".into()));
                return;
            }
        },
        Err(e) => {
            tracing::warn!(file, error = %e, "cannot read the pickup file");
            return;
        }
    };
    match app.deploy(&file, upload, "pickup").await {
        Ok(v) => {
            tracing::info!(file, version = %v["version"], "picked up and deployed");
            finish(base, path, &file, None);
        }
        Err(e) => {
            let tb = e
                .details
                .get("traceback")
                .and_then(|t| t.as_str())
                .unwrap_or("");
            tracing::warn!(file, error = %e.message, "pickup deploy failed; the previous version keeps serving");
            finish(base, path, &file, Some(format!("{}\n{tb}", e.message)));
        }
    }
}

fn finish(base: &Path, path: &Path, file: &str, error: Option<String>) {
    let dest = base.join(if error.is_some() {
        "failed"
    } else {
        "processed"
    });
    if let Err(e) = std::fs::rename(path, dest.join(file)) {
        tracing::warn!(file, error = %e, "cannot move the pickup file; removing it");
        let _ = std::fs::remove_file(path);
    }
    if let Some(msg) = error {
        let _ = std::fs::write(dest.join(format!("{file}.error")), msg);
    } else {
        let _ = std::fs::remove_file(base.join("failed").join(format!("{file}.error")));
    }
}
