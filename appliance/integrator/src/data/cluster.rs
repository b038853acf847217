//! The link to the cluster's KV bucket when the node is in a cluster
//! (`[cluster]`): KV calls then go there, so every member reads what any
//! member wrote. Connecting waits for nats-server and JetStream, so it
//! runs on a thread of its own and retries every 2 s; until it is up, KV
//! calls fail with a clear error rather than write to the node's own
//! SQLite, which would split the data.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_cluster::kv::ClusterKv;

use super::DataError;

/// Where the KV lives now.
#[derive(Default)]
pub struct Link {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// `(client_port, password, clustered)` wanted, with a generation
    /// that changes with it (a connecting thread of an older one gives
    /// up). `clustered` changes when a cluster of one gets its second
    /// member: its nats-server restarts with another JetStream store.
    target: Option<(u16, String, bool)>,
    generation: u64,
    kv: Option<Arc<ClusterKv>>,
}

impl Link {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bucket to use: `None` outside a cluster.
    pub fn kv(&self) -> Result<Option<Arc<ClusterKv>>, DataError> {
        let s = self.lock();
        match (&s.target, &s.kv) {
            (None, _) => Ok(None),
            (Some(_), Some(kv)) => Ok(Some(kv.clone())),
            (Some(_), None) => Err(DataError::Cluster(
                "the node is in a cluster but the cluster's KV is not reachable yet; see `ctl cluster status`"
                    .into(),
            )),
        }
    }

    /// Whether the node is in a cluster (connected to its KV or not).
    pub fn clustered(&self) -> bool {
        self.lock().target.is_some()
    }

    /// Follows the configuration: connects (in the background) when the
    /// target changes, drops the link outside a cluster.
    pub fn set_target(&self, target: Option<(u16, String, bool)>) {
        let mut s = self.lock();
        if s.target == target {
            return;
        }
        s.generation += 1;
        s.target = target.clone();
        // Its runtime cannot be dropped on the integrator's runtime (it
        // panics there): the last handle goes on a thread of its own.
        if let Some(old) = s.kv.take() {
            std::thread::spawn(move || drop(old));
        }
        let Some((port, password, clustered)) = target else {
            return;
        };
        let generation = s.generation;
        let state = self.state.clone();
        std::thread::spawn(move || {
            let mut logged = false;
            loop {
                let result = ClusterKv::connect(port, &password, clustered);
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                if s.generation != generation {
                    return;
                }
                match result {
                    Ok(kv) => {
                        s.kv = Some(Arc::new(kv));
                        tracing::info!(port, "KV on the cluster's bucket");
                        return;
                    }
                    Err(e) if !logged => {
                        tracing::warn!(error = %e, "cluster KV not reachable yet; retrying every 2 s");
                        logged = true;
                    }
                    Err(_) => {}
                }
                drop(s);
                std::thread::sleep(Duration::from_secs(2));
            }
        });
    }
}
