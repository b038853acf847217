//! pgha in a cluster: `pg_controller` and `backup_controller` are
//! singletons. Each holds a lease of the cluster ([`alpharen_cluster::lease`]);
//! only the member holding it runs the controller, and it stops the
//! moment its lease runs out. The state a successor resumes from (each
//! group's last master and failover, the backup history) lives in the
//! lease's state bucket, written under the holder's epoch. Outside a
//! cluster nothing here applies: both controllers run, as before.

use std::sync::Arc;

use alpharen_cluster::lease::Read;
use alpharen_cluster::singletons::{Leases, Singletons};
use alpharen_store::View;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub const PG: &str = "pg_controller";
pub const BACKUP: &str = "backup_controller";

/// Where a running controller keeps its state in a cluster: the state
/// bucket, under the epoch of the lease it runs with (a member that lost
/// the lease cannot overwrite its successor's state).
#[derive(Clone)]
pub struct Fence {
    pub leases: Arc<Leases>,
    pub epoch: u64,
}

impl Fence {
    /// A value the controller (or its predecessor) stored; `None` when
    /// never stored or unreadable (logged).
    pub async fn get<T: DeserializeOwned>(&self, scope: &str, key: &str) -> Option<T> {
        match self.leases.state(scope, key).await {
            Ok(v) => v.and_then(|v| serde_json::from_value(v).ok()),
            Err(e) => {
                tracing::warn!(scope, key, error = %e, "cluster state not read");
                None
            }
        }
    }

    /// Stores a value; whether it was stored.
    pub async fn set<T: Serialize>(&self, scope: &str, key: &str, value: &T) -> bool {
        let v = serde_json::to_value(value).unwrap_or(Value::Null);
        match self.leases.set_state(scope, key, self.epoch, v).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(
                    scope,
                    key,
                    epoch = self.epoch,
                    "cluster state not stored: a later holder wrote it"
                );
                false
            }
            Err(e) => {
                tracing::warn!(scope, key, error = %e, "cluster state not stored");
                false
            }
        }
    }
}

/// Whether a controller may run here now.
#[derive(Clone)]
pub enum Gate {
    /// Not in a cluster: it always runs.
    Alone,
    /// This member holds its lease.
    Held(Fence),
    /// Another member holds it, or nobody can be seen to.
    Elsewhere,
}

impl Gate {
    pub fn runs(&self) -> bool {
        !matches!(self, Gate::Elsewhere)
    }

    pub fn fence(&self) -> Option<Fence> {
        match self {
            Gate::Held(f) => Some(f.clone()),
            _ => None,
        }
    }

    /// What tells two gates apart for a restart: a new epoch is a new run.
    pub fn key(&self) -> Option<Option<u64>> {
        match self {
            Gate::Alone => None,
            Gate::Held(f) => Some(Some(f.epoch)),
            Gate::Elsewhere => Some(None),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Conn {
    port: u16,
    password: String,
    clustered: bool,
    me: String,
}

/// The node's link to the cluster's leases, following `[cluster]`.
#[derive(Default)]
pub struct Link {
    on: Option<(Conn, Singletons)>,
}

impl Link {
    /// Starts, restarts or stops contending to match the view.
    pub async fn follow(&mut self, view: &View) {
        let c = &view.config.cluster;
        let want = c.enabled().then(|| Conn {
            port: c.client_port,
            // Without it nats-server refuses the connection: the
            // controllers then run nowhere rather than on every member.
            password: view
                .secret("cluster.client_password")
                .unwrap_or_default()
                .to_string(),
            clustered: !c.seeds.is_empty(),
            me: view.config.node.hostname.clone(),
        });
        if self.on.as_ref().map(|(c, _)| c) == want.as_ref() {
            return;
        }
        if let Some((_, old)) = self.on.take() {
            old.stop().await;
        }
        self.on = want.map(|c| {
            tracing::info!(member = %c.me, "in a cluster: the controllers run where their lease is held");
            let s = Singletons::start(c.port, c.password.clone(), c.clustered, &c.me, &[PG, BACKUP]);
            (c, s)
        });
    }

    pub fn gate(&self, name: &str) -> Gate {
        let Some((_, s)) = &self.on else {
            return Gate::Alone;
        };
        match (s.held(name), s.leases()) {
            (Some(epoch), Some(leases)) => Gate::Held(Fence { leases, epoch }),
            _ => Gate::Elsewhere,
        }
    }

    /// The leases, in a cluster once connected.
    pub fn leases(&self) -> Option<Arc<Leases>> {
        self.on.as_ref().and_then(|(_, s)| s.leases())
    }

    /// Returns when a gate may have changed; never outside a cluster.
    pub async fn changed(&mut self) {
        match &mut self.on {
            Some((_, s)) => s.changed().await,
            None => std::future::pending().await,
        }
    }

    /// Where each controller runs, for `pgha.status`; `null` outside a
    /// cluster.
    pub async fn shown(&self) -> Value {
        let Some((c, s)) = &self.on else {
            return Value::Null;
        };
        let mut out = serde_json::Map::new();
        for name in [PG, BACKUP] {
            // `known` false: the lease could not be read just now (no
            // quorum, an election), which is not "nobody holds it".
            let (holder, known) = match s.leases() {
                Some(l) => match l.read(name).await {
                    Read::Found { lease, .. } if !lease.holder.is_empty() => {
                        (Some(lease.holder), true)
                    }
                    Read::Unknown => (None, false),
                    _ => (None, true),
                },
                None => (None, false),
            };
            out.insert(
                name.into(),
                json!({ "here": s.held(name).is_some(), "epoch": s.held(name), "holder": holder, "holder_known": known, "member": c.me }),
            );
        }
        out.into()
    }

    /// Releases the leases this member holds (a clean stop).
    pub async fn stop(self) {
        if let Some((_, s)) = self.on {
            s.stop().await;
        }
    }
}
