//! Deploys shared by the members of a cluster: the records of the
//! cluster's deploy log (`alpharen_cluster::deploys`), how a new record
//! gets its version number, where a member resumes reading, and applying
//! a record to the member's own registry. A node outside a cluster never
//! uses this: its deploys go straight to its registry.

use alpharen_store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::registry::{Files, ServiceInfo};

/// Appended to `registry::SCHEMA`: how far this member has applied the
/// cluster's log (one row; the stream's identity and last sequence).
pub const SCHEMA_STEP: &str = r#"
    CREATE TABLE integrator_deploy_log (
        stream TEXT NOT NULL,
        seq INTEGER NOT NULL
    );
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Deploy,
    Rollback,
    Undeploy,
}

/// One record of the log. A deploy or a rollback carries the whole
/// version it makes active, so a member applies it even if it never saw
/// that version deployed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub op: Op,
    pub module: String,
    /// The version made active (0 for an undeploy).
    pub version: i64,
    /// The highest version number given to the module so far.
    pub latest: i64,
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub files: Option<Files>,
    #[serde(default)]
    pub services: Vec<ServiceInfo>,
    pub actor: String,
    /// The member it was made on (`node.hostname`).
    pub node: String,
    /// Unix seconds.
    pub at: i64,
}

impl Record {
    /// A record of `op` on `module` with no content yet; [`stamp`] gives
    /// it its numbers.
    pub fn new(op: Op, module: &str, actor: &str, node: String) -> Record {
        Record {
            op,
            module: module.to_string(),
            version: 0,
            latest: 0,
            file: String::new(),
            source: String::new(),
            files: None,
            services: Vec::new(),
            actor: actor.to_string(),
            node,
            at: alpharen_store::now_unix(),
        }
    }
}

/// `r` numbered after the module's last record `prev`: a deploy gets the
/// next version; a rollback or undeploy keeps the module's highest.
pub fn stamp(r: &Record, prev: Option<&Record>, local_max: i64) -> Record {
    let mut out = r.clone();
    if r.op == Op::Deploy {
        out.version = next_version(prev, local_max);
    }
    out.latest = prev.map_or(0, |p| p.latest).max(local_max).max(out.version);
    out
}

/// The version number of a new deploy: one past both the cluster's
/// highest for the module and any version this member stored before it
/// was in the cluster (so the deploying member overwrites none).
fn next_version(prev: Option<&Record>, local_max: i64) -> i64 {
    prev.map_or(0, |r| r.latest).max(local_max) + 1
}

/// The sequence after which to read the log: where this member stopped,
/// unless the stream is not the one it read (its nats-server moved to
/// another JetStream store, or the stream was made anew): then from the
/// beginning.
pub fn resume_after(stored: Option<&(String, u64)>, stream_id: &str) -> u64 {
    match stored {
        Some((id, seq)) if id == stream_id => *seq,
        _ => 0,
    }
}

/// How far this member has applied the log.
pub fn applied(conn: &mut Connection) -> Result<Option<(String, u64)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT stream, seq FROM integrator_deploy_log LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
        )
        .optional()?)
}

/// The highest version this member holds of a module (0: none).
pub fn local_max(conn: &mut Connection, module: &str) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT coalesce(max(version), 0) FROM integrator_versions WHERE module = ?1",
        [module],
        |r| r.get(0),
    )?)
}

/// Applies one record and moves the mark past it, in one transaction:
/// a deploy or rollback stores its version (replacing one of the same
/// number this member had before it joined) and makes it active; an
/// undeploy takes the module out of service. `None` (a record that does
/// not read) only moves the mark.
pub fn apply(
    conn: &mut Connection,
    stream: &str,
    seq: u64,
    r: Option<&Record>,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    match r {
        None => {}
        Some(r) if r.op == Op::Undeploy => {
            tx.execute(
                "DELETE FROM integrator_active WHERE module = ?1",
                [&r.module],
            )?;
        }
        Some(r) => {
            let services = serde_json::to_string(&r.services).unwrap_or_else(|_| "[]".into());
            let files = r
                .files
                .as_ref()
                .map(|f| serde_json::to_string(f).unwrap_or_else(|_| "{}".into()));
            tx.execute(
                "INSERT OR REPLACE INTO integrator_versions
                   (module, version, file, source, services, deployed_at, actor, files)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    r.module, r.version, r.file, r.source, services, r.at, r.actor, files
                ],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO integrator_active (module, version) VALUES (?1, ?2)",
                params![r.module, r.version],
            )?;
        }
    }
    tx.execute("DELETE FROM integrator_deploy_log", [])?;
    tx.execute(
        "INSERT INTO integrator_deploy_log (stream, seq) VALUES (?1, ?2)",
        params![stream, seq as i64],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    fn rec(op: Op, version: i64, latest: i64, source: &str) -> Record {
        Record {
            op,
            module: "m".into(),
            version,
            latest,
            file: "m.py".into(),
            source: source.into(),
            files: None,
            services: vec![],
            actor: "t".into(),
            node: "a".into(),
            at: 1,
        }
    }

    #[test]
    fn versions_follow_the_clusters_highest_and_this_members_own() {
        assert_eq!(next_version(None, 0), 1);
        // A rollback to 1 after 3 keeps 3 as the highest: the next is 4.
        let rolled = rec(Op::Rollback, 1, 3, "v1");
        assert_eq!(next_version(Some(&rolled), 0), 4);
        // Versions this member had before it joined are not reused.
        assert_eq!(next_version(Some(&rolled), 7), 8);
        assert_eq!(next_version(None, 2), 3);
    }

    #[test]
    fn a_rollback_keeps_the_highest_and_the_next_deploy_goes_past_it() {
        let deployed = stamp(
            &rec(Op::Deploy, 0, 0, "v3"),
            Some(&rec(Op::Deploy, 2, 2, "")),
            0,
        );
        assert_eq!((deployed.version, deployed.latest), (3, 3));
        let back = stamp(&rec(Op::Rollback, 1, 0, "v1"), Some(&deployed), 0);
        assert_eq!((back.version, back.latest), (1, 3));
        let gone = stamp(&rec(Op::Undeploy, 0, 0, ""), Some(&back), 0);
        assert_eq!((gone.version, gone.latest), (0, 3));
        let next = stamp(&rec(Op::Deploy, 0, 0, "v4"), Some(&gone), 0);
        assert_eq!((next.version, next.latest), (4, 4));
    }

    #[test]
    fn a_member_resumes_where_it_stopped_unless_the_stream_is_new() {
        let at = ("s1".to_string(), 12);
        assert_eq!(resume_after(Some(&at), "s1"), 12);
        assert_eq!(resume_after(Some(&at), "s2"), 0);
        assert_eq!(resume_after(None, "s1"), 0);
    }

    #[test]
    fn records_apply_in_order_and_move_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let mut c =
            alpharen_store::open_service_db(dir.path(), "integrator", registry::SCHEMA).unwrap();
        // A version this member had before it joined is replaced.
        registry::add_version(
            &mut c,
            "m",
            "m.py",
            registry::Content {
                source: "old",
                files: None,
            },
            &[],
            "t",
        )
        .unwrap();
        apply(&mut c, "s", 1, Some(&rec(Op::Deploy, 1, 1, "v1"))).unwrap();
        apply(&mut c, "s", 2, Some(&rec(Op::Deploy, 2, 2, "v2"))).unwrap();
        assert_eq!(registry::active(&mut c).unwrap()[0].source, "v2");
        apply(&mut c, "s", 3, Some(&rec(Op::Rollback, 1, 2, "v1"))).unwrap();
        let active = registry::active(&mut c).unwrap();
        assert_eq!((active[0].version, active[0].source.as_str()), (1, "v1"));
        assert_eq!(local_max(&mut c, "m").unwrap(), 2);
        assert_eq!(applied(&mut c).unwrap(), Some(("s".to_string(), 3)));
        apply(&mut c, "s", 4, Some(&rec(Op::Undeploy, 0, 2, ""))).unwrap();
        assert!(registry::active(&mut c).unwrap().is_empty());
        apply(&mut c, "s", 5, None).unwrap();
        assert_eq!(applied(&mut c).unwrap(), Some(("s".to_string(), 5)));
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let r = rec(Op::Rollback, 1, 3, "v1");
        let text = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<Record>(&text).unwrap(), r);
        assert!(
            String::from_utf8(text)
                .unwrap()
                .contains("\"op\":\"rollback\"")
        );
    }
}
