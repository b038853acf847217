//! Installed packages shared by the members of a cluster: the records of
//! the cluster's package log (`alpharen_cluster::packages`), each the
//! whole set after a change with every wheel named by its SHA-256, and
//! the decisions a member takes from them (what to install, keep and
//! remove). A node outside a cluster never uses this: its packages go
//! straight to its registry (`packages.rs`).

use std::collections::BTreeMap;

use alpharen_store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Appended to `registry::SCHEMA`: how far this member has applied the
/// cluster's package log (one row; the stream's identity and last
/// sequence).
pub const SCHEMA_STEP: &str = r#"
    CREATE TABLE integrator_package_log (
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL
    );
"#;

/// One package of a set: its identity (name, version, SHA-256 of the
/// wheel) and what the listings show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
    pub size: i64,
    #[serde(default)]
    pub tags: Value,
    #[serde(default)]
    pub top_level: Vec<String>,
    pub added_at: i64,
    pub added_by: String,
}

/// One record of the log: the cluster's package set after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The set version it makes, the same on every member.
    pub set_version: i64,
    /// In name order.
    pub packages: Vec<Entry>,
    /// What changed (`add NAME VERSION`, `remove NAME`, `rollback to N`).
    pub change: String,
    pub actor: String,
    /// The member it was made on (`node.hostname`).
    pub node: String,
    /// Unix seconds.
    pub at: i64,
}

/// What a member has installed of a package.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// What a member does to have the cluster's set.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Wheels to fetch and unpack (new, or another version or build).
    pub install: Vec<Entry>,
    /// Installed packages the set no longer has.
    pub remove: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.install.is_empty() && self.remove.is_empty()
    }
}

/// The changes that turn `installed` into `wanted`: a package is kept
/// only when its name, version and wheel's SHA-256 are the set's.
pub fn plan(wanted: &[Entry], installed: &[Installed]) -> Plan {
    let install = wanted
        .iter()
        .filter(|w| {
            !installed
                .iter()
                .any(|i| i.name == w.name && i.version == w.version && i.sha256 == w.sha256)
        })
        .cloned()
        .collect();
    let remove = installed
        .iter()
        .filter(|i| !wanted.iter().any(|w| w.name == i.name))
        .map(|i| i.name.clone())
        .collect();
    Plan { install, remove }
}

/// The set after adding `entry` to `base` (replacing a package of the
/// same name), in name order.
pub fn with_added(base: &[Entry], entry: Entry) -> Vec<Entry> {
    let mut set: BTreeMap<String, Entry> =
        base.iter().map(|e| (e.name.clone(), e.clone())).collect();
    set.insert(entry.name.clone(), entry);
    set.into_values().collect()
}

/// The set after removing `name` from `base`; `None` when it has no such
/// package.
pub fn without(base: &[Entry], name: &str) -> Option<Vec<Entry>> {
    base.iter()
        .any(|e| e.name == name)
        .then(|| base.iter().filter(|e| e.name != name).cloned().collect())
}

/// The set version of a new record: one past both the cluster's last and
/// any set version this member recorded before it was in the cluster.
pub fn next_set_version(prev: Option<&Record>, local_max: i64) -> i64 {
    prev.map_or(0, |r| r.set_version).max(local_max) + 1
}

/// Lowercase hex SHA-256 of a wheel.
pub fn sha256_hex(wheel: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, wheel)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How far this member has applied the package log.
pub fn applied(conn: &mut Connection) -> Result<Option<(String, u64)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT stream, seq FROM integrator_package_log LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
        )
        .optional()?)
}

/// Moves the mark past `seq` of `stream` (inside the caller's transaction).
pub fn mark(tx: &Connection, stream: &str, seq: u64) -> Result<(), rusqlite::Error> {
    tx.execute("DELETE FROM integrator_package_log", [])?;
    tx.execute(
        "INSERT INTO integrator_package_log (stream, seq) VALUES (?1, ?2)",
        params![stream, seq as i64],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: &str, sha: &str) -> Entry {
        Entry {
            name: name.into(),
            version: version.into(),
            file: format!("{name}-{version}-py3-none-any.whl"),
            sha256: sha.into(),
            size: 1,
            tags: Value::Null,
            top_level: vec![name.into()],
            added_at: 1,
            added_by: "t".into(),
        }
    }

    fn installed(name: &str, version: &str, sha: &str) -> Installed {
        Installed {
            name: name.into(),
            version: version.into(),
            sha256: sha.into(),
        }
    }

    #[test]
    fn a_member_installs_what_differs_and_removes_what_the_set_dropped() {
        let wanted = [
            entry("a", "1", "x"),
            entry("b", "2", "y"),
            entry("c", "1", "z"),
        ];
        let have = [
            installed("a", "1", "x"),   // the same: kept
            installed("b", "1", "y0"),  // another version: replaced
            installed("old", "1", "o"), // not in the set: removed
        ];
        let p = plan(&wanted, &have);
        let names: Vec<&str> = p.install.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(p.remove, ["old"]);
    }

    #[test]
    fn the_same_version_with_another_wheel_is_installed_again() {
        let p = plan(&[entry("a", "1", "new")], &[installed("a", "1", "old")]);
        assert_eq!(p.install.len(), 1);
        assert!(p.remove.is_empty(), "a replaced package is not removed");
        assert!(plan(&[entry("a", "1", "x")], &[installed("a", "1", "x")]).is_empty());
        // An empty set removes everything.
        assert_eq!(plan(&[], &[installed("a", "1", "x")]).remove, ["a"]);
    }

    #[test]
    fn adding_replaces_by_name_and_keeps_name_order() {
        let base = [entry("b", "1", "y"), entry("d", "1", "w")];
        let set = with_added(&base, entry("a", "1", "x"));
        let names: Vec<&str> = set.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "d"]);
        let set = with_added(&set, entry("b", "2", "y2"));
        assert_eq!((set.len(), set[1].version.as_str()), (3, "2"));
        assert_eq!(without(&set, "b").map(|s| s.len()), Some(2));
        assert_eq!(without(&set, "zz"), None);
    }

    #[test]
    fn set_versions_follow_the_clusters_and_this_members_own() {
        assert_eq!(next_set_version(None, 0), 1);
        assert_eq!(next_set_version(None, 4), 5);
        let r = Record {
            set_version: 7,
            packages: vec![],
            change: "remove a".into(),
            actor: "t".into(),
            node: "a".into(),
            at: 1,
        };
        assert_eq!(next_set_version(Some(&r), 3), 8);
        assert_eq!(next_set_version(Some(&r), 9), 10);
        let text = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<Record>(&text).unwrap(), r);
    }

    #[test]
    fn a_wheels_identity_is_its_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_mark_moves() {
        let dir = tempfile::tempdir().unwrap();
        let mut c =
            alpharen_store::open_service_db(dir.path(), "integrator", crate::registry::SCHEMA)
                .unwrap();
        assert_eq!(applied(&mut c).unwrap(), None);
        mark(&c, "s", 3).unwrap();
        mark(&c, "s", 4).unwrap();
        assert_eq!(applied(&mut c).unwrap(), Some(("s".to_string(), 4)));
    }
}
