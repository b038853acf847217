//! Deployed service files and their versions, kept in the store. A file is
//! a "module" (its name without `.py`); every deploy of it is a new version
//! and one version per module is active. Rollback activates an old one.

use alpharen_store::{StoreError, now_unix};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

/// Our own tables, in `<state>/integrator.db` (`Data::open`).
pub const SCHEMA: &[&str] = &[
    r#"
    CREATE TABLE integrator_versions (
        module TEXT NOT NULL,
        version INTEGER NOT NULL,
        file TEXT NOT NULL,
        source TEXT NOT NULL,
        services TEXT NOT NULL,
        deployed_at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (module, version)
    );
    CREATE TABLE integrator_active (
        module TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
"#,
    crate::data::SCHEMA_STEP,
    crate::project::SCHEMA_STEP,
    crate::package_sets::SCHEMA_STEP,
    crate::deploylog::SCHEMA_STEP,
];

/// One service a file defines (as the validating worker reported it).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub doc: String,
    /// Its SimpleIO, when it declares one (files deployed before this was
    /// recorded have none until redeployed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sio: Option<Sio>,
}

/// A service's SimpleIO elements, as its class declares them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Sio {
    #[serde(default)]
    pub input_required: Vec<SioElement>,
    #[serde(default)]
    pub input_optional: Vec<SioElement>,
    #[serde(default)]
    pub output_required: Vec<SioElement>,
    #[serde(default)]
    pub output_optional: Vec<SioElement>,
}

/// One element: its name and JSON Schema type (`None`: any value).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SioElement {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub module: String,
    pub version: i64,
    pub file: String,
    pub services: Vec<ServiceInfo>,
    pub deployed_at: i64,
    pub actor: String,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct ActiveModule {
    pub module: String,
    pub version: i64,
    pub file: String,
    pub source: String,
    pub services: Vec<ServiceInfo>,
    /// A project unit's files (path → source); `None` for a single file.
    pub files: Option<Files>,
}

/// A project unit's modules: path in the unit → source.
pub type Files = std::collections::BTreeMap<String, String>;

fn files_of(text: Option<String>) -> Option<Files> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// The module a file name deploys as: its stem, restricted to identifier
/// characters so it is a valid Python module name.
pub fn module_name(file: &str) -> Option<String> {
    let base = file.rsplit('/').next()?;
    let stem = base.strip_suffix(".py")?;
    if stem.is_empty() || stem.len() > 100 {
        return None;
    }
    let m: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(m)
}

/// Checks the names a new version defines against the rules and the other
/// active modules; every problem in one message.
pub fn name_problems(
    module: &str,
    services: &[ServiceInfo],
    active: &[ActiveModule],
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in services.iter().enumerate() {
        if s.name.starts_with("AR") {
            out.push(format!(
                "service name {:?} (class {}) starts with \"AR\", which is reserved for built-in services",
                s.name, s.class
            ));
        }
        if services[..i].iter().any(|o| o.name == s.name) {
            out.push(format!(
                "service name {:?} is defined twice in this file",
                s.name
            ));
        }
        if let Some(other) = active
            .iter()
            .find(|m| m.module != module && m.services.iter().any(|o| o.name == s.name))
        {
            out.push(format!(
                "service name {:?} is already deployed from {} (undeploy it or rename)",
                s.name, other.file
            ));
        }
    }
    out
}

fn services_of(text: &str) -> Vec<ServiceInfo> {
    serde_json::from_str(text).unwrap_or_default()
}

pub fn active(conn: &mut Connection) -> Result<Vec<ActiveModule>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT v.module, v.version, v.file, v.source, v.services, v.files FROM integrator_active a
         JOIN integrator_versions v ON v.module = a.module AND v.version = a.version ORDER BY v.module",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ActiveModule {
            module: r.get(0)?,
            version: r.get(1)?,
            file: r.get(2)?,
            source: r.get(3)?,
            services: services_of(&r.get::<_, String>(4)?),
            files: files_of(r.get(5)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What a version is made of: one file's source, or a unit's files.
pub struct Content<'a> {
    pub source: &'a str,
    pub files: Option<&'a Files>,
}

/// Stores a validated version and makes it active; returns its number.
pub fn add_version(
    conn: &mut Connection,
    module: &str,
    file: &str,
    content: Content<'_>,
    services: &[ServiceInfo],
    actor: &str,
) -> Result<i64, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let next: i64 = tx.query_row(
        "SELECT coalesce(max(version), 0) + 1 FROM integrator_versions WHERE module = ?1",
        [module],
        |r| r.get(0),
    )?;
    let services = serde_json::to_string(services).unwrap_or_else(|_| "[]".into());
    let files = content
        .files
        .map(|f| serde_json::to_string(f).unwrap_or_else(|_| "{}".into()));
    tx.execute(
        "INSERT INTO integrator_versions (module, version, file, source, services, deployed_at, actor, files)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![module, next, file, content.source, services, now_unix(), actor, files],
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO integrator_active (module, version) VALUES (?1, ?2)",
        params![module, next],
    )?;
    tx.commit()?;
    Ok(next)
}

pub fn activate(conn: &mut Connection, module: &str, version: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO integrator_active (module, version) VALUES (?1, ?2)",
        params![module, version],
    )?;
    Ok(())
}

/// Removes a module from service; its versions stay for rollback.
pub fn deactivate(conn: &mut Connection, module: &str) -> Result<bool, StoreError> {
    let n = conn.execute("DELETE FROM integrator_active WHERE module = ?1", [module])?;
    Ok(n > 0)
}

pub fn versions(conn: &mut Connection, module: &str) -> Result<Vec<Version>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT v.module, v.version, v.file, v.services, v.deployed_at, v.actor,
                a.version IS NOT NULL
         FROM integrator_versions v LEFT JOIN integrator_active a
           ON a.module = v.module AND a.version = v.version
         WHERE v.module = ?1 ORDER BY v.version",
    )?;
    let rows = stmt.query_map([module], |r| {
        Ok(Version {
            module: r.get(0)?,
            version: r.get(1)?,
            file: r.get(2)?,
            services: services_of(&r.get::<_, String>(3)?),
            deployed_at: r.get(4)?,
            actor: r.get(5)?,
            active: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One stored version: number, file name, source, services, unit files.
pub type Stored = (i64, String, String, Vec<ServiceInfo>, Option<Files>);

/// Source and metadata of one version (`None` = the active one).
pub fn source(
    conn: &mut Connection,
    module: &str,
    version: Option<i64>,
) -> Result<Option<Stored>, StoreError> {
    let version = match version {
        Some(v) => Some(v),
        None => conn
            .query_row(
                "SELECT version FROM integrator_active WHERE module = ?1",
                [module],
                |r| r.get(0),
            )
            .optional()?,
    };
    let Some(version) = version else {
        return Ok(None);
    };
    Ok(conn
        .query_row(
            "SELECT file, source, services, files FROM integrator_versions WHERE module = ?1 AND version = ?2",
            params![module, version],
            |r| {
                Ok((
                    version,
                    r.get(0)?,
                    r.get(1)?,
                    services_of(&r.get::<_, String>(2)?),
                    files_of(r.get(3)?),
                ))
            },
        )
        .optional()?)
}

/// The module holding a service name, or the name itself (`NAME`,
/// `NAME.py`, a unit's `NAME.zip`) if it is a module with versions.
pub fn resolve(conn: &mut Connection, name: &str) -> Result<Option<String>, StoreError> {
    if let Some(m) = active(conn)?
        .into_iter()
        .find(|m| m.services.iter().any(|s| s.name == name))
    {
        return Ok(Some(m.module));
    }
    let known: Option<String> = conn
        .query_row(
            "SELECT module FROM integrator_versions WHERE module = ?1 LIMIT 1",
            [name
                .strip_suffix(".py")
                .or_else(|| name.strip_suffix(".zip"))
                .unwrap_or(name)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(known)
}

pub fn modules_json(mods: &[ActiveModule]) -> Value {
    Value::Array(
        mods.iter()
            .flat_map(|m| {
                m.services.iter().map(move |s| {
                    serde_json::json!({
                        "name": s.name, "class": s.class, "doc": s.doc,
                        "module": m.module, "file": m.file, "version": m.version,
                    })
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> ServiceInfo {
        ServiceInfo {
            name: name.into(),
            class: "C".into(),
            doc: String::new(),
            sio: None,
        }
    }

    fn one(source: &str) -> Content<'_> {
        Content {
            source,
            files: None,
        }
    }

    #[test]
    fn module_names_from_files() {
        assert_eq!(module_name("get_user.py").as_deref(), Some("get_user"));
        assert_eq!(module_name("dir/my-svc.py").as_deref(), Some("my_svc"));
        assert_eq!(module_name("x.txt"), None);
        assert_eq!(module_name(".py"), None);
    }

    #[test]
    fn names_reserved_duplicate_and_taken() {
        let other = ActiveModule {
            module: "other".into(),
            version: 1,
            file: "other.py".into(),
            source: String::new(),
            services: vec![svc("taken")],
            files: None,
        };
        let p = name_problems(
            "m",
            &[svc("ARx"), svc("a"), svc("a"), svc("taken")],
            std::slice::from_ref(&other),
        );
        assert_eq!(p.len(), 3, "{p:?}");
        // Redeploying the module that owns a name is fine.
        assert!(name_problems("other", &[svc("taken")], &[other]).is_empty());
    }

    #[test]
    fn versions_rollback_and_undeploy() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = alpharen_store::open_service_db(dir.path(), "integrator", SCHEMA).unwrap();
        assert_eq!(
            add_version(&mut s, "m", "m.py", one("v1"), &[svc("a")], "t").unwrap(),
            1
        );
        assert_eq!(
            add_version(&mut s, "m", "m.py", one("v2"), &[svc("a")], "t").unwrap(),
            2
        );
        assert_eq!(active(&mut s).unwrap()[0].source, "v2");
        activate(&mut s, "m", 1).unwrap();
        assert_eq!(active(&mut s).unwrap()[0].source, "v1");
        assert_eq!(
            versions(&mut s, "m")
                .unwrap()
                .iter()
                .filter(|v| v.active)
                .count(),
            1
        );
        assert_eq!(resolve(&mut s, "a").unwrap().as_deref(), Some("m"));
        assert_eq!(resolve(&mut s, "m.zip").unwrap().as_deref(), Some("m"));
        assert!(deactivate(&mut s, "m").unwrap());
        assert!(active(&mut s).unwrap().is_empty());
        assert_eq!(source(&mut s, "m", Some(2)).unwrap().unwrap().2, "v2");
    }
}
