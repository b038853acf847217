//! What following one of the cluster's logs (deploys, package sets)
//! shares: this member's place in it, the wake-up of the loop that
//! applies it, the last failure a waiting change reports, and reading on
//! from the place (from the start of a log that is new).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_cluster::deploys::Batch;
use alpharen_cluster::kv::ClusterKv;
use alpharen_rpc::RpcError;
use alpharen_store::StoreError;
use rusqlite::Connection;

use crate::data::Data;

/// How often a member looks for records made on others.
const POLL: Duration = Duration::from_millis(500);

#[derive(Default)]
pub(crate) struct Follow {
    /// The last record applied here.
    applied: AtomicU64,
    wake: tokio::sync::Notify,
    error: Mutex<Option<String>>,
}

impl Follow {
    pub(crate) fn set_applied(&self, seq: u64) {
        self.applied.store(seq, Ordering::Release);
    }

    /// Waits up to `limit` for record `seq` (of `what`) to be applied
    /// here, waking the loop; otherwise says so, with the loop's last
    /// failure.
    pub(crate) async fn wait_applied(
        &self,
        seq: u64,
        limit: Duration,
        what: impl std::fmt::Display,
    ) -> Result<(), RpcError> {
        let deadline = tokio::time::Instant::now() + limit;
        while self.applied.load(Ordering::Acquire) < seq {
            self.wake.notify_one();
            if tokio::time::Instant::now() >= deadline {
                let why = self.error.lock().ok().and_then(|e| e.clone());
                return Err(RpcError::new(
                    "unavailable",
                    format!(
                        "{what} is stored in the cluster but not applied on this member yet: {}",
                        why.unwrap_or_else(|| "see `ctl logs integrator`".into())
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Runs `step` every [`POLL`] and at once when a change waits; a
    /// failure is logged once until it changes, and kept for the change
    /// that waits.
    pub(crate) async fn run<F, Fut>(&self, what: &str, mut step: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let mut last_error = String::new();
        loop {
            let result = step().await;
            match &result {
                Ok(()) => last_error.clear(),
                Err(e) if *e != last_error => {
                    tracing::warn!(error = %e, "cannot follow the cluster's {what} log; retrying");
                    last_error = e.clone();
                }
                Err(_) => {}
            }
            if let Ok(mut slot) = self.error.lock() {
                *slot = result.err();
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// Reads this member's place in a log from the registry: the log's
/// identity and the last sequence applied.
type ReadPlace = fn(&mut Connection) -> Result<Option<(String, u64)>, StoreError>;

/// The records of a log after this member's place in it (`applied`
/// reads the log's identity and the last sequence applied from the
/// registry): a log that is new (another stream) is read from its start.
/// Also where reading started.
pub(crate) async fn unapplied(
    data: &Data,
    applied: ReadPlace,
    kv: &Arc<ClusterKv>,
    what: &str,
    read: fn(&ClusterKv, u64) -> Result<Batch, alpharen_cluster::Error>,
) -> Result<(u64, Batch), String> {
    let stored = data.registry(applied).map_err(|e| e.to_string())?;
    let stored = stored.as_ref();
    let fetch = |after: u64| {
        let kv = kv.clone();
        async move {
            tokio::task::spawn_blocking(move || read(&kv, after))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
        }
    };
    let after = stored.map_or(0, |s| s.1);
    let batch = fetch(after).await?;
    let resume = crate::deploylog::resume_after(stored, &batch.stream_id);
    if resume == after {
        return Ok((after, batch));
    }
    tracing::info!("a new {what} log in the cluster; reading it from its start");
    Ok((resume, fetch(resume).await?))
}
