//! The package set's history and rollback: every wheel ever installed is
//! kept in `integrator_package_wheels` (by name and version), so any set
//! version whose wheels are all kept can be made the set again. A
//! rollback is a change like an add: a new set version, the workers
//! restarted gracefully on it.

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use alpharen_rpc::RpcError;

use crate::app::{App, Edit};
use crate::packagelog::Entry;
use crate::packages::{record_set, restart, root, set_version, sql, unpack};

/// Appended to `registry::SCHEMA`: the kept wheels, filled with the
/// installed ones (wheels replaced before this step are gone).
pub const SCHEMA_STEP: &str = r#"
    CREATE TABLE integrator_package_wheels (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        file TEXT NOT NULL,
        tags TEXT NOT NULL,
        top_level TEXT NOT NULL,
        size INTEGER NOT NULL,
        wheel BLOB NOT NULL,
        added_at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        PRIMARY KEY (name, version)
    );
    INSERT INTO integrator_package_wheels
        SELECT name, version, file, tags, top_level, size, wheel, added_at, actor
        FROM integrator_packages;
"#;

/// Keeps an installed package's wheel for later rollbacks.
pub fn keep(tx: &Connection, name: &str, version: &str) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT OR REPLACE INTO integrator_package_wheels
         SELECT name, version, file, tags, top_level, size, wheel, added_at, actor
         FROM integrator_packages WHERE name = ?1 AND version = ?2",
        params![name, version],
    )?;
    Ok(())
}

/// `name==version` entries of a recorded set, as (name, version).
pub fn parse_set(packages: &str) -> Vec<(String, String)> {
    serde_json::from_str::<Vec<String>>(packages)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.split_once("==").map(|(n, v)| (n.into(), v.into())))
        .collect()
}

/// The entries of a set whose wheel is not kept.
fn missing(c: &Connection, set: &[(String, String)]) -> Result<Vec<String>, rusqlite::Error> {
    let mut stmt = c.prepare(
        "SELECT count(*) FROM integrator_package_wheels WHERE name = ?1 AND version = ?2",
    )?;
    let mut out = Vec::new();
    for (n, v) in set {
        if stmt.query_row(params![n, v], |r| r.get::<_, i64>(0))? == 0 {
            out.push(format!("{n}=={v}"));
        }
    }
    Ok(out)
}

/// Every set version, newest first: its packages, the change that made
/// it, when and by whom, and whether it can be restored.
pub fn history(app: &App) -> Result<Value, RpcError> {
    app.engine
        .data
        .registry(|c| -> Result<Value, rusqlite::Error> {
            let current = set_version(c)?;
            let mut stmt = c.prepare(
                "SELECT version, packages, change, changed_at, actor
                 FROM integrator_package_sets ORDER BY version DESC",
            )?;
            let rows: Vec<(i64, String, String, i64, String)> = stmt
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for (version, packages, change, at, actor) in rows {
                let set = parse_set(&packages);
                let gone = missing(c, &set)?;
                out.push(json!({
                    "version": version, "current": version == current,
                    "packages": set.iter().map(|(n, v)| format!("{n}=={v}")).collect::<Vec<_>>(),
                    "change": change, "changed_at": at, "actor": actor,
                    "restorable": gone.is_empty(), "missing": gone,
                }));
            }
            Ok(json!({"set_version": current, "sets": out}))
        })
        .map_err(sql)
}

/// A kept wheel to install again.
struct Kept {
    name: String,
    version: String,
    file: String,
    wheel: Vec<u8>,
    /// The installed package's directory when it is already this version.
    dir: Option<String>,
}

/// Makes set `version` the package set again (a new set version), then
/// restarts the workers on it.
pub async fn rollback(app: &App, version: i64, actor: &str) -> Result<Value, RpcError> {
    let _one_at_a_time = app.deploying.lock().await;
    if let Some(kv) = app.package_log()? {
        return rollback_in_cluster(app, kv, version, actor).await;
    }
    let kept = app.engine.data.registry(|c| -> Result<Vec<Kept>, RpcError> {
        let set = kept_set(c, version, "were replaced before wheels were kept")?;
        let mut out = Vec::new();
        for (name, v) in set {
            let (file, wheel): (String, Vec<u8>) = c
                .query_row(
                    "SELECT file, wheel FROM integrator_package_wheels WHERE name = ?1 AND version = ?2",
                    params![name, v],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql)?;
            let dir = c
                .query_row(
                    "SELECT dir FROM integrator_packages WHERE name = ?1 AND version = ?2",
                    params![name, v],
                    |r| r.get(0),
                )
                .ok();
            out.push(Kept { name, version: v, file, wheel, dir });
        }
        Ok(out)
    })?;
    let base = root(&app.state_dir);
    let spec = app.pool.spec();
    let next = app.engine.data.registry(|c| set_version(c)).map_err(sql)? + 1;
    // Unpack what is not installed as it was, into fresh directories.
    let mut dirs = Vec::new();
    for k in &kept {
        let dir = match &k.dir {
            Some(d) => d.clone(),
            None => {
                let d = format!("{}-{}-{next}", k.name, k.version);
                let (python, sdk, dest, file, wheel) = (
                    spec.python.clone(),
                    spec.sdk_dir.clone(),
                    base.join(&d),
                    k.file.clone(),
                    k.wheel.clone(),
                );
                let _ = std::fs::remove_dir_all(&dest);
                tokio::task::spawn_blocking(move || unpack(&python, &sdk, &dest, &file, &wheel))
                    .await
                    .map_err(|e| RpcError::new("internal_error", e.to_string()))?
                    .map_err(|e| RpcError::new("package_refused", e))?;
                d
            }
        };
        dirs.push(dir);
    }
    let set = app
        .engine
        .data
        .registry(|c| -> Result<i64, rusqlite::Error> {
            let tx = c.unchecked_transaction()?;
            tx.execute("DELETE FROM integrator_packages", [])?;
            for (k, dir) in kept.iter().zip(&dirs) {
                tx.execute(
                    "INSERT INTO integrator_packages
                 (name, version, file, tags, top_level, size, dir, wheel, added_at, actor)
                 SELECT name, version, file, tags, top_level, size, ?3, wheel, added_at, actor
                 FROM integrator_package_wheels WHERE name = ?1 AND version = ?2",
                    params![k.name, k.version, dir],
                )?;
            }
            let set = record_set(&tx, &format!("rollback to {version}"), actor)?;
            tx.commit()?;
            Ok(set)
        });
    let set = set.map_err(sql)?;
    restart(app)?;
    tracing::info!(to = version, set, "package set rolled back");
    Ok(json!({"rolled_back_to": version, "set_version": set,
        "packages": kept.iter().map(|k| format!("{}=={}", k.name, k.version)).collect::<Vec<_>>()}))
}

/// The packages (name, version) of set `version`, or why it cannot be
/// restored: no such set, or wheels that are not kept (`why`).
fn kept_set(c: &Connection, version: i64, why: &str) -> Result<Vec<(String, String)>, RpcError> {
    let packages: String = c
        .query_row(
            "SELECT packages FROM integrator_package_sets WHERE version = ?1",
            [version],
            |r| r.get(0),
        )
        .map_err(|_| {
            RpcError::new(
                "not_found",
                format!("there is no package set version {version}"),
            )
        })?;
    let set = parse_set(&packages);
    let gone = missing(c, &set).map_err(sql)?;
    if !gone.is_empty() {
        return Err(RpcError::new(
            "not_found",
            format!(
                "package set version {version} cannot be restored: the wheels of {} {why}",
                gone.join(", ")
            ),
        ));
    }
    Ok(set)
}

/// The packages of set `version` with their kept wheels, or why it
/// cannot be restored.
fn restorable(c: &Connection, version: i64) -> Result<Vec<(Entry, Vec<u8>)>, RpcError> {
    let set = kept_set(c, version, "are not kept on this member")?;
    let mut stmt = c
        .prepare(
            "SELECT file, tags, top_level, size, wheel, added_at, actor
             FROM integrator_package_wheels WHERE name = ?1 AND version = ?2",
        )
        .map_err(sql)?;
    set.into_iter()
        .map(|(name, v)| {
            stmt.query_row(params![name, v], |r| {
                let (tags, tops): (String, String) = (r.get(1)?, r.get(2)?);
                let wheel: Vec<u8> = r.get(4)?;
                Ok((
                    Entry {
                        name: name.clone(),
                        version: v.clone(),
                        file: r.get(0)?,
                        sha256: crate::packagelog::sha256_hex(&wheel),
                        size: r.get(3)?,
                        tags: serde_json::from_str(&tags).unwrap_or(Value::Null),
                        top_level: serde_json::from_str(&tops).unwrap_or_default(),
                        added_at: r.get(5)?,
                        added_by: r.get(6)?,
                    },
                    wheel,
                ))
            })
            .map_err(sql)
        })
        .collect()
}

/// A rollback on a member of a cluster: set `version` as this member
/// recorded it, shared as the cluster's new set with its wheels.
async fn rollback_in_cluster(
    app: &App,
    kv: std::sync::Arc<alpharen_cluster::kv::ClusterKv>,
    version: i64,
    actor: &str,
) -> Result<Value, RpcError> {
    let kept = app.engine.data.registry(|c| restorable(c, version))?;
    let set: Vec<Entry> = kept.iter().map(|(e, _)| e.clone()).collect();
    let wheels = kept.into_iter().map(|(e, w)| (e.sha256, w)).collect();
    let names: Vec<String> = set
        .iter()
        .map(|e| format!("{}=={}", e.name, e.version))
        .collect();
    let edit: Edit = Box::new(move |_| Ok(set.clone()));
    let r = app
        .share_packages(kv, wheels, format!("rollback to {version}"), actor, edit)
        .await?;
    tracing::info!(
        to = version,
        set = r.set_version,
        "package set rolled back in the cluster"
    );
    Ok(
        json!({"rolled_back_to": version, "set_version": r.set_version, "packages": names, "cluster": true}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_set_reads_as_names_and_versions() {
        assert_eq!(
            parse_set(r#"["demo==1.0","requests==2.32.3"]"#),
            vec![
                ("demo".to_string(), "1.0".to_string()),
                ("requests".to_string(), "2.32.3".to_string())
            ]
        );
        assert!(parse_set("[]").is_empty());
        assert!(parse_set("not json").is_empty());
    }

    #[test]
    fn kept_wheels_make_a_set_restorable() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            &crate::project::SCHEMA_STEP
                .replace("ALTER TABLE integrator_versions ADD COLUMN files TEXT;", ""),
        )
        .unwrap();
        c.execute(
            "INSERT INTO integrator_packages VALUES ('demo', '1.0', 'demo.whl', '[]', '[\"demo\"]', 3, 'd', x'010203', 0, 'ann')",
            [],
        )
        .unwrap();
        c.execute_batch(SCHEMA_STEP).unwrap();
        let set = parse_set(r#"["demo==1.0","demo==2.0"]"#);
        assert_eq!(missing(&c, &set).unwrap(), vec!["demo==2.0".to_string()]);
        c.execute("UPDATE integrator_packages SET version = '2.0'", [])
            .unwrap();
        keep(&c, "demo", "2.0").unwrap();
        assert!(missing(&c, &set).unwrap().is_empty());
    }
}
