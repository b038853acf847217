//! The cluster-wide part of the configuration (`[integrator]` and
//! `[pgha]`) on a member of a cluster
//! (`alpharen_store::shared`, `alpharen_cluster::configlog`): a local
//! write that changes it is appended to the cluster's configuration log
//! inside the write's transaction (the [`Hook`]; the write is undone if
//! the log does not take it), and [`run`] applies the records made on
//! other members, in order, as new revisions through the store's write
//! path. A member that was down reads on from its mark when it is back.
//!
//! The link to nats-server is made on a thread of its own (it waits for
//! nats-server and JetStream) and follows `[cluster]`: none outside a
//! cluster.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alpharen_cluster::configlog::{self, Appended, ConfigLog};
use alpharen_store::shared::{Mark, Share, SharedPart};
use alpharen_store::{Config, Store, StoreError, Write};

use crate::state::NodeState;

/// How often a member looks for records made on others.
const POLL: Duration = Duration::from_secs(1);

/// What the link is made from: `[cluster]` and its secrets.
#[derive(Clone, PartialEq)]
struct Target {
    port: u16,
    password: String,
    join_secret: String,
    /// Whether the node has seeds (its nats-server is in a NATS cluster);
    /// a member without seeds is the one that made the cluster.
    seeded: bool,
    node: String,
}

impl Target {
    fn of(config: &Config, store: &Store) -> Option<Target> {
        let c = &config.cluster;
        if !c.enabled() {
            return None;
        }
        let secret = |n: &str| store.secret(n).ok().flatten();
        Some(Target {
            port: c.client_port,
            password: secret("cluster.client_password")?,
            join_secret: secret("cluster.join_secret")?,
            seeded: !c.seeds.is_empty(),
            node: config.node.hostname.clone(),
        })
    }
}

#[derive(Default)]
struct State {
    target: Option<Target>,
    generation: u64,
    log: Option<Arc<ConfigLog>>,
    /// Why the link is not up yet.
    error: Option<String>,
}

/// The link and the follower's wake-up, shared by the hook and [`run`].
#[derive(Default)]
pub(crate) struct Shared {
    state: Arc<Mutex<State>>,
    pub wake: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current(&self) -> Option<(Target, Option<Arc<ConfigLog>>)> {
        let s = self.lock();
        s.target.clone().map(|t| (t, s.log.clone()))
    }

    /// Follows `[cluster]`: connects in the background when it changes,
    /// drops the link outside a cluster.
    pub fn retarget(&self, config: &Config, store: &Store) {
        let target = Target::of(config, store);
        let mut s = self.lock();
        if s.target == target {
            return;
        }
        s.generation += 1;
        s.target = target.clone();
        // Its runtime cannot be dropped on the supervisor's runtime.
        if let Some(old) = s.log.take() {
            std::thread::spawn(move || drop(old));
        }
        let Some(t) = target else { return };
        let generation = s.generation;
        let state = self.state.clone();
        std::thread::spawn(move || {
            loop {
                let result = ConfigLog::connect(t.port, &t.password, t.seeded);
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                if s.generation != generation {
                    return;
                }
                match result {
                    Ok(log) => {
                        s.log = Some(Arc::new(log));
                        s.error = None;
                        return;
                    }
                    Err(e) => s.error = Some(e.to_string()),
                }
                drop(s);
                std::thread::sleep(Duration::from_secs(2));
            }
        });
    }
}

/// The store's hook: publishes a local change of the shared part.
pub(crate) struct Hook(pub Arc<Shared>);

impl Share for Hook {
    fn clustered(&self) -> bool {
        self.0.lock().target.is_some()
    }

    fn publish(
        &self,
        mark: Option<&Mark>,
        part: &SharedPart,
        w: &Write,
    ) -> Result<Mark, StoreError> {
        let Some((t, log)) = self.0.current() else {
            return Err(StoreError::ClusterUnavailable(
                "the node left the cluster meanwhile".into(),
            ));
        };
        let log = log.ok_or_else(|| {
            StoreError::ClusterUnavailable(
                "the node is in a cluster but cannot reach the cluster's configuration log yet (see `ctl cluster status`); [integrator] and [pgha] are changed for the whole cluster or not at all".into(),
            )
        })?;
        let meta = configlog::Meta {
            author: w.author,
            comment: w.comment,
            node: &t.node,
        };
        let unavailable =
            |e: alpharen_cluster::Error| StoreError::ClusterUnavailable(e.to_string());
        let record = configlog::record(&t.join_secret, part, &meta).map_err(unavailable)?;
        let appended = log
            .append(
                mark.map(|m| m.stream.as_str()),
                mark.map_or(0, |m| m.seq),
                &record,
            )
            .map_err(unavailable)?;
        match appended {
            Appended::Stored { stream, seq } => Ok(Mark { stream, seq }),
            Appended::Behind => {
                self.0.wake.notify_one();
                Err(StoreError::ClusterBehind)
            }
        }
    }
}

/// Follows the log every second, and at once when a write found this
/// member behind.
pub(crate) async fn run(node: Arc<NodeState>) {
    let mut last_error = String::new();
    loop {
        match follow(&node).await {
            Ok(()) => last_error.clear(),
            Err(e) if e != last_error => {
                node.logs.event(&format!(
                    "cannot follow the cluster's configuration log: {e}; retrying"
                ));
                last_error = e;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = node.shared.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

fn store_lock(node: &NodeState) -> Result<std::sync::MutexGuard<'_, Store>, String> {
    node.store
        .lock()
        .map_err(|_| "the store lock is poisoned".to_string())
}

/// Applies what this member has not applied yet; on an empty log, a
/// member with a mark (the one that made the cluster, or one that applied
/// a log before: the cluster's JetStream started anew) publishes its own
/// part as the first record. A member that just joined has none: the
/// cluster's part wins.
async fn follow(node: &Arc<NodeState>) -> Result<(), String> {
    let (t, log) = match node.shared.current() {
        Some((t, Some(log))) => (t, log),
        Some((_, None)) => {
            return match node.shared.lock().error.clone() {
                Some(e) => Err(format!("not connected: {e}")),
                None => Ok(()),
            };
        }
        None => return Ok(()),
    };
    loop {
        let mark = store_lock(node)?.shared_mark().map_err(|e| e.to_string())?;
        let mut after = mark.as_ref().map_or(0, |m| m.seq);
        let mut batch = read(&log, after).await?;
        if mark.as_ref().is_some_and(|m| m.stream != batch.stream_id) && after != 0 {
            after = 0;
            batch = read(&log, 0).await?;
        }
        if batch.last == 0 {
            if mark.is_some() {
                seed(node, &t, &log)?;
            }
            return Ok(());
        }
        let Some(&(last, _)) = batch.records.last() else {
            return Ok(());
        };
        for (seq, body) in &batch.records {
            let at = Mark {
                stream: batch.stream_id.clone(),
                seq: *seq,
            };
            apply(node, &t, &at, body).await?;
        }
        if last < batch.last && last > after {
            continue;
        }
        return Ok(());
    }
}

async fn read(
    log: &Arc<ConfigLog>,
    after: u64,
) -> Result<alpharen_cluster::deploys::Batch, String> {
    let log = log.clone();
    tokio::task::spawn_blocking(move || log.after(after))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

fn seed(node: &NodeState, t: &Target, log: &ConfigLog) -> Result<(), String> {
    let mut store = store_lock(node)?;
    let mark = store
        .seed_shared(|part| {
            let meta = configlog::Meta {
                author: "cluster",
                comment: "this member's [integrator] and [pgha] as the cluster's first",
                node: &t.node,
            };
            let un = |e: alpharen_cluster::Error| StoreError::ClusterUnavailable(e.to_string());
            let record = configlog::record(&t.join_secret, part, &meta).map_err(un)?;
            match log.append(None, 0, &record).map_err(un)? {
                Appended::Stored { stream, seq } => Ok(Mark { stream, seq }),
                Appended::Behind => Err(StoreError::ClusterBehind),
            }
        })
        .map_err(|e| e.to_string())?;
    node.logs.event(&format!(
        "cluster configuration: this member's [integrator] and [pgha] are the cluster's revision {}",
        mark.seq
    ));
    Ok(())
}

/// Applies one record as a new revision and brings the services in line;
/// a record this member cannot apply (it does not read, its secrets do
/// not open, the document would be invalid here) is skipped and said so.
async fn apply(node: &Arc<NodeState>, t: &Target, at: &Mark, body: &[u8]) -> Result<(), String> {
    let record = serde_json::from_slice::<configlog::Record>(body)
        .map_err(|e| format!("it does not read: {e}"))
        .and_then(|r| {
            configlog::open(&t.join_secret, &r)
                .map(|p| (r, p))
                .map_err(|e| e.to_string())
        });
    let (record, part) = match record {
        Ok(x) => x,
        Err(e) => return skip(node, at, &e),
    };
    let comment = format!(
        "cluster revision {} from {}: {}",
        at.seq, record.node, record.comment
    );
    let w = Write::new(&record.author, &comment);
    let done = {
        let mut store = store_lock(node)?;
        let old = store.current_config().map_err(|e| e.to_string())?;
        store
            .apply_shared(at, &part, &w)
            .map(|a| a.map(|a| (old, a)))
            .and_then(|x| match x {
                Some((old, a)) => Ok(Some((old, a, store.current_config()?))),
                None => Ok(None),
            })
    };
    match done {
        Ok(Some((old, a, new))) => {
            if a.outcome.revision.is_some() {
                node.reconcile(&old, &new, &a.outcome.changed).await;
            }
            node.secrets_changed(&new, &a.secrets).await;
            if record.node != t.node {
                node.logs.event(&format!(
                    "cluster configuration: applied revision {} made on {} by {}",
                    at.seq, record.node, record.author
                ));
            }
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(StoreError::Invalid(p)) => skip(
            node,
            at,
            &format!(
                "it is not valid on this member: {}",
                alpharen_store::config::render_problems(&p)
            ),
        ),
        Err(e) => Err(e.to_string()),
    }
}

fn skip(node: &NodeState, at: &Mark, why: &str) -> Result<(), String> {
    node.logs.event(&format!(
        "cluster configuration: revision {} not applied on this member ({why}); this member keeps its previous [integrator] and [pgha]",
        at.seq
    ));
    store_lock(node)?.skip_shared(at).map_err(|e| e.to_string())
}
