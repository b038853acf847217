use super::*;
use alpharen_store::{Config, Store};

const OLD: Schema = Schema {
    tables: 3,
    config: 0,
};

/// What `old_store` leaves: this firmware's tables, configuration schema 0.
fn stored_old() -> Schema {
    Schema {
        tables: Schema::firmware().tables,
        config: 0,
    }
}

fn kept_for(slot: char, by: char) -> Kept {
    Kept {
        slot,
        by,
        from: OLD,
        to: Schema::firmware(),
        at: 1,
    }
}

#[test]
fn a_copy_is_kept_on_the_migrating_boot_and_restored_only_by_its_slot() {
    let fw = Schema::firmware();
    // First boot of the new version from b: keep a copy for a.
    assert_eq!(
        decide(Some(OLD), fw, Some('b'), None),
        Action::Keep { slot: 'a' }
    );
    // Nothing to migrate, no store yet, or not an A/B node: just open.
    assert_eq!(decide(Some(fw), fw, Some('b'), None), Action::Open);
    assert_eq!(decide(None, fw, Some('b'), None), Action::Open);
    assert_eq!(decide(Some(OLD), fw, None, None), Action::Open);
    // A newer store is not this boot's to copy: opening it refuses it.
    let newer = Schema {
        tables: fw.tables,
        config: fw.config + 1,
    };
    assert_eq!(decide(Some(newer), fw, Some('a'), None), Action::Open);
    // b again (restarted while on trial): the copy stays.
    let k = kept_for('a', 'b');
    assert_eq!(decide(Some(fw), fw, Some('b'), Some(&k)), Action::Open);
    // a boots: b was not committed (a commit drops the copy): restore,
    // whatever the store's schema now.
    assert_eq!(decide(Some(fw), fw, Some('a'), Some(&k)), Action::Restore);
    assert_eq!(
        decide(Some(newer), OLD, Some('a'), Some(&k)),
        Action::Restore
    );
    // A copy is no use to a node that does not say which slot it runs.
    assert_eq!(decide(Some(fw), fw, None, Some(&k)), Action::Open);
}

fn hostname(dir: &Path) -> String {
    Store::open(dir)
        .and_then(|s| s.current_config())
        .map(|c| c.node.hostname)
        .unwrap_or_default()
}

/// A store as firmware before the configuration schema left it.
fn old_store(dir: &Path, host: &str) {
    let mut s = Store::open(dir).unwrap();
    let mut c = Config::default();
    c.node.hostname = host.into();
    s.apply(&c, "t", "1").unwrap();
    drop(s);
    let conn = rusqlite::Connection::open(dir.join("alpharen.db")).unwrap();
    conn.execute("DELETE FROM component_schema", []).unwrap();
}

fn set_host(dir: &Path, host: &str) {
    let mut s = Store::open(dir).unwrap();
    let mut c = s.current_config().unwrap();
    c.node.hostname = host.into();
    s.apply(&c, "t", "on b").unwrap();
}

#[test]
fn the_old_slot_gets_the_store_back_as_it_left_it() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path();
    old_store(dir, "before");
    let said = prepare(dir, Some('b')).unwrap().unwrap_or_default();
    assert!(
        said.contains(&format!(
            "is migrated to schema tables {}, configuration 1; a copy from before is kept for slot a",
            Schema::firmware().tables
        )) && said.contains("until slot b is committed"),
        "{said}"
    );
    assert_eq!(
        kept(dir).map(|k| (k.slot, k.by, k.from)),
        Some(('a', 'b', stored_old()))
    );
    // b's firmware opens (migrates) it and changes the configuration.
    set_host(dir, "during");
    assert_eq!(
        alpharen_store::schema::probe(dir).unwrap(),
        Some(Schema::firmware())
    );
    // b restarted: nothing more happens.
    assert_eq!(prepare(dir, Some('b')).unwrap(), None);
    assert!(kept(dir).is_some());

    // b's trial failed; a boots.
    let said = prepare(dir, Some('a')).unwrap().unwrap_or_default();
    assert!(said.starts_with(&format!("slot b migrated the configuration to schema tables {}, configuration 1 and was not committed; slot a runs again", Schema::firmware().tables)), "{said}");
    assert_eq!(
        alpharen_store::schema::probe(dir).unwrap(),
        Some(stored_old())
    );
    assert!(kept(dir).is_none() && !copy_path(dir).exists());
    assert_eq!(take_note(dir).as_deref(), Some(said.as_str()));
    assert_eq!(take_note(dir), None, "reported once");
    assert_eq!(hostname(dir), "before");
}

#[test]
fn a_commit_of_the_migrating_slot_drops_the_copy() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path();
    old_store(dir, "before");
    prepare(dir, Some('b')).unwrap();
    set_host(dir, "during");
    assert_eq!(committed(dir, 'a').unwrap(), None);
    assert!(copy_path(dir).exists());
    let said = committed(dir, 'b').unwrap().unwrap_or_default();
    assert!(said.contains("slot b is committed; the configuration store kept from before its migration (for slot a) is dropped"), "{said}");
    assert!(kept(dir).is_none() && !copy_path(dir).exists());
    // a boots later (chosen by hand): the committed store stays.
    assert_eq!(prepare(dir, Some('a')).unwrap(), None);
    assert_eq!(hostname(dir), "during");
}
