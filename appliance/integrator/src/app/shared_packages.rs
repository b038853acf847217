//! Installed packages on a member of a cluster: an add, remove or
//! rollback stores its wheels in the cluster's object store and appends
//! the whole new set to the cluster's package log; every member, this one
//! included, applies the log in order ([`crate::packagelog`]): it fetches
//! the wheels it lacks by SHA-256, unpacks them all, and only then swaps
//! its set in one transaction, so a wheel that fails leaves the member on
//! its previous set, whole. A member that was down reads on from where it
//! stopped when it is back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_cluster::kv::ClusterKv;
use alpharen_rpc::RpcError;
use alpharen_store::now_unix;
use rusqlite::params;
use serde_json::json;

use super::{App, follow};
use crate::packagelog::{self, Entry, Record};
use crate::packages::{local_entries, restart, root, set_version, sql, unpack};

/// How long a change may take in all, storing its wheels, appending its
/// set and waiting for this member to apply it: less than the 60 s the
/// supervisor and the web give a call, so that the caller hears where it
/// stopped instead of "no answer".
const ANSWER_WITHIN: Duration = Duration::from_secs(45);

fn unavailable(e: impl std::fmt::Display) -> RpcError {
    RpcError::new("unavailable", e.to_string())
}

/// A change's wheels offered in memory while it is made; gone when it
/// ends, whichever way.
struct Offered<'a>(&'a Mutex<HashMap<String, Vec<u8>>>);

impl<'a> Offered<'a> {
    fn new(map: &'a Mutex<HashMap<String, Vec<u8>>>, wheels: &[(String, Vec<u8>)]) -> Self {
        if let Ok(mut m) = map.lock() {
            m.extend(wheels.iter().cloned());
        }
        Offered(map)
    }
}

impl Drop for Offered<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

/// A set change: the set it makes from the cluster's current one, or why
/// it cannot (`not_found`).
pub(crate) type Edit = Box<dyn Fn(&[Entry]) -> Result<Vec<Entry>, String> + Send + Sync>;

impl App {
    /// The cluster's link when the node is in one (`Ok(None)` outside).
    pub(crate) fn package_log(&self) -> Result<Option<Arc<ClusterKv>>, RpcError> {
        self.cluster_log()
    }

    /// Stores `wheels` (SHA-256, bytes) in the cluster, appends the set
    /// `edit` makes of the cluster's current one (this member's own set
    /// when the cluster has none yet), and waits until this member has
    /// applied it.
    pub(crate) async fn share_packages(
        &self,
        kv: Arc<ClusterKv>,
        wheels: Vec<(String, Vec<u8>)>,
        change: String,
        actor: &str,
        edit: Edit,
    ) -> Result<Record, RpcError> {
        let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
        let left = move || deadline.saturating_duration_since(tokio::time::Instant::now());
        let _offered = Offered::new(&self.offered_wheels, &wheels);
        let k = kv.clone();
        tokio::task::spawn_blocking(move || {
            wheels
                .iter()
                .try_for_each(|(sha, w)| k.put_wheel(sha, w, left()))
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        let (local, local_max) = self.engine.data.registry(|c| -> Result<_, RpcError> {
            Ok((local_entries(c).map_err(sql)?, set_version(c).map_err(sql)?))
        })?;
        let (actor, node) = (actor.to_string(), self.node_name());
        let (seq, body) = tokio::task::spawn_blocking(move || {
            kv.append_package_set(|prev| {
                let prev: Option<Record> = prev
                    .map(serde_json::from_slice)
                    .transpose()
                    .map_err(|e| format!("the cluster's last package set does not read: {e}"))?;
                let base = prev.as_ref().map_or(&local, |p| &p.packages);
                let record = Record {
                    set_version: packagelog::next_set_version(prev.as_ref(), local_max),
                    packages: edit(base)?,
                    change: change.clone(),
                    actor: actor.clone(),
                    node: node.clone(),
                    at: now_unix(),
                };
                serde_json::to_vec(&record).map_err(|e| e.to_string())
            })
        })
        .await
        .map_err(unavailable)?
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("no package is named") {
                RpcError::new("not_found", text)
            } else {
                unavailable(text)
            }
        })?;
        let record: Record = serde_json::from_slice(&body).map_err(unavailable)?;
        self.package_log
            .wait_applied(seq, left(), format!("package set {}", record.set_version))
            .await?;
        Ok(record)
    }

    /// Applies the package sets of the cluster's log this member has not
    /// applied yet. Outside a cluster, or while the link is down, does
    /// nothing.
    async fn follow_packages(&self) -> Result<(), String> {
        let Ok(Some(kv)) = self.engine.data.cluster.kv() else {
            return Ok(());
        };
        loop {
            let (after, batch) = follow::unapplied(
                &self.engine.data,
                packagelog::applied,
                &kv,
                "package",
                ClusterKv::package_sets_after,
            )
            .await?;
            if batch.records.is_empty() {
                self.package_log.set_applied(after);
                return Ok(());
            }
            for (seq, body) in &batch.records {
                match serde_json::from_slice::<Record>(body) {
                    Ok(r) => self.apply_set(&kv, &batch.stream_id, *seq, &r).await?,
                    Err(e) => {
                        tracing::warn!(seq, error = %e, "a record of the package log does not read; skipped");
                        let id = batch.stream_id.clone();
                        self.engine
                            .data
                            .registry(|c| packagelog::mark(c, &id, *seq))
                            .map_err(|e| e.to_string())?;
                    }
                }
                self.package_log.set_applied(*seq);
            }
        }
    }

    /// Makes `r` this member's set: unpacks every wheel it lacks into a
    /// fresh directory (all or none), then swaps the set, records the set
    /// version and moves the mark in one transaction, then restarts the
    /// workers if anything changed.
    async fn apply_set(
        &self,
        kv: &Arc<ClusterKv>,
        stream: &str,
        seq: u64,
        r: &Record,
    ) -> Result<(), String> {
        let installed = self
            .engine
            .data
            .registry(|c| local_entries(c))
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| packagelog::Installed {
                name: e.name,
                version: e.version,
                sha256: e.sha256,
            })
            .collect::<Vec<_>>();
        let plan = packagelog::plan(&r.packages, &installed);
        let base = root(&self.state_dir);
        std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        let mut unpacked: Vec<(&Entry, String, Vec<u8>)> = Vec::new();
        let undo = |done: &[(&Entry, String, Vec<u8>)]| {
            for (_, d, _) in done {
                let _ = std::fs::remove_dir_all(base.join(d));
            }
        };
        for e in &plan.install {
            let dir = format!("{}-{}-{}", e.name, e.version, r.set_version);
            match self.fetch_and_unpack(kv, e, base.join(&dir)).await {
                Ok(wheel) => unpacked.push((e, dir, wheel)),
                Err(why) => {
                    undo(&unpacked);
                    let short = e.sha256.get(..12).unwrap_or(&e.sha256);
                    return Err(format!(
                        "package set {} (made on {}) cannot be installed on this member; it keeps set {}: {} {} ({}, sha256 {short}…): {why}",
                        r.set_version,
                        r.node,
                        self.engine.data.registry(|c| set_version(c)).unwrap_or(0),
                        e.name,
                        e.version,
                        e.file
                    ));
                }
            }
        }
        let listed: Vec<String> = r
            .packages
            .iter()
            .map(|e| format!("{}=={}", e.name, e.version))
            .collect();
        let swapped = self
            .engine
            .data
            .registry(|c| -> Result<(), rusqlite::Error> {
                let tx = c.unchecked_transaction()?;
                for name in &plan.remove {
                    tx.execute("DELETE FROM integrator_packages WHERE name = ?1", [name])?;
                }
                for (e, dir, wheel) in &unpacked {
                    tx.execute(
                        "INSERT OR REPLACE INTO integrator_packages
                         (name, version, file, tags, top_level, size, dir, wheel, added_at, actor)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        params![
                            e.name,
                            e.version,
                            e.file,
                            e.tags.to_string(),
                            json!(e.top_level).to_string(),
                            e.size,
                            dir,
                            wheel,
                            e.added_at,
                            e.added_by
                        ],
                    )?;
                    crate::package_sets::keep(&tx, &e.name, &e.version)?;
                }
                tx.execute(
                    "INSERT OR REPLACE INTO integrator_package_sets
                     (version, packages, change, changed_at, actor) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        r.set_version,
                        json!(listed).to_string(),
                        format!("{} (on {})", r.change, r.node),
                        r.at,
                        r.actor
                    ],
                )?;
                packagelog::mark(&tx, stream, seq)?;
                tx.commit()
            })
            .map_err(|e| e.to_string());
        if let Err(e) = swapped {
            undo(&unpacked);
            return Err(format!("package set {}: {e}", r.set_version));
        }
        if !plan.is_empty() {
            restart(self).map_err(|e| e.message)?;
            tracing::info!(set = r.set_version, change = %r.change, from = %r.node,
                installed = unpacked.len(), removed = plan.remove.len(), "applied the cluster's package set");
        }
        Ok(())
    }

    /// The wheel of `e` from the cluster (checked against its SHA-256),
    /// unpacked into `dest`.
    async fn fetch_and_unpack(
        &self,
        kv: &Arc<ClusterKv>,
        e: &Entry,
        dest: PathBuf,
    ) -> Result<Vec<u8>, String> {
        let here = self
            .offered_wheels
            .lock()
            .ok()
            .and_then(|o| o.get(&e.sha256).cloned());
        let wheel = match here {
            Some(w) => w,
            None => {
                let (k, sha, size) = (kv.clone(), e.sha256.clone(), e.size.max(0) as u64);
                tokio::task::spawn_blocking(move || k.wheel(&sha, size))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?
            }
        };
        let got = packagelog::sha256_hex(&wheel);
        if got != e.sha256 {
            return Err(format!("the wheel read from the cluster has SHA-256 {got}"));
        }
        let spec = self.pool.spec();
        let (file, w) = (e.file.clone(), wheel.clone());
        let _ = std::fs::remove_dir_all(&dest);
        tokio::task::spawn_blocking(move || unpack(&spec.python, &spec.sdk_dir, &dest, &file, &w))
            .await
            .map_err(|e| e.to_string())??;
        Ok(wheel)
    }
}

/// Follows the cluster's package log every 0.5 s, and at once when a
/// change on this member waits for its record. The last failure is kept
/// for the change that waits on it.
pub async fn package_log_loop(app: Arc<App>) {
    app.package_log
        .run("package", || app.follow_packages())
        .await;
}
