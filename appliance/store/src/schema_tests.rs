use super::*;
use crate::{Config, Store};

/// Schema 1 → 2 of the tests: every hostname gets a suffix.
fn suffix(mut doc: Value) -> Result<Value, String> {
    let host = doc["node"]["hostname"]
        .as_str()
        .ok_or("node.hostname is missing")?
        .to_string();
    doc["node"]["hostname"] = Value::from(format!("{host}-m"));
    Ok(doc)
}

/// A step that cannot migrate a document with hostname "stuck".
fn refuses_stuck(doc: Value) -> Result<Value, String> {
    if doc["node"]["hostname"] == "stuck" {
        return Err("node.hostname \"stuck\" has no new form".into());
    }
    Ok(doc)
}

fn with_host(name: &str) -> Config {
    let mut c = Config::default();
    c.node.hostname = name.into();
    c
}

fn set_row(dir: &Path, version: Option<u32>) {
    let conn = Connection::open(dir.join("alpharen.db")).unwrap();
    conn.execute("DELETE FROM component_schema WHERE name = ?1", [ROW])
        .unwrap();
    if let Some(v) = version {
        conn.execute(
            "INSERT INTO component_schema (name, version) VALUES (?1, ?2)",
            params![ROW, v],
        )
        .unwrap();
    }
}

#[test]
fn steps_run_from_the_documents_schema_on_and_name_the_one_that_fails() {
    let steps: &[Step] = &[recorded, suffix];
    let doc = serde_json::json!({"node": {"hostname": "n1"}});
    assert_eq!(
        migrate_document(doc.clone(), 0, steps).unwrap()["node"]["hostname"],
        "n1-m"
    );
    assert_eq!(
        migrate_document(doc.clone(), 2, steps).unwrap()["node"]["hostname"],
        "n1"
    );
    assert_eq!(
        migrate_document(serde_json::json!({}), 1, steps).unwrap_err(),
        "schema step 1 → 2: node.hostname is missing"
    );
    // The real steps leave a document of today's shape as it is.
    let today = with_host("n1").to_json();
    assert_eq!(migrate_document(today.clone(), 0, STEPS).unwrap(), today);
}

#[test]
fn a_new_store_gets_this_firmwares_schema_and_an_old_one_starts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(probe(dir.path()).unwrap(), None);
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(probe(dir.path()).unwrap(), Some(Schema::firmware()));
    s.apply(&with_host("n1"), "t", "1").unwrap();
    drop(s);
    // As firmware before the schema row left it: revisions, no row.
    set_row(dir.path(), None);
    assert_eq!(probe(dir.path()).unwrap().map(|s| s.config), Some(0));
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(probe(dir.path()).unwrap(), Some(Schema::firmware()));
    assert_eq!(s.current_config().unwrap().node.hostname, "n1");
    assert!(
        s.audit_log(5)
            .unwrap()
            .iter()
            .any(|a| a.action == "config.migrate" && a.detail == "configuration schema 0 → 1")
    );
}

#[test]
fn opening_with_a_new_step_migrates_every_revision_and_the_pending_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.apply(&with_host("n1"), "t", "1").unwrap();
    // A risky change (ssh) leaves a pending change with a fallback.
    let mut risky = with_host("n2");
    risky.ssh.port = Some(2222);
    s.apply(&risky, "t", "2").unwrap();
    let pending = s.pending().unwrap().expect("pending");
    drop(s);

    let s = Store::open_with_steps(dir.path(), &[recorded, suffix]).unwrap();
    assert_eq!(s.revision(1).unwrap().config.node.hostname, "n1-m");
    assert_eq!(s.current_config().unwrap().node.hostname, "n2-m");
    assert_eq!(s.current_config().unwrap().ssh.port, Some(2222));
    assert_eq!(s.pending().unwrap(), Some(pending));
    drop(s);
    assert_eq!(probe(dir.path()).unwrap().map(|s| s.config), Some(2));
    // Opened again: nothing runs twice.
    let s = Store::open_with_steps(dir.path(), &[recorded, suffix]).unwrap();
    assert_eq!(s.current_config().unwrap().node.hostname, "n2-m");
}

#[test]
fn a_step_that_fails_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.apply(&with_host("stuck"), "t", "1").unwrap();
    s.apply(&with_host("n2"), "t", "2").unwrap();
    drop(s);
    let err = Store::open_with_steps(dir.path(), &[recorded, refuses_stuck])
        .err()
        .expect("refused");
    assert_eq!(err.code(), "corrupt");
    assert!(
        err.to_string().contains(
            "revision 1 cannot be migrated from configuration schema 1 to 2: schema step 1 → 2: node.hostname \"stuck\" has no new form"
        ),
        "{err}"
    );
    assert_eq!(probe(dir.path()).unwrap().map(|s| s.config), Some(1));
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.revision(1).unwrap().config.node.hostname, "stuck");
}

#[test]
fn a_store_of_a_newer_schema_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open_with_steps(dir.path(), &[recorded, suffix]).unwrap();
    s.apply(&with_host("n1"), "t", "1").unwrap();
    drop(s);
    // This firmware knows one step; the store was written with two.
    let err = Store::open(dir.path()).err().expect("refused");
    assert_eq!(err.code(), "newer_schema");
    let text = err.to_string();
    let t = crate::db::TABLE_SCHEMA;
    assert!(
        text.contains(&format!("was written by a newer firmware (schema: tables {t}, configuration 2; this firmware reads up to tables {t}, configuration 1)")),
        "{text}"
    );
    assert!(text.contains("Boot the slot that wrote it, or restore a backup"));
    // Newer tables too.
    let conn = Connection::open(dir.path().join("alpharen.db")).unwrap();
    conn.pragma_update(None, "user_version", 9).unwrap();
    drop(conn);
    let err = Store::open_with_steps(dir.path(), &[recorded, suffix])
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("(schema: tables 9, configuration 2;")
    );
    assert!(
        Schema {
            tables: 9,
            config: 0
        }
        .newer_than(&Schema::firmware())
            && Schema {
                tables: 0,
                config: 9
            }
            .newer_than(&Schema::firmware())
            && !Schema::firmware().newer_than(&Schema::firmware())
            && Schema {
                tables: crate::db::TABLE_SCHEMA,
                config: 0
            }
            .older_than(&Schema::firmware())
    );
}

#[test]
fn a_copy_holds_the_store_as_it_was_with_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.apply(&with_host("n1"), "t", "1").unwrap();
    s.set_secret("k", "v").unwrap();
    let copy = tempfile::tempdir().unwrap();
    let dest = copy.path().join("alpharen.db");
    copy_to(dir.path(), &dest).unwrap();
    s.apply(&with_host("n2"), "t", "2").unwrap();
    assert!(copy_to(dir.path(), &dest).is_err(), "overwrote a copy");
    let c = Store::open(copy.path()).unwrap();
    assert_eq!(c.current_config().unwrap().node.hostname, "n1");
    assert_eq!(c.secret("k").unwrap().as_deref(), Some("v"));
    assert_eq!(probe(copy.path()).unwrap(), Some(Schema::firmware()));
}
