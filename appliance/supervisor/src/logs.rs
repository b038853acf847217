//! Captured output of every service: a ring buffer per service for quick
//! reads and `--follow`, and size-capped rotated files in `<state>/log/`.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

const RING: usize = 2000;
const MAX_LINE: usize = 8192;
const FILE_LIMIT: u64 = 1 << 20;
const KEEP_FILES: u32 = 3;

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub service: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub stream: &'static str,
    pub text: String,
}

struct LogFile {
    file: File,
    size: u64,
}

pub struct LogHub {
    dir: PathBuf,
    rings: Mutex<HashMap<String, VecDeque<LogLine>>>,
    files: Mutex<HashMap<String, LogFile>>,
    tx: broadcast::Sender<LogLine>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl LogHub {
    pub fn new(dir: PathBuf) -> LogHub {
        let (tx, _) = broadcast::channel(1024);
        LogHub {
            dir,
            rings: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            tx,
        }
    }

    pub fn push(&self, service: &str, stream: &'static str, text: &str) {
        let mut text = text.trim_end_matches(['\r', '\n']).to_string();
        if text.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(" [truncated]");
        }
        let line = LogLine {
            service: service.to_string(),
            at: now_ms(),
            stream,
            text,
        };
        self.write_file(&line);
        if let Ok(mut rings) = self.rings.lock() {
            let ring = rings.entry(service.to_string()).or_default();
            if ring.len() == RING {
                ring.pop_front();
            }
            ring.push_back(line.clone());
        }
        let _ = self.tx.send(line);
    }

    /// The supervisor's own events: into the log and onto the console.
    pub fn event(&self, text: &str) {
        eprintln!("alpharen: {text}");
        self.push("supervisor", "event", text);
    }

    fn write_file(&self, line: &LogLine) {
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        let path = self.dir.join(format!("{}.log", line.service));
        if !files.contains_key(&line.service) {
            let _ = std::fs::create_dir_all(&self.dir);
            let Ok(file) = OpenOptions::new().create(true).append(true).open(&path) else {
                return;
            };
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            files.insert(line.service.clone(), LogFile { file, size });
        }
        let Some(f) = files.get_mut(&line.service) else {
            return;
        };
        let text = format!("{} {} {}\n", line.at, line.stream, line.text);
        if f.file.write_all(text.as_bytes()).is_ok() {
            f.size += text.len() as u64;
        }
        if f.size >= FILE_LIMIT {
            for i in (1..KEEP_FILES).rev() {
                let _ = std::fs::rename(
                    self.dir.join(format!("{}.log.{i}", line.service)),
                    self.dir.join(format!("{}.log.{}", line.service, i + 1)),
                );
            }
            let _ = std::fs::rename(&path, self.dir.join(format!("{}.log.1", line.service)));
            files.remove(&line.service);
        }
    }

    /// The last `n` lines of one service, or of all merged by time.
    pub fn tail(&self, service: Option<&str>, n: usize) -> Vec<LogLine> {
        let Ok(rings) = self.rings.lock() else {
            return Vec::new();
        };
        let mut lines: Vec<LogLine> = match service {
            Some(s) => rings
                .get(s)
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default(),
            None => {
                let mut all: Vec<LogLine> = rings.values().flatten().cloned().collect();
                all.sort_by_key(|l| l.at);
                all
            }
        };
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
        lines
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_lines_and_files_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().to_path_buf());
        for i in 0..(RING + 5) {
            hub.push("svc", "out", &format!("line {i} {}", "x".repeat(600)));
        }
        let tail = hub.tail(Some("svc"), 3);
        assert_eq!(tail.len(), 3);
        assert!(tail[2].text.starts_with(&format!("line {}", RING + 4)));
        assert_eq!(hub.tail(Some("svc"), usize::MAX).len(), RING);
        assert!(
            dir.path().join("svc.log.1").exists(),
            "1.2 MB of lines rotate once"
        );
        assert!(std::fs::metadata(dir.path().join("svc.log")).unwrap().len() < FILE_LIMIT);
    }

    #[test]
    fn long_lines_are_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().to_path_buf());
        hub.push("svc", "err", &"é".repeat(MAX_LINE));
        let line = &hub.tail(Some("svc"), 1)[0];
        assert!(line.text.ends_with("[truncated]") && line.text.len() <= MAX_LINE + 12);
    }
}
