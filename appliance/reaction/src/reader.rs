//! The reader's file follower. It keeps the file open, so lines written
//! to a file just before it is renamed away (rotation) are still read
//! from it before the new file at the path; a file that became shorter
//! than the offset was truncated and is read again from its start. Only
//! whole lines are taken. `poll` proposes the lines and the new position;
//! `commit` takes the position once the engine has the lines, so lines a
//! failed report carried are read and sent again.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

/// Where a file was read up to: kept across agent restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

/// Longest line taken whole; a longer one is cut.
const MAX_LINE: usize = 64 * 1024;

pub struct Follower {
    pub path: String,
    file: Option<File>,
    pub pos: Option<Position>,
    pending: Option<(Option<File>, Position)>,
}

/// Whole lines of `f` from `offset`; the offset after the last newline.
fn read_lines(f: &mut File, offset: u64, out: &mut Vec<String>) -> std::io::Result<u64> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok(offset);
    };
    for line in buf[..end].split(|b| *b == b'\n') {
        let line = &line[..line.len().min(MAX_LINE)];
        out.push(
            String::from_utf8_lossy(line)
                .trim_end_matches('\r')
                .to_string(),
        );
    }
    Ok(offset + end as u64 + 1)
}

fn ident(f: &File) -> std::io::Result<(u64, u64, u64)> {
    let m = f.metadata()?;
    Ok((m.dev(), m.ino(), m.len()))
}

impl Follower {
    /// A follower that resumes at `pos` if the file at `path` is still
    /// that file, else (a file first seen) starts at its end.
    pub fn new(path: String, pos: Option<Position>) -> Follower {
        Follower {
            path,
            file: None,
            pos,
            pending: None,
        }
    }

    /// New whole lines since the committed position.
    pub fn poll(&mut self) -> std::io::Result<Vec<String>> {
        let mut lines = Vec::new();
        self.pending = None;
        if self.file.is_none() {
            let Ok(f) = File::open(&self.path) else {
                return Ok(lines);
            };
            let (dev, ino, len) = ident(&f)?;
            let offset = match self.pos {
                Some(p) if p.dev == dev && p.ino == ino => p.offset,
                // Replaced while the agent was away: all of it is new.
                Some(_) => 0,
                None => len,
            };
            self.pos = Some(Position { dev, ino, offset });
            self.file = Some(f);
        }
        let (Some(f), Some(mut pos)) = (self.file.as_mut(), self.pos) else {
            return Ok(lines);
        };
        let (_, _, len) = ident(f)?;
        if len < pos.offset {
            pos.offset = 0;
        }
        pos.offset = read_lines(f, pos.offset, &mut lines)?;
        let mut next_file = None;
        if let Ok(m) = std::fs::metadata(&self.path)
            && (m.dev(), m.ino()) != (pos.dev, pos.ino)
            && let Ok(mut nf) = File::open(&self.path)
        {
            let (dev, ino, _) = ident(&nf)?;
            let offset = read_lines(&mut nf, 0, &mut lines)?;
            pos = Position { dev, ino, offset };
            next_file = Some(nf);
        }
        self.pending = Some((next_file, pos));
        Ok(lines)
    }

    /// Takes the position the last `poll` reached.
    pub fn commit(&mut self) {
        if let Some((file, pos)) = self.pending.take() {
            if let Some(f) = file {
                self.file = Some(f);
            }
            self.pos = Some(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &std::path::Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn follows_appends_rotation_and_truncation_without_loss_or_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        append(&p, "old\n");
        let mut f = Follower::new(p.display().to_string(), None);
        assert!(
            f.poll().unwrap().is_empty(),
            "a new file is read from its end"
        );
        f.commit();
        append(&p, "a\nb\npart");
        assert_eq!(f.poll().unwrap(), ["a", "b"]);
        // Not committed: the same lines again.
        assert_eq!(f.poll().unwrap(), ["a", "b"]);
        f.commit();
        append(&p, "ial\n");
        assert_eq!(f.poll().unwrap(), ["partial"]);
        f.commit();
        // Rotation: a last line in the old file, then the new file.
        append(&p, "last-old\n");
        std::fs::rename(&p, dir.path().join("app.log.1")).unwrap();
        append(&p, "first-new\n");
        assert_eq!(f.poll().unwrap(), ["last-old", "first-new"]);
        f.commit();
        assert!(f.poll().unwrap().is_empty());
        f.commit();
        // Truncation.
        std::fs::write(&p, "").unwrap();
        assert!(f.poll().unwrap().is_empty());
        f.commit();
        append(&p, "after\n");
        assert_eq!(f.poll().unwrap(), ["after"]);
        f.commit();
        // A restart resumes at the kept position.
        append(&p, "while-away\n");
        let mut again = Follower::new(p.display().to_string(), f.pos);
        assert_eq!(again.poll().unwrap(), ["while-away"]);
    }
}
