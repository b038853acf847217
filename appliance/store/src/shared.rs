//! The cluster-wide part of the configuration: `[integrator]` without the
//! keys that describe this node's own listener and resources
//! ([`NODE_KEYS`]) and the sections in [`ALSO`] (`[pgha]`, so that the
//! member that holds the controllers' lease runs the cluster's groups),
//! with the values of the secrets they refer to. On a member of a cluster it changes only through the
//! cluster's configuration log: a local write that changes it is handed
//! to the [`Share`] hook inside its transaction (published there, or the
//! write is undone), and records made on other members are applied with
//! [`Store::apply_shared`]. The log's position this member has reached
//! (its [`Mark`]) is kept in the same transaction as the revision.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::secret_ref;
use crate::revisions::edit_in;
use crate::{ApplyOutcome, Config, Problem, Section, Store, StoreError, Write};

/// `[integrator]` keys that stay per node: its port and TLS, its worker
/// processes, and its static list of other servers.
pub const NODE_KEYS: &[&str] = &["port", "tls", "workers", "worker_memory_limit", "servers"];

/// The sections shared whole besides `[integrator]`. `[pgha]`'s SSH
/// client key is not one of its secrets (each member makes its own:
/// docs/cluster.md).
pub const ALSO: &[Section] = &[Section::Pgha];

/// The shared part of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedPart {
    /// `[integrator]` as JSON without [`NODE_KEYS`]; secrets as references.
    pub section: Value,
    /// The sections of [`ALSO`] by name, as JSON. A record of a member
    /// from before they were shared has none: this member keeps its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sections: BTreeMap<String, Value>,
    /// The secrets the sections refer to, by name.
    pub secrets: BTreeMap<String, String>,
}

/// How far this member has applied the cluster's configuration log: the
/// stream's identity and the sequence of the last record applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub stream: String,
    pub seq: u64,
}

/// What the store asks of the cluster when a write changes the shared
/// part. Called inside the write's transaction: an error undoes it.
pub trait Share: Send {
    /// Whether the node is in a cluster now.
    fn clustered(&self) -> bool;
    /// Appends `part` to the cluster's log as the record after `mark` (a
    /// member that has not applied every record may not write); returns
    /// the new record's mark.
    fn publish(
        &self,
        mark: Option<&Mark>,
        part: &SharedPart,
        w: &Write,
    ) -> Result<Mark, StoreError>;
}

/// The section of `config` without its node keys.
pub fn section_of(config: &Config) -> Value {
    let mut v = config.section_json(Section::Integrator);
    if let Value::Object(m) = &mut v {
        for k in NODE_KEYS {
            m.remove(*k);
        }
    }
    v
}

/// The sections of [`ALSO`] in `config`, by name.
fn also_of(config: &Config) -> BTreeMap<String, Value> {
    ALSO.iter()
        .map(|s| (s.name().to_string(), config.section_json(*s)))
        .collect()
}

/// `config` with its shared sections replaced by `part`'s (the node
/// keys of `[integrator]` kept; a section of [`ALSO`] the part lacks
/// kept too). Its secrets are not looked at.
pub fn with_part(config: &Config, part: &SharedPart) -> Result<Config, Vec<Problem>> {
    let not_table = |path: &str| {
        vec![Problem {
            line: None,
            path: path.into(),
            message: "the cluster's section is not a table".into(),
        }]
    };
    let Value::Object(shared) = &part.section else {
        return Err(not_table("integrator"));
    };
    let mut doc = config.to_json();
    let mut section = shared.clone();
    if let Some(Value::Object(old)) = doc.get("integrator") {
        for k in NODE_KEYS {
            match old.get(*k) {
                Some(v) => section.insert((*k).to_string(), v.clone()),
                None => section.remove(*k),
            };
        }
    }
    doc["integrator"] = Value::Object(section);
    for s in ALSO {
        match part.sections.get(s.name()) {
            Some(v @ Value::Object(_)) => doc[s.name()] = v.clone(),
            Some(_) => return Err(not_table(s.name())),
            None => {}
        }
    }
    Config::from_value(doc)
}

/// The names of the secrets the shared sections refer to (each under
/// its own section's name).
fn secret_names(config: &Config) -> Vec<String> {
    let mut c = config.clone();
    c.secret_fields()
        .iter()
        .filter(|f| f.section == Section::Integrator || ALSO.contains(&f.section))
        .filter_map(|f| {
            let name = f.value.as_deref().and_then(secret_ref)?;
            name.starts_with(&format!("{}.", f.section.name()))
                .then(|| name.to_string())
        })
        .collect()
}

/// The shared part of `config` without secrets: what [`with_part`] puts in.
fn shape_of(config: &Config) -> SharedPart {
    SharedPart {
        section: section_of(config),
        sections: also_of(config),
        secrets: BTreeMap::new(),
    }
}

pub(crate) fn part_in(conn: &Connection, config: &Config) -> Result<SharedPart, StoreError> {
    let mut part = shape_of(config);
    for name in secret_names(config) {
        if let Some(v) = crate::secrets::get(conn, &name)? {
            part.secrets.insert(name, v);
        }
    }
    Ok(part)
}

pub(crate) fn mark_in(conn: &Connection) -> Result<Option<Mark>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT stream, seq FROM shared_config WHERE id = 1",
            [],
            |r| {
                Ok(Mark {
                    stream: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                })
            },
        )
        .optional()?)
}

pub(crate) fn set_mark(conn: &Connection, m: &Mark) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO shared_config (id, stream, seq) VALUES (1, ?1, ?2)",
        params![m.stream, m.seq as i64],
    )?;
    Ok(())
}

/// A new cluster (or none): the mark of the old one means nothing there.
/// The member that makes a cluster (no seeds) gets an empty mark, which
/// lets it publish its part as the first record of an empty log; a
/// joiner gets none, so the cluster's part wins.
pub(crate) fn new_cluster(conn: &Connection, config: &Config) -> Result<(), StoreError> {
    conn.execute("DELETE FROM shared_config", [])?;
    if config.cluster.enabled() && config.cluster.seeds.is_empty() {
        set_mark(
            conn,
            &Mark {
                stream: String::new(),
                seq: 0,
            },
        )?;
    }
    Ok(())
}

/// What applying a record did.
#[derive(Debug)]
pub struct Applied {
    /// The new revision, if the section changed.
    pub outcome: ApplyOutcome,
    /// The secrets whose values changed (a password alone changes no
    /// revision, but the services that read it reload).
    pub secrets: Vec<String>,
}

/// Whether `mark` already covers record `seq` of `stream`.
fn covered(mark: Option<&Mark>, stream: &str, seq: u64) -> bool {
    mark.is_some_and(|m| m.stream == stream && m.seq >= seq)
}

impl Store {
    /// Sets the hook that publishes changes of the shared part.
    pub fn set_share(&mut self, share: Box<dyn Share>) {
        self.share = Some(share);
    }

    pub fn shared_mark(&self) -> Result<Option<Mark>, StoreError> {
        mark_in(&self.conn)
    }

    /// Applies a record of the cluster's log made on any member: the
    /// secrets its sections refer to are stored and its sections replace
    /// this member's shared part, as a new revision (confirmed, like an edit: a change waiting
    /// for confirmation stays pending, and its revert keeps the record's
    /// section), and the mark moves past it, in one transaction. `None`
    /// when the mark already covers it. An invalid record changes nothing
    /// (not even the mark: see [`Store::skip_shared`]).
    pub fn apply_shared(
        &mut self,
        mark: &Mark,
        part: &SharedPart,
        w: &Write,
    ) -> Result<Option<Applied>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if covered(mark_in(&tx)?.as_ref(), &mark.stream, mark.seq) {
            return Ok(None);
        }
        let next =
            with_part(&crate::revisions::latest_config(&tx)?, part).map_err(StoreError::Invalid)?;
        let referred = secret_names(&next);
        let mut secrets = Vec::new();
        for (name, value) in &part.secrets {
            if referred.contains(name) && crate::secrets::get(&tx, name)?.as_ref() != Some(value) {
                crate::secrets::put(&tx, name, value)?;
                secrets.push(name.clone());
            }
        }
        let outcome = edit_in(&tx, w, None, |c| {
            *c = with_part(c, part)?;
            Ok(())
        })?;
        set_mark(&tx, mark)?;
        tx.commit()?;
        Ok(Some(Applied { outcome, secrets }))
    }

    /// Moves the mark past a record this member cannot apply.
    pub fn skip_shared(&mut self, mark: &Mark) -> Result<(), StoreError> {
        set_mark(&self.conn, mark)
    }

    /// Publishes this member's shared part as it is (the first record of
    /// an empty log) with `publish`, and keeps the mark it returns.
    pub fn seed_shared(
        &mut self,
        publish: impl FnOnce(&SharedPart) -> Result<Mark, StoreError>,
    ) -> Result<Mark, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let config = crate::revisions::latest_config(&tx)?;
        let mark = publish(&part_in(&tx, &config)?)?;
        set_mark(&tx, &mark)?;
        tx.commit()?;
        Ok(mark)
    }
}

/// Called by the write path (`revisions::apply_in`) on a clustered node: publishes the shared part
/// when the write changed it (`before` is it as it was).
pub(crate) fn publish_in(
    conn: &Connection,
    share: &dyn Share,
    before: &SharedPart,
    config: &Config,
    w: &Write,
) -> Result<(), StoreError> {
    let after = part_in(conn, config)?;
    if after == *before {
        return Ok(());
    }
    let mark = share.publish(mark_in(conn)?.as_ref(), &after, w)?;
    set_mark(conn, &mark)
}

/// An automatic revert on a clustered node restores this node's sections
/// only: the shared part stays the cluster's.
pub(crate) fn keep_shared(fallback: &Config, current: &Config) -> Config {
    with_part(fallback, &shape_of(current)).unwrap_or_else(|_| fallback.clone())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A cluster that takes every record, or refuses all of them.
    #[derive(Clone, Default)]
    struct Fake {
        taken: Arc<Mutex<Vec<SharedPart>>>,
        refuse: bool,
    }

    impl Share for Fake {
        fn clustered(&self) -> bool {
            true
        }
        fn publish(
            &self,
            mark: Option<&Mark>,
            part: &SharedPart,
            _: &Write,
        ) -> Result<Mark, StoreError> {
            if self.refuse {
                return Err(StoreError::ClusterBehind);
            }
            self.taken.lock().unwrap().push(part.clone());
            Ok(Mark {
                stream: "s".into(),
                seq: mark.map_or(0, |m| m.seq) + 1,
            })
        }
    }

    fn doc(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    const BASIC: &str = "[[integrator.security]]\nname = \"a\"\nkind = \"basic\"\nusername = \"u\"\npassword = \"hunter2\"\n";

    #[test]
    fn a_local_change_of_the_shared_part_is_published_with_its_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.apply(&Config::default(), "t", "1").unwrap();
        let fake = Fake::default();
        s.set_share(Box::new(fake.clone()));
        s.apply(&doc(BASIC), "t", "2").unwrap();
        let taken = fake.taken.lock().unwrap().clone();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].secrets["integrator.security.a"], "hunter2");
        assert!(!taken[0].section.to_string().contains("hunter2"));
        assert_eq!(s.shared_mark().unwrap().unwrap().seq, 1);
        // A node key (the port) is this node's: nothing is published.
        let mut c = doc(BASIC);
        c.integrator.port = 11999;
        s.apply(&c, "t", "3").unwrap();
        assert_eq!(fake.taken.lock().unwrap().len(), 1);
        // A new password alone is a change of the shared part.
        c.integrator.security[0].password = Some("other".into());
        s.apply(&c, "t", "4").unwrap();
        assert_eq!(fake.taken.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_change_the_cluster_does_not_take_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.apply(&Config::default(), "t", "1").unwrap();
        s.set_share(Box::new(Fake {
            refuse: true,
            ..Fake::default()
        }));
        let e = s.apply(&doc(BASIC), "t", "2").unwrap_err();
        assert_eq!(e.code(), "conflict");
        assert_eq!(s.history(10).unwrap().len(), 1);
        assert_eq!(s.secret("integrator.security.a").unwrap(), None);
    }

    #[test]
    fn a_record_replaces_the_shared_part_and_keeps_the_node_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let mut mine = Config::default();
        mine.integrator.port = 12000;
        s.apply(&mine, "t", "1").unwrap();
        let from = {
            let d = tempfile::tempdir().unwrap();
            let mut other = Store::open(d.path()).unwrap();
            other.apply(&doc(BASIC), "t", "x").unwrap();
            part_in(&other.conn, &other.current_config().unwrap()).unwrap()
        };
        let at = Mark {
            stream: "s".into(),
            seq: 3,
        };
        let done = s
            .apply_shared(&at, &from, &Write::new("ann", "cluster revision 3"))
            .unwrap()
            .unwrap();
        assert!(done.outcome.revision.is_some());
        assert_eq!(done.secrets, vec!["integrator.security.a".to_string()]);
        let now = s.current_config().unwrap();
        assert_eq!(now.integrator.port, 12000);
        assert_eq!(now.integrator.security[0].name, "a");
        assert_eq!(
            s.secret("integrator.security.a").unwrap().as_deref(),
            Some("hunter2")
        );
        // Applied once: the same record again is nothing.
        assert!(
            s.apply_shared(&at, &from, &Write::new("ann", ""))
                .unwrap()
                .is_none()
        );
        // An invalid record changes nothing, not even the mark.
        let bad = SharedPart {
            section: serde_json::json!({"channels": "no"}),
            sections: BTreeMap::new(),
            secrets: BTreeMap::new(),
        };
        let next = Mark { seq: 4, ..at };
        assert!(s.apply_shared(&next, &bad, &Write::new("ann", "")).is_err());
        assert_eq!(s.shared_mark().unwrap().unwrap().seq, 3);
        // Joining another cluster forgets the mark.
        let mut joined = s.current_config().unwrap();
        joined.cluster.name = "other".into();
        joined.cluster.seeds = vec!["10.0.0.9:6222".into()];
        s.apply(&joined, "t", "join").unwrap();
        assert_eq!(s.shared_mark().unwrap(), None);
    }

    const PGHA: &str = "[pgha]\ngrace = 7\n[[pgha.pg_controller]]\nkey = \"main\"\n[[pgha.pg_controller.servers]]\npg_host = \"10.0.0.1\"\nssh_user = \"postgres\"\npg_replica_user = \"rep\"\npg_replica_pwd = \"s3cret\"\npg_data_folder = \"/d\"\n[[pgha.pg_controller.servers]]\npg_host = \"10.0.0.2\"\nssh_user = \"postgres\"\npg_replica_user = \"rep\"\npg_data_folder = \"/d\"\n";

    #[test]
    fn pgha_is_shared_with_its_passwords_and_an_old_record_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.apply(&Config::default(), "t", "1").unwrap();
        let fake = Fake::default();
        s.set_share(Box::new(fake.clone()));
        s.apply(&doc(PGHA), "t", "2").unwrap();
        let taken = fake.taken.lock().unwrap().clone();
        assert_eq!(taken.len(), 1);
        let name = "pgha.pg_controller[0].servers[0].pg_replica_pwd";
        assert_eq!(taken[0].secrets[name], "s3cret");
        assert_eq!(taken[0].sections["pgha"]["grace"], 7);
        assert!(!taken[0].sections["pgha"].to_string().contains("s3cret"));

        // Another member takes the record: the group and its password.
        let d2 = tempfile::tempdir().unwrap();
        let mut other = Store::open(d2.path()).unwrap();
        other.apply(&Config::default(), "t", "1").unwrap();
        let at = Mark {
            stream: "s".into(),
            seq: 1,
        };
        let done = other
            .apply_shared(&at, &taken[0], &Write::new("ann", ""))
            .unwrap()
            .unwrap();
        assert!(done.outcome.changed.contains(&Section::Pgha));
        assert_eq!(done.secrets, vec![name.to_string()]);
        let now = other.current_config().unwrap();
        assert_eq!(now.pgha.grace, 7);
        assert_eq!(now.pgha.pg_controller[0].key.as_deref(), Some("main"));
        assert_eq!(other.secret(name).unwrap().as_deref(), Some("s3cret"));

        // A record without the section (a member from before) keeps it;
        // a secret no shared section refers to is not taken.
        let mut old = taken[0].clone();
        old.sections.clear();
        old.secrets
            .insert("pgha.ssh_client_key".into(), "stolen".into());
        let next = Mark { seq: 2, ..at };
        other
            .apply_shared(&next, &old, &Write::new("ann", ""))
            .unwrap();
        assert_eq!(other.current_config().unwrap().pgha.grace, 7);
        assert_eq!(other.secret("pgha.ssh_client_key").unwrap(), None);
    }
}
