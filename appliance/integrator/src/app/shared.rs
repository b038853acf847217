//! Deploys on a member of a cluster: each deploy, rollback and undeploy
//! is appended to the cluster's deploy log, and every member, this one
//! included, applies the log in order to its own registry
//! ([`crate::deploylog`]). A member that was down reads on from where it
//! stopped when it is back.

use std::sync::Arc;
use std::time::Duration;

use alpharen_cluster::kv::ClusterKv;
use alpharen_rpc::RpcError;

use super::{App, follow, rpc_store};
use crate::deploylog::{self, Record};

/// How long a deploy waits for this member to apply its own record.
const APPLY_WAIT: Duration = Duration::from_secs(15);

fn unavailable(e: impl std::fmt::Display) -> RpcError {
    RpcError::new("unavailable", e.to_string())
}

impl App {
    /// The cluster's link when the node is in one: `Ok(None)` outside a
    /// cluster, an error while the link is not up (never a deploy to this
    /// node alone, which would split the versions).
    pub(super) fn cluster_log(&self) -> Result<Option<Arc<ClusterKv>>, RpcError> {
        self.engine.data.cluster.kv().map_err(unavailable)
    }

    /// Appends `record`, numbered after the module's last record and this
    /// member's highest version ([`deploylog::stamp`]), waits until this
    /// member has applied it, and returns it as stored.
    pub(super) async fn share(
        &self,
        kv: Arc<ClusterKv>,
        record: Record,
    ) -> Result<Record, RpcError> {
        let module = record.module.clone();
        let local_max = self
            .engine
            .data
            .registry(|c| deploylog::local_max(c, &module))
            .map_err(rpc_store)?;
        let m = module.clone();
        let (seq, body) = tokio::task::spawn_blocking(move || {
            kv.append_deploy(&m, |prev| {
                let prev: Option<Record> = prev
                    .map(serde_json::from_slice)
                    .transpose()
                    .map_err(|e| format!("the module's last record does not read: {e}"))?;
                serde_json::to_vec(&deploylog::stamp(&record, prev.as_ref(), local_max))
                    .map_err(|e| e.to_string())
            })
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        let record: Record = serde_json::from_slice(&body).map_err(unavailable)?;
        self.deploy_log
            .wait_applied(seq, APPLY_WAIT, format!("{module} v{}", record.version))
            .await?;
        Ok(record)
    }

    /// Applies the records of the cluster's log this member has not
    /// applied yet, then loads the new code. Outside a cluster, or while
    /// the link is down, does nothing.
    async fn follow_log(&self) -> Result<(), String> {
        let Ok(Some(kv)) = self.engine.data.cluster.kv() else {
            return Ok(());
        };
        loop {
            let (after, batch) = follow::unapplied(
                &self.engine.data,
                deploylog::applied,
                &kv,
                "deploy",
                ClusterKv::deploys_after,
            )
            .await?;
            let Some(&(last, _)) = batch.records.last() else {
                self.deploy_log.set_applied(after);
                return Ok(());
            };
            let me = self.node_name();
            for (seq, body) in &batch.records {
                let record = serde_json::from_slice::<Record>(body);
                if let Err(e) = &record {
                    tracing::warn!(seq, error = %e, "a record of the deploy log does not read; skipped");
                }
                let record = record.ok();
                self.engine
                    .data
                    .registry(|c| deploylog::apply(c, &batch.stream_id, *seq, record.as_ref()))
                    .map_err(|e| e.to_string())?;
                if let Some(r) = record.filter(|r| r.node != me) {
                    tracing::info!(module = %r.module, version = r.version, op = ?r.op,
                        from = %r.node, "applied a deploy made on another member");
                }
            }
            self.publish_code().map_err(|e| e.to_string())?;
            self.deploy_log.set_applied(last);
        }
    }
}

/// Follows the cluster's deploy log every 0.5 s, and at once when a
/// deploy on this member waits for its record.
pub async fn deploy_log_loop(app: Arc<App>) {
    app.deploy_log.run("deploy", || app.follow_log()).await;
}
