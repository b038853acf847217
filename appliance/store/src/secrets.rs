//! Secrets (private keys, passwords, TSIG keys): kept apart from the
//! configuration so that reads of the config never carry them.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use crate::config::{make_ref, secret_ref};
use crate::{Config, Problem, Section, Store, StoreError, now_unix};

pub(crate) fn put(conn: &Connection, name: &str, value: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO secrets (name, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![name, value, now_unix()],
    )?;
    Ok(())
}

pub(crate) fn get(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

/// [`Store::reveal`] over any source of secrets (the store, a service's
/// [`crate::View`]).
pub(crate) fn reveal_with(
    field: &str,
    value: Option<&str>,
    lookup: impl Fn(&str) -> Result<Option<String>, StoreError>,
) -> Result<Option<String>, StoreError> {
    let Some(v) = value else { return Ok(None) };
    match secret_ref(v) {
        Some(name) => lookup(name)?
            .map(Some)
            .ok_or_else(|| StoreError::MissingSecret {
                field: field.into(),
                name: name.into(),
            }),
        // Documents from before references: the value itself.
        None => Ok(Some(v.to_string())),
    }
}

/// [`Store::revealed`] over any source of secrets.
pub(crate) fn revealed_with(
    mut config: Config,
    lookup: impl Fn(&str) -> Result<Option<String>, StoreError>,
) -> Result<Config, StoreError> {
    for f in config.secret_fields() {
        *f.value = reveal_with(&f.path, f.value.as_deref(), &lookup)?;
    }
    Ok(config)
}

/// A random RFC 4122 version 4 UUID, Zato's default for generated passwords.
pub fn uuid4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

/// A UUID's 16 bytes as its hyphenated lower-case text.
pub fn uuid_text(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Moves every value given in clear into the secret store and leaves a
/// reference in its place; generates the fields that are generated when
/// left out. Returns the sections whose secrets changed (their services
/// must reload although the document may not have changed).
pub(crate) fn move_secrets(
    conn: &Connection,
    config: &mut Config,
) -> Result<Vec<Section>, StoreError> {
    let mut taken: HashSet<String> = config
        .secret_fields()
        .iter()
        .filter_map(|f| f.value.as_deref().and_then(secret_ref).map(String::from))
        .collect();
    let mut changed = Vec::new();
    let mut problems = Vec::new();
    for f in config.secret_fields() {
        match f.value.clone() {
            Some(v) => match secret_ref(&v) {
                Some(name) => {
                    if get(conn, name)?.is_none() {
                        problems.push(Problem {
line: None,
                            path: f.path.clone(),
                            message: format!(
                                "refers to the secret {name:?}, which is not set (give the value instead, or add it under [secrets])"
                            ),
                        });
                    }
                }
                // An empty value is the section's validation to refuse.
                None if v.is_empty() => {}
                None => {
                    let name = free_name(&f.name, &mut taken);
                    if get(conn, &name)?.as_deref() != Some(v.as_str()) {
                        put(conn, &name, &v)?;
                        changed.push(f.section);
                    }
                    *f.value = Some(make_ref(&name));
                }
            },
            None if f.generate => {
                let name = free_name(&f.name, &mut taken);
                if get(conn, &name)?.is_none() {
                    put(conn, &name, &uuid4())?;
                    changed.push(f.section);
                }
                *f.value = Some(make_ref(&name));
            }
            None => {}
        }
    }
    if !problems.is_empty() {
        return Err(StoreError::Invalid(problems));
    }
    changed.sort();
    changed.dedup();
    Ok(changed)
}

/// `name`, or `name#2`, `name#3`… when another field already refers to it
/// (say after a list was reordered), so one field's new value never
/// changes another's.
fn free_name(name: &str, taken: &mut HashSet<String>) -> String {
    let mut candidate = name.to_string();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}#{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

impl Store {
    pub fn set_secret(&mut self, name: &str, value: &str) -> Result<(), StoreError> {
        put(&self.conn, name, value)
    }

    /// For services that need the value; never exposed by a read API.
    pub fn secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        get(&self.conn, name)
    }

    /// The document with every reference replaced by its value, for a
    /// service that hands passwords on to other programs. Never stored or
    /// answered.
    pub fn revealed(&self, config: Config) -> Result<Config, StoreError> {
        revealed_with(config, |name| get(&self.conn, name))
    }

    /// The value of a secret-bearing config field: the stored secret it
    /// refers to (an error names the field when that secret is gone).
    pub fn reveal(&self, field: &str, value: Option<&str>) -> Result<Option<String>, StoreError> {
        reveal_with(field, value, |name| get(&self.conn, name))
    }

    pub fn secret_names(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM secrets ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_upserted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.secret("k").unwrap(), None);
        s.set_secret("k", "one").unwrap();
        s.set_secret("k", "two").unwrap();
        assert_eq!(s.secret("k").unwrap().as_deref(), Some("two"));
        assert_eq!(s.secret_names().unwrap(), vec!["k".to_string()]);
    }

    fn doc(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    #[test]
    fn values_in_clear_become_references() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut c = doc(
            "[[integrator.security]]\nname = \"a\"\nkind = \"basic\"\nusername = \"u\"\npassword = \"hunter2\"\n\
             [[integrator.security]]\nname = \"b\"\nkind = \"apikey\"\n",
        );
        let changed = move_secrets(&s.conn, &mut c).unwrap();
        assert_eq!(changed, vec![Section::Integrator]);
        let a = c.integrator.security[0].password.clone().unwrap();
        assert_eq!(a, "secret:integrator.security.a");
        assert_eq!(s.reveal("x", Some(&a)).unwrap().as_deref(), Some("hunter2"));
        let b = c.integrator.security[1].password.clone().unwrap();
        assert_eq!(
            s.reveal("x", Some(&b)).unwrap().unwrap().len(),
            36,
            "uuid4 generated"
        );
        assert!(!serde_json::to_string(&c).unwrap().contains("hunter2"));
        // Unchanged on a second pass: nothing to reload.
        assert!(move_secrets(&s.conn, &mut c).unwrap().is_empty());
    }

    #[test]
    fn a_reference_to_a_missing_secret_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut c = doc(
            "[[integrator.security]]\nname = \"a\"\nkind = \"basic\"\nusername = \"u\"\npassword = \"secret:nope\"\n",
        );
        let err = move_secrets(&s.conn, &mut c).unwrap_err().to_string();
        assert!(err.contains("integrator.security[0].password"), "{err}");
        assert!(err.contains("\"nope\""), "{err}");
    }

    #[test]
    fn uuid4_has_version_and_variant() {
        let u = uuid4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn a_new_value_never_lands_in_a_name_another_field_refers_to() {
        let mut taken: HashSet<String> = ["p".to_string()].into();
        assert_eq!(free_name("p", &mut taken), "p#2");
        assert_eq!(free_name("p", &mut taken), "p#3");
        assert_eq!(free_name("q", &mut taken), "q");
    }
}
