//! Node users: argon2id password hashes and a role.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::sync::OnceLock;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::db::audit;
use crate::{Store, StoreError, now_unix};

/// Ordered by what a role may do: a viewer reads; an operator also acts on
/// the reaction engine (approve, deny, start, retry, skip); an admin
/// changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role, StoreError> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            _ => Err(StoreError::BadUser(format!(
                "{s:?} is not a role; use \"admin\", \"operator\" or \"viewer\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

pub(crate) const MIN_PASSWORD: usize = 8;

pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadUser(format!(
            "{name:?} is not a user name (1-32 lowercase letters, digits, '.', '_' or '-')"
        )))
    }
}

fn hash(password: &str) -> Result<String, StoreError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(StoreError::BadUser(format!(
            "the password is too short: use at least {MIN_PASSWORD} characters"
        )));
    }
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::BadUser(format!("cannot hash password: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::BadUser(format!("cannot hash password: {e}")))
}

/// A user and their argon2 hash, for [`verify`].
#[derive(Debug, Clone)]
pub struct Credential {
    pub user: User,
    hash: String,
}

/// A hash of a random password with the same parameters as real ones, made
/// once: unknown user names are checked against it so that they take as
/// long as known ones (the answer's timing does not reveal who exists).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let (mut salt, mut password) = ([0u8; 16], [0u8; 16]);
        rand::fill(&mut salt);
        rand::fill(&mut password);
        SaltString::encode_b64(&salt)
            .ok()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(&password, &salt)
                    .map(|h| h.to_string())
                    .ok()
            })
            .unwrap_or_default()
    })
}

/// The user if `password` matches; `None` otherwise. An unknown user
/// (`cred` is `None`) costs one argon2 verification all the same.
pub fn verify(cred: Option<&Credential>, password: &str) -> Result<Option<User>, StoreError> {
    let stored = match cred {
        Some(c) => c.hash.as_str(),
        None => dummy_hash(),
    };
    let parsed = PasswordHash::new(stored).map_err(|e| {
        StoreError::Corrupt(format!(
            "password hash of {}: {e}",
            cred.map_or("(dummy)", |c| c.user.name.as_str())
        ))
    })?;
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    Ok(cred.filter(|_| matches).map(|c| c.user.clone()))
}

impl Store {
    pub fn add_user(
        &mut self,
        name: &str,
        password: &str,
        role: Role,
        actor: &str,
    ) -> Result<User, StoreError> {
        check_name(name)?;
        let hashed = hash(password)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: Option<String> = tx
            .query_row("SELECT name FROM users WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(StoreError::UserExists(name.into()));
        }
        let now = now_unix();
        tx.execute(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![name, role.as_str(), hashed, now],
        )?;
        audit(
            &tx,
            actor,
            "user.add",
            &format!("{name} ({})", role.as_str()),
        )?;
        tx.commit()?;
        Ok(User {
            name: name.into(),
            role,
            created_at: now,
        })
    }

    pub fn set_password(
        &mut self,
        name: &str,
        password: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let hashed = hash(password)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            params![name, hashed],
        )?;
        if n == 0 {
            return Err(StoreError::NoUser(name.into()));
        }
        audit(&tx, actor, "user.passwd", name)?;
        Ok(tx.commit()?)
    }

    /// The user if the password matches; `None` for an unknown user or a
    /// wrong password alike, so callers cannot tell them apart.
    pub fn verify_password(&self, name: &str, password: &str) -> Result<Option<User>, StoreError> {
        verify(self.credential(name)?.as_ref(), password)
    }

    /// A user's stored hash, read quickly so the slow check ([`verify`])
    /// can run without holding the store.
    pub fn credential(&self, name: &str) -> Result<Option<Credential>, StoreError> {
        let row: Option<(String, i64, String)> = self
            .conn
            .query_row(
                "SELECT role, created_at, password_hash FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((role, created_at, hash)) = row else {
            return Ok(None);
        };
        Ok(Some(Credential {
            user: User {
                name: name.into(),
                role: Role::parse(&role)?,
                created_at,
            },
            hash,
        }))
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, role, created_at FROM users ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, role, created_at) = row?;
            out.push(User {
                name,
                role: Role::parse(&role)?,
                created_at,
            });
        }
        Ok(out)
    }

    /// Whether setup is done: a node without an admin is in setup mode.
    pub fn has_admin(&self) -> Result<bool, StoreError> {
        Ok(self.users()?.iter().any(|u| u.role == Role::Admin))
    }

    /// Deletes a user, but never the last admin: that would lock everyone out.
    pub fn delete_user(&mut self, name: &str, actor: &str) -> Result<(), StoreError> {
        let users = self.users()?;
        let user = users
            .iter()
            .find(|u| u.name == name)
            .ok_or_else(|| StoreError::NoUser(name.into()))?;
        let admins = users.iter().filter(|u| u.role == Role::Admin).count();
        if user.role == Role::Admin && admins == 1 {
            return Err(StoreError::BadUser(format!(
                "{name:?} is the last admin; add another admin first"
            )));
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM users WHERE name = ?1", [name])?;
        audit(&tx, actor, "user.del", name)?;
        Ok(tx.commit()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_hashed_verified_and_protected() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert!(!s.has_admin().unwrap());
        s.add_user("admin", "correct horse", Role::Admin, "t")
            .unwrap();
        assert!(s.has_admin().unwrap());
        assert!(matches!(
            s.add_user("admin", "whatever1", Role::Viewer, "t"),
            Err(StoreError::UserExists(_))
        ));
        assert!(matches!(
            s.add_user("Bad Name", "whatever1", Role::Viewer, "t"),
            Err(StoreError::BadUser(_))
        ));
        assert!(matches!(
            s.add_user("eve", "short", Role::Viewer, "t"),
            Err(StoreError::BadUser(_))
        ));
        assert!(
            s.verify_password("admin", "correct horse")
                .unwrap()
                .is_some()
        );
        assert!(s.verify_password("admin", "wrong horse").unwrap().is_none());
        assert!(
            s.verify_password("nobody", "correct horse")
                .unwrap()
                .is_none()
        );
        s.set_password("admin", "battery staple", "t").unwrap();
        assert!(
            s.verify_password("admin", "battery staple")
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            s.delete_user("admin", "t"),
            Err(StoreError::BadUser(_))
        ));
        s.add_user("view", "viewer pass", Role::Viewer, "t")
            .unwrap();
        s.delete_user("view", "t").unwrap();
        assert_eq!(s.users().unwrap().len(), 1);
    }

    #[test]
    fn unknown_users_are_checked_against_a_hash_as_costly_as_a_real_one() {
        // Equal cost is equal argon2 parameters (algorithm, version, memory,
        // iterations, lanes, output length), not a timing measured here.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.add_user("admin", "correct horse", Role::Admin, "t")
            .unwrap();
        let real = s.credential("admin").unwrap().unwrap().hash;
        let (real, dummy) = (
            PasswordHash::new(&real).unwrap(),
            PasswordHash::new(dummy_hash()).unwrap(),
        );
        assert_eq!(real.algorithm, dummy.algorithm);
        assert_eq!(real.version, dummy.version);
        assert_eq!(real.params, dummy.params);
        assert_eq!(real.hash.map(|h| h.len()), dummy.hash.map(|h| h.len()));
        assert!(
            s.verify_password("nobody", "correct horse")
                .unwrap()
                .is_none()
        );
    }
}
