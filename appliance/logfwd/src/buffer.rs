//! The on-disk queue of framed messages per stream collector (TCP, TLS),
//! in `<state>/logfwd.db`. Every line goes through it, connected or not,
//! so a collector that is down, a reload or a restart of this service
//! loses nothing that was queued; a line leaves the queue only after it
//! was written to the collector's connection. Each collector's queue is
//! capped at `[syslog] buffer_mb`: past that the oldest lines go, counted.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::Error;

const SCHEMA: &[&str] = &["CREATE TABLE pending (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        collector TEXT NOT NULL,
        frame BLOB NOT NULL
    );
    CREATE INDEX pending_by_collector ON pending (collector, id);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"];

/// How many of the oldest entries (sizes in queue order) must go so that
/// `total` bytes fit in `limit`.
pub fn oldest_to_drop(sizes: &[u64], total: u64, limit: u64) -> usize {
    let mut over = total.saturating_sub(limit);
    let mut n = 0;
    for size in sizes {
        if over == 0 {
            break;
        }
        over = over.saturating_sub(*size);
        n += 1;
    }
    n
}

/// What one collector's queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    pub lines: u64,
    pub bytes: u64,
}

pub struct Buffer {
    conn: Connection,
    limit: u64,
    held: HashMap<String, Held>,
}

fn db(e: rusqlite::Error) -> Error {
    Error::Buffer(e.to_string())
}

impl Buffer {
    /// Opens the queue with `limit` bytes per collector.
    pub fn open(state_dir: &Path, limit: u64) -> Result<Buffer, Error> {
        let conn = alpharen_store::open_service_db(state_dir, "logfwd", SCHEMA)
            .map_err(|e| Error::Buffer(e.to_string()))?;
        // A commit per line must not cost an fsync: NORMAL keeps a commit
        // safe from a crash of this process, and puts it on the disk at
        // the next WAL checkpoint (docs/syslog.md says what that means).
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(db)?;
        let mut buffer = Buffer {
            conn,
            limit,
            held: HashMap::new(),
        };
        buffer.count()?;
        Ok(buffer)
    }

    /// snmpEngineBoots for this start: one more than the last (1 the
    /// first time), kept so that it never goes back.
    pub fn next_engine_boots(&self) -> Result<u32, Error> {
        let boots: i64 = self
            .conn
            .query_row(
                "INSERT INTO meta (key, value) VALUES ('snmp_engine_boots', 1)
                 ON CONFLICT (key) DO UPDATE SET value = MIN(value + 1, 2147483647)
                 RETURNING value",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok(u32::try_from(boots).unwrap_or(1))
    }

    fn count(&mut self) -> Result<(), Error> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT collector, COUNT(*), COALESCE(SUM(length(frame)), 0) FROM pending GROUP BY collector",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Held {
                        lines: r.get::<_, i64>(1)? as u64,
                        bytes: r.get::<_, i64>(2)? as u64,
                    },
                ))
            })
            .map_err(db)?;
        self.held = rows.collect::<Result<_, _>>().map_err(db)?;
        Ok(())
    }

    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    pub fn held(&self, collector: &str) -> Held {
        self.held.get(collector).copied().unwrap_or_default()
    }

    /// The time (ms) of the newest line taken in, so a restarted service
    /// skips the backlog lines it already queued.
    pub fn last_at(&self) -> Result<i64, Error> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'last_at'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)
            .map(|v| v.unwrap_or(0))
    }

    /// Queues each `(collector, frame)` and records `at` as the newest
    /// line taken in, in one transaction; then trims queues over the
    /// limit. Returns how many lines each trimmed collector lost.
    pub fn push(
        &mut self,
        frames: &[(&str, Vec<u8>)],
        at: i64,
    ) -> Result<Vec<(String, u64)>, Error> {
        let tx = self.conn.transaction().map_err(db)?;
        for (collector, frame) in frames {
            tx.execute(
                "INSERT INTO pending (collector, frame) VALUES (?1, ?2)",
                params![collector, frame],
            )
            .map_err(db)?;
        }
        if at > 0 {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('last_at', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                [at],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        let mut over = Vec::new();
        for (collector, frame) in frames {
            let h = self.held.entry(collector.to_string()).or_default();
            h.lines += 1;
            h.bytes += frame.len() as u64;
            if h.bytes > self.limit && !over.iter().any(|c| c == collector) {
                over.push(collector.to_string());
            }
        }
        let mut dropped = Vec::new();
        for collector in over {
            let n = self.trim(&collector)?;
            if n > 0 {
                dropped.push((collector, n));
            }
        }
        Ok(dropped)
    }

    /// Drops the oldest lines of `collector` until it fits the limit.
    fn trim(&mut self, collector: &str) -> Result<u64, Error> {
        let mut dropped = 0;
        while self.held(collector).bytes > self.limit {
            let oldest: Vec<(i64, u64)> = {
                let mut stmt = self
                    .conn
                    .prepare(
                        "SELECT id, length(frame) FROM pending WHERE collector = ?1 ORDER BY id LIMIT 512",
                    )
                    .map_err(db)?;
                let rows = stmt
                    .query_map([collector], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
                    .map_err(db)?;
                rows.collect::<Result<_, _>>().map_err(db)?
            };
            let sizes: Vec<u64> = oldest.iter().map(|o| o.1).collect();
            let n = oldest_to_drop(&sizes, self.held(collector).bytes, self.limit);
            let Some(last) = n.checked_sub(1).and_then(|i| oldest.get(i)) else {
                break;
            };
            self.remove_through(collector, last.0)?;
            dropped += n as u64;
        }
        Ok(dropped)
    }

    /// Up to `max_bytes` (at least one) of the oldest queued frames of
    /// `collector`, with their ids, in order.
    pub fn peek(&self, collector: &str, max_bytes: usize) -> Result<Vec<(i64, Vec<u8>)>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, frame FROM pending WHERE collector = ?1 ORDER BY id LIMIT 256")
            .map_err(db)?;
        let rows = stmt
            .query_map([collector], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db)?;
        let mut out = Vec::new();
        let mut size = 0;
        for row in rows {
            let (id, frame): (i64, Vec<u8>) = row.map_err(db)?;
            if !out.is_empty() && size + frame.len() > max_bytes {
                break;
            }
            size += frame.len();
            out.push((id, frame));
        }
        Ok(out)
    }

    /// Removes `collector`'s frames up to and including `id`: delivered,
    /// or dropped.
    pub fn remove_through(&mut self, collector: &str, id: i64) -> Result<(), Error> {
        let tx = self.conn.transaction().map_err(db)?;
        let (lines, bytes): (i64, i64) = tx
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(frame)), 0) FROM pending WHERE collector = ?1 AND id <= ?2",
                params![collector, id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db)?;
        tx.execute(
            "DELETE FROM pending WHERE collector = ?1 AND id <= ?2",
            params![collector, id],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        let h = self.held.entry(collector.to_string()).or_default();
        h.lines = h.lines.saturating_sub(lines as u64);
        h.bytes = h.bytes.saturating_sub(bytes as u64);
        Ok(())
    }

    /// Forgets the queues of collectors no longer configured.
    pub fn retain(&mut self, collectors: &[String]) -> Result<(), Error> {
        let gone: Vec<String> = self
            .held
            .keys()
            .filter(|k| !collectors.contains(k))
            .cloned()
            .collect();
        for c in gone {
            self.conn
                .execute("DELETE FROM pending WHERE collector = ?1", [&c])
                .map_err(db)?;
            self.held.remove(&c);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_until_the_rest_fits() {
        assert_eq!(oldest_to_drop(&[10, 10, 10], 30, 30), 0);
        assert_eq!(oldest_to_drop(&[10, 10, 10], 31, 30), 1);
        assert_eq!(oldest_to_drop(&[5, 5, 30], 40, 30), 2);
        assert_eq!(
            oldest_to_drop(&[5, 5], 100, 30),
            2,
            "only what it was shown"
        );
    }

    #[test]
    fn a_full_queue_drops_its_oldest_lines_and_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Buffer::open(dir.path(), 100).unwrap();
        let mut dropped = 0;
        for i in 0..30 {
            let frame = format!("{i:09}").into_bytes();
            for (_, n) in b
                .push(&[("tcp:a", frame), ("tcp:b", b"x".to_vec())], 1000 + i)
                .unwrap()
            {
                dropped += n;
            }
        }
        assert_eq!(dropped, 19, "eleven 9-byte lines fit in 100 bytes");
        assert_eq!(
            b.held("tcp:a"),
            Held {
                lines: 11,
                bytes: 99
            }
        );
        assert_eq!(
            b.held("tcp:b").lines,
            30,
            "another collector's queue is its own"
        );
        let first = b.peek("tcp:a", 25).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].1, b"000000019");
        b.remove_through("tcp:a", first[1].0).unwrap();
        assert_eq!(b.peek("tcp:a", 1).unwrap()[0].1, b"000000021");
        assert_eq!(b.last_at().unwrap(), 1029);
    }

    #[test]
    fn the_queue_survives_a_reopen_and_unconfigured_collectors_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut b = Buffer::open(dir.path(), 1 << 20).unwrap();
            b.push(&[("tcp:a", b"one".to_vec()), ("tls:c", b"two".to_vec())], 5)
                .unwrap();
            assert_eq!(b.next_engine_boots().unwrap(), 1);
        }
        let mut b = Buffer::open(dir.path(), 1 << 20).unwrap();
        // snmpEngineBoots counts the starts.
        assert_eq!(b.next_engine_boots().unwrap(), 2);
        assert_eq!(b.held("tcp:a"), Held { lines: 1, bytes: 3 });
        b.retain(&["tcp:a".to_string()]).unwrap();
        assert_eq!(b.held("tls:c"), Held::default());
        assert!(b.peek("tls:c", 100).unwrap().is_empty());
        assert_eq!(b.last_at().unwrap(), 5);
    }
}
