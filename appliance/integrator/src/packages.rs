//! Python packages: wheels uploaded to this node, one directory each under
//! `<state>/integrator/packages/`, put on the workers' `sys.path` after
//! the standard library. The set is versioned (every add or remove is a
//! new set version, kept in `integrator_package_sets`; rollback in
//! `package_sets.rs`); the wheels themselves stay in the integrator's
//! database, so a lost directory is unpacked again at start. A change restarts the workers gracefully
//! ([`crate::pool::Pool::restart`]): imported modules cannot be unloaded
//! from a running interpreter.
//!
//! On a member of a cluster, a change is the cluster's
//! (`app/shared_packages.rs`): the wheel is checked here first, then
//! shared, and every member installs it.
//!
//! The wheel is checked and unpacked by `python/alpharen/archive.py` run
//! with the workers' own python3, so the accepted tags are those of the
//! interpreter that will import the code.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use alpharen_rpc::RpcError;
use alpharen_store::{StoreError, now_unix};
use base64::Engine as _;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use crate::app::{App, Edit};
use crate::packagelog::{self, Entry};

/// The packages' directory, beside the SDK's (`sandbox.rs` lets workers
/// read it).
pub const DIR: &str = "packages";

pub(crate) fn root(state_dir: &Path) -> PathBuf {
    state_dir.join("integrator").join(DIR)
}

fn store(e: StoreError) -> RpcError {
    RpcError::new(e.code(), e.to_string())
}

pub(crate) fn sql(e: rusqlite::Error) -> RpcError {
    RpcError::new("internal_error", e.to_string())
}

/// Checks and unpacks a wheel into `dest` with the helper; its answer
/// (name, version, tags, top_level) or the refusal.
pub(crate) fn unpack(
    python: &Path,
    sdk_dir: &Path,
    dest: &Path,
    file: &str,
    wheel: &[u8],
) -> Result<Value, String> {
    use std::io::Write;
    let mut child = Command::new(python)
        .args(["-I", "-S"])
        .arg(sdk_dir.join("alpharen/archive.py"))
        .arg("wheel")
        .arg(dest)
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(wheel)
            .map_err(|e| format!("unpacking {file}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("unpacking {file}: {e}"))?;
    let answer: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "unpacking {file} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if answer["ok"] != json!(true) {
        let _ = std::fs::remove_dir_all(dest);
        return Err(answer["error"].as_str().unwrap_or("refused").to_string());
    }
    Ok(answer)
}

/// Directories of the current set, in name order (the workers' path).
fn dirs(conn: &Connection, state_dir: &Path) -> Result<Vec<(String, PathBuf)>, rusqlite::Error> {
    let mut stmt = conn.prepare("SELECT name, dir FROM integrator_packages ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            root(state_dir).join(r.get::<_, String>(1)?),
        ))
    })?;
    rows.collect()
}

/// At start: unpacks what is missing and drops directories no package
/// of the set uses (replaced or removed ones); the workers' path.
pub fn prepare(conn: &Connection, state_dir: &Path, python: &Path, sdk_dir: &Path) -> Vec<PathBuf> {
    // It exists before any worker starts: the sandbox allows what exists.
    if let Err(e) = std::fs::create_dir_all(root(state_dir)) {
        tracing::warn!(error = %e, "cannot create the packages directory");
    }
    let wanted = dirs(conn, state_dir).unwrap_or_default();
    for (name, dir) in &wanted {
        if dir.is_dir() {
            continue;
        }
        let wheel: Result<(String, Vec<u8>), _> = conn.query_row(
            "SELECT file, wheel FROM integrator_packages WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        );
        if let Err(e) = wheel
            .map_err(|e| e.to_string())
            .and_then(|(file, w)| unpack(python, sdk_dir, dir, &file, &w))
        {
            tracing::warn!(package = %name, error = %e, "cannot unpack an installed package");
        }
    }
    if let Ok(entries) = std::fs::read_dir(root(state_dir)) {
        for e in entries.flatten() {
            if !wanted.iter().any(|(_, d)| *d == e.path()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    wanted.into_iter().map(|(_, d)| d).collect()
}

/// Top-level modules of the installed packages other than `except`:
/// (package, module).
fn installed_tops(
    conn: &Connection,
    except: &str,
) -> Result<Vec<(String, String)>, rusqlite::Error> {
    let mut stmt =
        conn.prepare("SELECT name, top_level FROM integrator_packages WHERE name != ?1")?;
    let rows = stmt.query_map([except], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, tops) = row?;
        let tops: Vec<String> = serde_json::from_str(&tops).unwrap_or_default();
        out.extend(tops.into_iter().map(|t| (name.clone(), t)));
    }
    Ok(out)
}

/// Why a new package's top-level modules cannot join the set: another
/// package or an active project unit has one of them.
pub fn conflicts(
    name: &str,
    tops: &[String],
    installed: &[(String, String)],
    units: &[crate::registry::ActiveModule],
) -> Vec<String> {
    let mut out = Vec::new();
    for top in tops {
        if let Some((other, _)) = installed.iter().find(|(_, t)| t == top) {
            out.push(format!(
                "{name}: module {top} is already installed by package {other}"
            ));
        }
        for u in units {
            if u.files
                .as_ref()
                .is_some_and(|f| crate::project::top_names(f).contains(top))
            {
                out.push(format!(
                    "{name}: module {top} is a module of the deployed project {}",
                    u.file
                ));
            }
        }
    }
    out
}

/// Records the set as it is now as a new set version; returns it.
pub(crate) fn record_set(
    tx: &Connection,
    change: &str,
    actor: &str,
) -> Result<i64, rusqlite::Error> {
    let mut stmt = tx.prepare("SELECT name, version FROM integrator_packages ORDER BY name")?;
    let set: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!(
                "{}=={}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?
            ))
        })?
        .collect::<Result<_, _>>()?;
    tx.execute(
        "INSERT INTO integrator_package_sets (version, packages, change, changed_at, actor)
         VALUES ((SELECT coalesce(max(version), 0) + 1 FROM integrator_package_sets), ?1, ?2, ?3, ?4)",
        params![json!(set).to_string(), change, now_unix(), actor],
    )?;
    tx.query_row(
        "SELECT max(version) FROM integrator_package_sets",
        [],
        |r| r.get(0),
    )
}

pub(crate) fn set_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM integrator_package_sets",
        [],
        |r| r.get(0),
    )
}

/// The installed packages as set entries (with their wheels' SHA-256),
/// in name order.
pub(crate) fn local_entries(conn: &Connection) -> Result<Vec<Entry>, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT name, version, file, tags, top_level, size, wheel, added_at, actor
         FROM integrator_packages ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        let (tags, tops): (String, String) = (r.get(3)?, r.get(4)?);
        Ok(Entry {
            name: r.get(0)?,
            version: r.get(1)?,
            file: r.get(2)?,
            tags: serde_json::from_str(&tags).unwrap_or(Value::Null),
            top_level: serde_json::from_str(&tops).unwrap_or_default(),
            size: r.get(5)?,
            sha256: packagelog::sha256_hex(&r.get::<_, Vec<u8>>(6)?),
            added_at: r.get(7)?,
            added_by: r.get(8)?,
        })
    })?;
    rows.collect()
}

fn listed(e: &Entry) -> Value {
    json!({
        "name": e.name, "version": e.version, "file": e.file, "tags": e.tags,
        "size": e.size, "sha256": e.sha256, "added_at": e.added_at, "added_by": e.added_by,
    })
}

/// The package set: on a member of a cluster, the cluster's (and whether
/// this member has applied it); else this node's.
pub fn list(app: &App) -> Result<Value, RpcError> {
    let (local, local_version) = app
        .engine
        .data
        .registry(|c| -> Result<_, rusqlite::Error> { Ok((local_entries(c)?, set_version(c)?)) })
        .map_err(sql)?;
    let mine = json!({"set_version": local_version, "packages": local.iter().map(listed).collect::<Vec<_>>()});
    let Some(kv) = app.package_log()? else {
        return Ok(mine);
    };
    let last = kv
        .last_package_set()
        .map_err(|e| RpcError::new("unavailable", e.to_string()))?
        .map(|b| serde_json::from_slice::<packagelog::Record>(&b))
        .transpose()
        .map_err(|e| {
            RpcError::new(
                "internal_error",
                format!("the cluster's package set does not read: {e}"),
            )
        })?;
    let Some(r) = last else {
        // No change was made in the cluster yet: each member has its own.
        let mut out = mine;
        out["cluster"] = json!(true);
        out["applied_here"] = json!(true);
        return Ok(out);
    };
    Ok(json!({
        "set_version": r.set_version,
        "packages": r.packages.iter().map(listed).collect::<Vec<_>>(),
        "cluster": true,
        "changed_on": r.node,
        "applied_here": packagelog::plan(&r.packages, &local.iter().map(|e| packagelog::Installed {
            name: e.name.clone(), version: e.version.clone(), sha256: e.sha256.clone(),
        }).collect::<Vec<_>>()).is_empty() && local_version == r.set_version,
    }))
}

/// Checks, unpacks and installs a wheel (replacing an older upload of the
/// same package), then restarts the workers on the new set.
pub async fn add(app: &App, file: &str, wheel_b64: &str, actor: &str) -> Result<Value, RpcError> {
    let wheel = base64::engine::general_purpose::STANDARD
        .decode(wheel_b64)
        .map_err(|e| RpcError::invalid_params(format!("{file}: wheel is not base64: {e}")))?;
    if wheel.len() > crate::project::MAX_ARCHIVE {
        return Err(RpcError::invalid_params(format!(
            "{file}: {} KiB; wheels up to {} KiB are accepted",
            wheel.len() >> 10,
            crate::project::MAX_ARCHIVE >> 10
        )));
    }
    let _one_at_a_time = app.deploying.lock().await;
    let spec = app.pool.spec();
    let base = root(&app.state_dir);
    std::fs::create_dir_all(&base)
        .map_err(|e| RpcError::new("internal_error", format!("{}: {e}", base.display())))?;
    let tmp = base.join(format!(".upload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (python, sdk, dest, name_of) = (
        spec.python.clone(),
        spec.sdk_dir.clone(),
        tmp.clone(),
        file.to_string(),
    );
    let w = wheel.clone();
    let info = tokio::task::spawn_blocking(move || unpack(&python, &sdk, &dest, &name_of, &w))
        .await
        .map_err(|e| RpcError::new("internal_error", e.to_string()))?
        .map_err(|e| RpcError::new("package_refused", e))?;
    let name = info["name"].as_str().unwrap_or_default().to_string();
    let version = info["version"].as_str().unwrap_or_default().to_string();
    let tops: Vec<String> = serde_json::from_value(info["top_level"].clone()).unwrap_or_default();
    let checked = app.engine.data.registry(|c| -> Result<(), RpcError> {
        let units = crate::registry::active(c).map_err(store)?;
        let problems = conflicts(
            &name,
            &tops,
            &installed_tops(c, &name).map_err(sql)?,
            &units,
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RpcError::new("package_refused", problems.join("; ")))
        }
    });
    if let Err(e) = checked {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let cluster = app.package_log();
    if !matches!(cluster, Ok(None)) {
        let _ = std::fs::remove_dir_all(&tmp);
        let kv = cluster?.ok_or_else(|| RpcError::new("internal_error", "no cluster"))?;
        let entry = Entry {
            name: name.clone(),
            version: version.clone(),
            file: file.to_string(),
            sha256: packagelog::sha256_hex(&wheel),
            size: wheel.len() as i64,
            tags: info["tags"].clone(),
            top_level: tops,
            added_at: now_unix(),
            added_by: actor.to_string(),
        };
        let sha = entry.sha256.clone();
        let e = entry.clone();
        let edit: Edit = Box::new(move |base| Ok(packagelog::with_added(base, e.clone())));
        let r = app
            .share_packages(
                kv,
                vec![(sha.clone(), wheel)],
                format!("add {name} {version}"),
                actor,
                edit,
            )
            .await?;
        tracing::info!(package = %name, version = %version, set = r.set_version, "package installed in the cluster");
        return Ok(
            json!({"name": name, "version": version, "file": file, "tags": info["tags"],
            "sha256": sha, "set_version": r.set_version, "cluster": true}),
        );
    }
    let result = app.engine.data.registry(|c| -> Result<i64, RpcError> {
        let tx = c.unchecked_transaction().map_err(sql)?;
        let next = set_version(&tx).map_err(sql)? + 1;
        let dir = format!("{name}-{version}-{next}");
        std::fs::rename(&tmp, base.join(&dir))
            .map_err(|e| RpcError::new("internal_error", format!("install {file}: {e}")))?;
        tx.execute(
            "INSERT OR REPLACE INTO integrator_packages
             (name, version, file, tags, top_level, size, dir, wheel, added_at, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                name,
                version,
                file,
                info["tags"].to_string(),
                json!(tops).to_string(),
                wheel.len() as i64,
                dir,
                wheel,
                now_unix(),
                actor
            ],
        )
        .map_err(sql)?;
        crate::package_sets::keep(&tx, &name, &version).map_err(sql)?;
        let set = record_set(&tx, &format!("add {name} {version}"), actor).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(set)
    });
    let _ = std::fs::remove_dir_all(&tmp);
    let set = result?;
    restart(app)?;
    tracing::info!(package = %name, version = %version, set, "package installed");
    Ok(
        json!({"name": name, "version": version, "file": file, "tags": info["tags"], "set_version": set}),
    )
}

pub async fn remove(app: &App, name: &str, actor: &str) -> Result<Value, RpcError> {
    let _one_at_a_time = app.deploying.lock().await;
    if let Some(kv) = app.package_log()? {
        let n = name.to_string();
        let edit: Edit = Box::new(move |base| {
            packagelog::without(base, &n).ok_or_else(|| format!("no package is named {n:?}"))
        });
        let r = app
            .share_packages(kv, Vec::new(), format!("remove {name}"), actor, edit)
            .await?;
        return Ok(
            json!({"name": name, "removed": true, "set_version": r.set_version, "cluster": true}),
        );
    }
    let set = app.engine.data.registry(|c| -> Result<i64, RpcError> {
        let tx = c.unchecked_transaction().map_err(sql)?;
        if tx
            .execute("DELETE FROM integrator_packages WHERE name = ?1", [name])
            .map_err(sql)?
            == 0
        {
            return Err(RpcError::new(
                "not_found",
                format!("no package is named {name:?}"),
            ));
        }
        let set = record_set(&tx, &format!("remove {name}"), actor).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(set)
    })?;
    restart(app)?;
    Ok(json!({"name": name, "removed": true, "set_version": set}))
}

/// Workers on the new set: started first, the old ones retire as they
/// come back idle.
pub(crate) fn restart(app: &App) -> Result<(), RpcError> {
    let state = app.state_dir.clone();
    let dirs = app.engine.data.registry(|c| dirs(c, &state)).map_err(sql)?;
    let mut spec = app.pool.spec();
    spec.packages = dirs.into_iter().map(|(_, d)| d).collect();
    app.pool.restart(spec);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_another_package_or_a_project_has_is_refused() {
        let installed = vec![("urllib3".to_string(), "urllib3".to_string())];
        let unit = crate::registry::ActiveModule {
            module: "shop".into(),
            version: 1,
            file: "shop.zip".into(),
            source: String::new(),
            services: vec![],
            files: Some([("idna.py".to_string(), String::new())].into()),
        };
        let p = conflicts(
            "x",
            &["urllib3".into(), "idna".into(), "ok".into()],
            &installed,
            &[unit],
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("package urllib3") && p[1].contains("shop.zip"),
            "{p:?}"
        );
    }
}
