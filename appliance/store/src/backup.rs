//! One-file backups: configuration, users (with hashes) and secrets.
//! Restore checks the whole file before it replaces anything.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::audit;
use crate::revisions::{Pend, Write, apply_in};
use crate::users::check_name;
use crate::{ApplyOutcome, Config, Role, Store, StoreError, now_unix};

const FORMAT: &str = "alpharen-backup";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub format: String,
    pub version: u32,
    pub created_at: i64,
    pub revision: Option<i64>,
    pub config: Value,
    pub users: Vec<BackupUser>,
    pub secrets: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupUser {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at: i64,
}

impl Backup {
    pub fn parse(text: &str) -> Result<Backup, StoreError> {
        let b: Backup = serde_json::from_str(text)
            .map_err(|e| StoreError::BadBackup(format!("not an ALPHA-REN backup file: {e}")))?;
        if b.format != FORMAT || b.version != VERSION {
            return Err(StoreError::BadBackup(format!(
                "format {:?} version {} is not {FORMAT:?} version {VERSION}",
                b.format, b.version
            )));
        }
        Ok(b)
    }
}

impl Store {
    pub fn backup(&self) -> Result<Backup, StoreError> {
        let current = self.current()?;
        let mut stmt = self
            .conn
            .prepare("SELECT name, role, password_hash, created_at FROM users ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut users = Vec::new();
        for row in rows {
            let (name, role, password_hash, created_at) = row?;
            users.push(BackupUser {
                name,
                role: Role::parse(&role)?,
                password_hash,
                created_at,
            });
        }
        let mut secrets = BTreeMap::new();
        for name in self.secret_names()? {
            if let Some(v) = self.secret(&name)? {
                secrets.insert(name, v);
            }
        }
        Ok(Backup {
            format: FORMAT.into(),
            version: VERSION,
            created_at: now_unix(),
            revision: current.as_ref().map(|r| r.meta.id),
            config: current.map(|r| r.config).unwrap_or_default().to_json(),
            users,
            secrets,
        })
    }

    /// Replaces users and secrets and applies the backup's configuration as
    /// a new revision, all in one transaction.
    pub fn restore(&mut self, backup: &Backup, actor: &str) -> Result<ApplyOutcome, StoreError> {
        let config = Config::from_value(backup.config.clone()).map_err(StoreError::Invalid)?;
        for u in &backup.users {
            check_name(&u.name)?;
            if !u.password_hash.starts_with("$argon2") {
                return Err(StoreError::BadBackup(format!(
                    "user {:?} has no argon2 password hash",
                    u.name
                )));
            }
        }
        if !backup.users.iter().any(|u| u.role == Role::Admin) {
            return Err(StoreError::BadBackup(
                "it has no admin user; restoring it would lock everyone out".into(),
            ));
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM users", [])?;
        for u in &backup.users {
            tx.execute(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![u.name, u.role.as_str(), u.password_hash, u.created_at],
            )?;
        }
        tx.execute("DELETE FROM secrets", [])?;
        for (name, value) in &backup.secrets {
            tx.execute(
                "INSERT INTO secrets (name, value, updated_at) VALUES (?1, ?2, ?3)",
                params![name, value, now_unix()],
            )?;
        }
        let comment = match backup.revision {
            Some(id) => format!("restored from backup (revision {id})"),
            None => "restored from backup".into(),
        };
        let out = apply_in(
            &tx,
            &config,
            &Write::new(actor, &comment),
            Pend::IfRisky,
            self.share.as_deref(),
        )?;
        audit(&tx, actor, "backup.restore", &comment)?;
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_round_trips_and_bad_backup_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let mut c = Config::default();
        c.node.hostname = "orig".into();
        s.apply(&c, "t", "1").unwrap();
        s.add_user("admin", "password1", Role::Admin, "t").unwrap();
        s.set_secret("k", "v").unwrap();
        let text = serde_json::to_string(&s.backup().unwrap()).unwrap();

        let dir2 = tempfile::tempdir().unwrap();
        let mut t = Store::open(dir2.path()).unwrap();
        let mut broken = Backup::parse(&text).unwrap();
        broken.config["node"]["hostname"] = "bad host".into();
        assert_eq!(
            t.restore(&broken, "t").unwrap_err().code(),
            "invalid_config"
        );
        assert!(t.users().unwrap().is_empty() && t.current().unwrap().is_none());
        assert!(Backup::parse("{\"format\": 1}").is_err());

        t.restore(&Backup::parse(&text).unwrap(), "t").unwrap();
        assert_eq!(t.current_config().unwrap().node.hostname, "orig");
        assert!(t.verify_password("admin", "password1").unwrap().is_some());
        assert_eq!(t.secret("k").unwrap().as_deref(), Some("v"));
    }
}
