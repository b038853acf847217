//! resolv.conf: rendered from config and leases, written atomically
//! (temporary file, fsync, rename) so readers never see half a file.

use std::io::Write;
use std::path::Path;

/// At most three servers are read by libc; more are listed but ignored.
pub fn render(servers: &[String], search: &[String]) -> String {
    let mut out = String::from("# written by alpharen net; edit the network.dns config instead\n");
    let mut seen: Vec<&String> = Vec::new();
    for s in servers {
        if !seen.contains(&s) {
            out.push_str(&format!("nameserver {s}\n"));
            seen.push(s);
        }
    }
    let mut doms: Vec<&String> = Vec::new();
    for d in search {
        if !doms.contains(&d) {
            doms.push(d);
        }
    }
    if !doms.is_empty() {
        let list: Vec<&str> = doms.iter().map(|s| s.as_str()).collect();
        out.push_str(&format!("search {}\n", list.join(" ")));
    }
    out
}

/// Replaces `path` with `text` unless it already says that.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("resolv.conf")
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_dedups_and_orders() {
        let t = render(
            &[
                "192.0.2.53".into(),
                "192.0.2.54".into(),
                "192.0.2.53".into(),
            ],
            &["a.example".into(), "a.example".into(), "b.example".into()],
        );
        assert!(t.contains(
            "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch a.example b.example\n"
        ));
    }

    #[test]
    fn write_is_atomic_and_skips_same_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/resolv.conf");
        assert!(write_atomic(&p, "x\n").unwrap());
        assert!(!write_atomic(&p, "x\n").unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x\n");
        assert!(!d.path().join("run/.resolv.conf.tmp").exists());
    }
}
