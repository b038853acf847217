//! `self.kvdb.conn`'s Redis data types on the KV store: hashes, lists and
//! sets, and key expiry. Each command is one request done here in one
//! step (a SQLite transaction, or a compare-and-set in a cluster), so
//! workers never read-modify-write. A hash, list or set is one KV row of
//! kind `hash`, `list` or `set` holding JSON; strings are the KV's own
//! `json`/`bytes` values. [`apply`] is the pure part: what a command
//! answers and how it changes the key.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use super::kv::KvValue;
use super::{Data, DataError};

/// What a key holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Str(KvValue),
    Hash(BTreeMap<String, String>),
    List(Vec<String>),
    Set(BTreeSet<String>),
}

impl Entry {
    fn decode(kind: &str, raw: &[u8]) -> Entry {
        fn parsed<T: serde::de::DeserializeOwned + Default>(raw: &[u8]) -> T {
            serde_json::from_slice(raw).unwrap_or_default()
        }
        match kind {
            "hash" => Entry::Hash(parsed(raw)),
            "list" => Entry::List(parsed(raw)),
            "set" => Entry::Set(parsed(raw)),
            _ => Entry::Str(KvValue::decode(kind, raw.to_vec())),
        }
    }

    fn encode(&self) -> (&'static str, Vec<u8>) {
        let raw = |v: Result<Vec<u8>, _>| v.unwrap_or_default();
        match self {
            Entry::Str(v) => v.encode(),
            Entry::Hash(h) => ("hash", raw(serde_json::to_vec(h))),
            Entry::List(l) => ("list", raw(serde_json::to_vec(l))),
            Entry::Set(s) => ("set", raw(serde_json::to_vec(s))),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Entry::Str(_) => "string",
            Entry::Hash(_) => "hash",
            Entry::List(_) => "list",
            Entry::Set(_) => "set",
        }
    }

    /// Empty containers do not exist in Redis: the key goes.
    fn is_empty(&self) -> bool {
        match self {
            Entry::Str(_) => false,
            Entry::Hash(h) => h.is_empty(),
            Entry::List(l) => l.is_empty(),
            Entry::Set(s) => s.is_empty(),
        }
    }
}

/// A key as stored: what it holds and when it expires (Unix ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub entry: Entry,
    pub expires_at: Option<i64>,
}

/// How a command changes its key.
#[derive(Debug, PartialEq)]
pub enum Change {
    Keep,
    Put(Stored),
    Delete,
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn wrong_type() -> DataError {
    DataError::Command {
        code: "wrong_type",
        message: WRONGTYPE.into(),
    }
}

fn bad(message: impl Into<String>) -> DataError {
    DataError::Command {
        code: "invalid_params",
        message: message.into(),
    }
}

fn text(args: &[Value], i: usize, cmd: &str) -> Result<String, DataError> {
    args.get(i)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad(format!("{cmd}: argument {} must be a string", i + 1)))
}

fn int(args: &[Value], i: usize, cmd: &str) -> Result<i64, DataError> {
    args.get(i)
        .and_then(Value::as_i64)
        .ok_or_else(|| bad(format!("{cmd}: argument {} must be an integer", i + 1)))
}

/// Every argument from `from` on, as strings (at least one).
fn texts(args: &[Value], from: usize, cmd: &str) -> Result<Vec<String>, DataError> {
    if args.len() <= from {
        return Err(bad(format!(
            "wrong number of arguments for '{cmd}' command"
        )));
    }
    (from..args.len()).map(|i| text(args, i, cmd)).collect()
}

/// Redis's inclusive `start..=end` with negative indexes from the end,
/// as a half-open range of a list of `len`; `None` when empty.
fn range(start: i64, end: i64, len: usize) -> Option<std::ops::Range<usize>> {
    let len = len as i64;
    let s = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let e = if end < 0 { len + end } else { end.min(len - 1) };
    (s <= e && s < len).then(|| s as usize..(e + 1) as usize)
}

/// Seconds to expiry as Redis's TTL rounds them.
fn ttl(expires_at: Option<i64>, now: i64, ms: bool) -> i64 {
    match expires_at {
        None => -1,
        Some(t) if ms => t - now,
        Some(t) => (t - now + 500) / 1000,
    }
}

/// Runs `cmd` on the key's live value `cur`: the answer and the change.
pub fn apply(
    cmd: &str,
    args: &[Value],
    cur: Option<Stored>,
    now: i64,
) -> Result<(Value, Change), DataError> {
    let expires_at = cur.as_ref().and_then(|s| s.expires_at);
    // Commands on any type, or on no key.
    match cmd {
        "type" => {
            let t = cur.as_ref().map_or("none", |s| s.entry.type_name());
            return Ok((json!(t), Change::Keep));
        }
        "ttl" | "pttl" => {
            let t = cur
                .as_ref()
                .map_or(-2, |_| ttl(expires_at, now, cmd == "pttl"));
            return Ok((json!(t), Change::Keep));
        }
        "expire" | "pexpire" => {
            let Some(s) = cur else {
                return Ok((json!(false), Change::Keep));
            };
            let n = int(args, 0, cmd)?;
            let ms = if cmd == "expire" {
                n.saturating_mul(1000)
            } else {
                n
            };
            if ms <= 0 {
                return Ok((json!(true), Change::Delete));
            }
            let s = Stored {
                expires_at: Some(now.saturating_add(ms)),
                ..s
            };
            return Ok((json!(true), Change::Put(s)));
        }
        "persist" => {
            return Ok(match cur {
                Some(s) if s.expires_at.is_some() => (
                    json!(true),
                    Change::Put(Stored {
                        expires_at: None,
                        ..s
                    }),
                ),
                _ => (json!(false), Change::Keep),
            });
        }
        "get" => {
            return match cur.map(|s| s.entry) {
                None => Ok((Value::Null, Change::Keep)),
                Some(Entry::Str(v)) => Ok((v.to_wire(), Change::Keep)),
                Some(_) => Err(wrong_type()),
            };
        }
        _ => {}
    }
    let entry = cur.map(|s| s.entry);
    let (answer, next) = match cmd {
        c if c.starts_with('h') => hash(c, args, entry)?,
        c if c.starts_with('l') || c.starts_with('r') => list(c, args, entry)?,
        c if c.starts_with('s') => set(c, args, entry)?,
        _ => return Err(unknown(cmd)),
    };
    let change = match next {
        None => Change::Keep,
        Some(e) if e.is_empty() => Change::Delete,
        Some(entry) => Change::Put(Stored { entry, expires_at }),
    };
    Ok((answer, change))
}

/// The answer and the new value (None: unchanged).
type Step = (Value, Option<Entry>);

fn hash(cmd: &str, args: &[Value], entry: Option<Entry>) -> Result<Step, DataError> {
    let mut h = match entry {
        None => BTreeMap::new(),
        Some(Entry::Hash(h)) => h,
        Some(_) => return Err(wrong_type()),
    };
    Ok(match cmd {
        "hset" | "hsetnx" => {
            let kv = texts(args, 0, cmd)?;
            if kv.len() % 2 != 0 || (cmd == "hsetnx" && kv.len() != 2) {
                return Err(bad(format!(
                    "wrong number of arguments for '{cmd}' command"
                )));
            }
            let mut added = 0;
            for pair in kv.chunks(2) {
                if cmd == "hsetnx" && h.contains_key(&pair[0]) {
                    return Ok((json!(false), None));
                }
                added += i64::from(h.insert(pair[0].clone(), pair[1].clone()).is_none());
            }
            let answer = if cmd == "hsetnx" {
                json!(true)
            } else {
                json!(added)
            };
            (answer, Some(Entry::Hash(h)))
        }
        "hget" => (json!(h.get(&text(args, 0, cmd)?)), None),
        "hmget" => {
            let fields = texts(args, 0, cmd)?;
            (
                json!(fields.iter().map(|f| h.get(f)).collect::<Vec<_>>()),
                None,
            )
        }
        "hgetall" => (json!(h), None),
        "hkeys" => (json!(h.keys().collect::<Vec<_>>()), None),
        "hvals" => (json!(h.values().collect::<Vec<_>>()), None),
        "hlen" => (json!(h.len()), None),
        "hexists" => (json!(h.contains_key(&text(args, 0, cmd)?)), None),
        "hdel" => {
            let n = texts(args, 0, cmd)?
                .iter()
                .filter(|f| h.remove(*f).is_some())
                .count();
            (json!(n), (n > 0).then_some(Entry::Hash(h)))
        }
        "hincrby" => {
            let field = text(args, 0, cmd)?;
            let by = int(args, 1, cmd)?;
            let old = match h.get(&field) {
                None => 0,
                Some(v) => v
                    .parse::<i64>()
                    .map_err(|_| bad("ERR hash value is not an integer"))?,
            };
            let new = old
                .checked_add(by)
                .ok_or_else(|| bad("ERR increment or decrement would overflow"))?;
            h.insert(field, new.to_string());
            (json!(new), Some(Entry::Hash(h)))
        }
        _ => return Err(unknown(cmd)),
    })
}

fn unknown(cmd: &str) -> DataError {
    DataError::Command {
        code: "method_not_found",
        message: format!("unknown kvdb command {cmd:?}"),
    }
}

fn list(cmd: &str, args: &[Value], entry: Option<Entry>) -> Result<Step, DataError> {
    let existed = entry.is_some();
    let mut l = match entry {
        None => Vec::new(),
        Some(Entry::List(l)) => l,
        Some(_) => return Err(wrong_type()),
    };
    Ok(match cmd {
        "lpush" | "rpush" => {
            let values = texts(args, 0, cmd)?;
            if cmd == "lpush" {
                for v in values {
                    l.insert(0, v);
                }
            } else {
                l.extend(values);
            }
            (json!(l.len()), Some(Entry::List(l)))
        }
        "lpop" | "rpop" => {
            let count = match args.first() {
                None | Some(Value::Null) => None,
                Some(_) => Some(
                    usize::try_from(int(args, 0, cmd)?)
                        .map_err(|_| bad(format!("{cmd}: the count must not be negative")))?,
                ),
            };
            if !existed {
                return Ok((Value::Null, None));
            }
            let n = count.unwrap_or(1).min(l.len());
            let popped: Vec<String> = if cmd == "lpop" {
                l.drain(..n).collect()
            } else {
                l.drain(l.len() - n..).rev().collect()
            };
            let answer = match count {
                None => json!(popped.first()),
                Some(_) => json!(popped),
            };
            (answer, Some(Entry::List(l)))
        }
        "lrange" => {
            let r = range(int(args, 0, cmd)?, int(args, 1, cmd)?, l.len());
            (json!(r.map_or(&[][..], |r| &l[r])), None)
        }
        "lindex" => {
            let i = int(args, 0, cmd)?;
            let at = if i < 0 { l.len() as i64 + i } else { i };
            (json!(usize::try_from(at).ok().and_then(|i| l.get(i))), None)
        }
        "llen" => (json!(l.len()), None),
        "ltrim" => {
            if !existed {
                return Ok((json!(true), None));
            }
            let r = range(int(args, 0, cmd)?, int(args, 1, cmd)?, l.len());
            let kept = r.map_or_else(Vec::new, |r| l[r].to_vec());
            (json!(true), Some(Entry::List(kept)))
        }
        "lrem" => {
            let count = int(args, 0, cmd)?;
            let value = text(args, 1, cmd)?;
            let limit = if count == 0 {
                usize::MAX
            } else {
                count.unsigned_abs() as usize
            };
            let mut removed = 0;
            let mut keep = |v: &String| {
                let hit = *v == value && removed < limit;
                removed += usize::from(hit);
                !hit
            };
            if count < 0 {
                let mut rev: Vec<String> = l.into_iter().rev().filter(|v| keep(v)).collect();
                rev.reverse();
                l = rev;
            } else {
                l.retain(|v| keep(v));
            }
            (json!(removed), (removed > 0).then_some(Entry::List(l)))
        }
        _ => return Err(unknown(cmd)),
    })
}

fn set(cmd: &str, args: &[Value], entry: Option<Entry>) -> Result<Step, DataError> {
    let mut s = match entry {
        None => BTreeSet::new(),
        Some(Entry::Set(s)) => s,
        Some(_) => return Err(wrong_type()),
    };
    Ok(match cmd {
        "sadd" => {
            let n = texts(args, 0, cmd)?
                .into_iter()
                .filter(|v| s.insert(v.clone()))
                .count();
            (json!(n), (n > 0).then_some(Entry::Set(s)))
        }
        "srem" => {
            let n = texts(args, 0, cmd)?.iter().filter(|v| s.remove(*v)).count();
            (json!(n), (n > 0).then_some(Entry::Set(s)))
        }
        "smembers" => (json!(s), None),
        "sismember" => (json!(s.contains(&text(args, 0, cmd)?)), None),
        "scard" => (json!(s.len()), None),
        _ => return Err(unknown(cmd)),
    })
}

/// Bounded retries of a command in a cluster that lost its compare-and-set
/// to another member's write of the same key.
const CLUSTER_ATTEMPTS: usize = 32;

impl Data {
    /// Runs one Redis-style command on `ns`/`key` atomically.
    pub fn kv_command(
        &self,
        ns: &str,
        key: &str,
        cmd: &str,
        args: &[Value],
        now: i64,
    ) -> Result<Value, DataError> {
        if let Some(c) = self.cluster.kv()? {
            for _ in 0..CLUSTER_ATTEMPTS {
                let cur = c.get(ns, key, now)?;
                let expected = cur.as_ref().map(|r| (r.kind.clone(), r.value.clone()));
                let stored = cur.map(|r| Stored {
                    entry: Entry::decode(&r.kind, &r.value),
                    expires_at: r.expires_at,
                });
                let (answer, change) = apply(cmd, args, stored, now)?;
                let new = match change {
                    Change::Keep => return Ok(answer),
                    Change::Put(s) => {
                        let (kind, value) = s.entry.encode();
                        Some(alpharen_cluster::kv::Record {
                            kind: kind.into(),
                            value,
                            expires_at: s.expires_at,
                        })
                    }
                    Change::Delete => None,
                };
                let exp = expected.as_ref().map(|(k, v)| (k.as_str(), v.as_slice()));
                if c.cas(ns, key, exp, new.as_ref(), now)? {
                    return Ok(answer);
                }
            }
            return Err(DataError::Cluster(format!(
                "kvdb {cmd} on {key:?}: other members kept changing the key; try again"
            )));
        }
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let row: Option<(String, Vec<u8>, Option<i64>)> = tx
                .query_row(
                    "SELECT kind, value, expires_at FROM integrator_kv WHERE ns = ?1 AND key = ?2
                     AND (expires_at IS NULL OR expires_at > ?3)",
                    params![ns, key, now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let cur = row.map(|(kind, raw, expires_at)| Stored {
                entry: Entry::decode(&kind, &raw),
                expires_at,
            });
            let (answer, change) = apply(cmd, args, cur, now)?;
            match change {
                Change::Keep => return Ok(answer),
                Change::Put(s) => {
                    let (kind, raw) = s.entry.encode();
                    tx.execute(
                        "INSERT OR REPLACE INTO integrator_kv (ns, key, kind, value, expires_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![ns, key, kind, raw, s.expires_at, now],
                    )?;
                }
                Change::Delete => {
                    tx.execute(
                        "DELETE FROM integrator_kv WHERE ns = ?1 AND key = ?2",
                        params![ns, key],
                    )?;
                }
            }
            tx.commit()?;
            Ok(answer)
        })
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
