//! The I/O of the cluster's leases ([`crate::lease`]): the buckets
//! `ar_leases` and `ar_lease_state` through this node's nats-server, the
//! task that acquires and renews a member's leases, and the view of them
//! for `cluster status`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::StreamMessage};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Error;
use crate::kv::{Bucket, encode_key, write_if};
use crate::lease::{BUCKET, Lease, Machine, RENEW_EVERY, Read, STATE, Step, TTL};

/// One read or write of the bucket: a renewal that takes longer is
/// retried, well before the lease runs out.
const IO_LIMIT: Duration = Duration::from_secs(3);

/// The leases and their state through this node's nats-server.
pub struct Leases {
    js: jetstream::Context,
    leases: jetstream::stream::Stream,
    state: jetstream::stream::Stream,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster leases: {e}"))
}

/// A stored state value with the epoch of the holder that wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    epoch: u64,
    value: serde_json::Value,
}

impl Leases {
    /// Connects ([`crate::kv::client`]) and opens both buckets, making
    /// them if they are missing.
    pub async fn connect(
        client_port: u16,
        password: &str,
        clustered: bool,
    ) -> Result<Leases, Error> {
        Leases::open(crate::kv::client(client_port, password, clustered).await?).await
    }

    pub(crate) async fn open(js: jetstream::Context) -> Result<Leases, Error> {
        for b in [BUCKET, STATE] {
            crate::nats::bucket(&js, b, 0).await.map_err(err)?;
        }
        let leases = js.get_stream(format!("KV_{BUCKET}")).await.map_err(err)?;
        let state = js.get_stream(format!("KV_{STATE}")).await.map_err(err)?;
        Ok(Leases { js, leases, state })
    }

    fn bucket(&self) -> Bucket<'_> {
        Bucket {
            name: BUCKET,
            stream: &self.leases,
        }
    }

    /// The lease `name` as the stream's leader has it.
    pub async fn read(&self, name: &str) -> Read {
        let subject = format!("$KV.{BUCKET}.{name}");
        let got = tokio::time::timeout(
            IO_LIMIT,
            self.leases.get_last_raw_message_by_subject(&subject),
        )
        .await;
        match got {
            Ok(Ok(m)) => match serde_json::from_slice::<Lease>(&m.payload) {
                Ok(lease) => Read::Found {
                    rev: m.sequence,
                    lease,
                },
                Err(e) => {
                    tracing::warn!(lease = name, error = %e, "unreadable lease; taken as absent");
                    Read::Absent
                }
            },
            Ok(Err(e))
                if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Read::Absent
            }
            Ok(Err(_)) | Err(_) => Read::Unknown,
        }
    }

    /// Writes `lease` if its revision is still `expect`; the new revision,
    /// `Ok(None)` when another write came first.
    pub async fn write(
        &self,
        name: &str,
        expect: Option<u64>,
        lease: &Lease,
    ) -> Result<Option<u64>, Error> {
        let body = serde_json::to_vec(lease).map_err(err)?;
        let is_expected = |m: Option<&StreamMessage>| m.map(|m| m.sequence) == expect;
        tokio::time::timeout(
            IO_LIMIT,
            write_if(&self.js, self.bucket(), name, Some(body), is_expected),
        )
        .await
        .map_err(|_| err(format!("no answer within {} s", IO_LIMIT.as_secs())))?
    }

    /// Every lease by name.
    pub async fn list(&self) -> Result<Vec<(String, Lease)>, Error> {
        let prefix = format!("$KV.{BUCKET}.");
        let mut subjects = self
            .leases
            .info_with_subjects(format!("{prefix}>"))
            .await
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(entry) = subjects.next().await {
            let (subject, _) = entry.map_err(err)?;
            let Some(name) = subject.strip_prefix(&prefix) else {
                continue;
            };
            if let Read::Found { lease, .. } = self.read(name).await {
                out.push((name.to_string(), lease));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// A state value of singleton `scope`, as its last holder left it.
    pub async fn state(&self, scope: &str, key: &str) -> Result<Option<serde_json::Value>, Error> {
        let subject = format!("$KV.{STATE}.{}", encode_key(scope, key));
        match self.state.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => Ok(serde_json::from_slice::<Stored>(&m.payload)
                .ok()
                .map(|s| s.value)),
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok(None)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Stores a state value for the holder of `epoch`: refused (`false`)
    /// when a holder of a later epoch wrote it, so a member that lost
    /// the lease cannot overwrite its successor's state.
    pub async fn set_state(
        &self,
        scope: &str,
        key: &str,
        epoch: u64,
        value: serde_json::Value,
    ) -> Result<bool, Error> {
        let body = serde_json::to_vec(&Stored { epoch, value }).map_err(err)?;
        let not_newer = |m: Option<&StreamMessage>| {
            m.and_then(|m| serde_json::from_slice::<Stored>(&m.payload).ok())
                .is_none_or(|s| s.epoch <= epoch)
        };
        let into = Bucket {
            name: STATE,
            stream: &self.state,
        };
        let k = encode_key(scope, key);
        Ok(tokio::time::timeout(
            IO_LIMIT,
            write_if(&self.js, into, &k, Some(body), not_newer),
        )
        .await
        .map_err(|_| err(format!("no answer within {} s", IO_LIMIT.as_secs())))??
        .is_some())
    }

    /// Gives the lease up (clean stop) so another member takes it at once.
    async fn release(&self, name: &str, rev: u64, epoch: u64) {
        let lease = Lease {
            holder: String::new(),
            epoch,
            renewed_ms: crate::members::now_ms(),
        };
        if let Err(e) = self.write(name, Some(rev), &lease).await {
            tracing::warn!(lease = name, error = %e, "lease not released; it runs out instead");
        }
    }
}

/// The singletons for `cluster status`: each lease's holder, epoch and
/// seconds since its last renewal; a lease not renewed for [`TTL`] (by
/// this member's wall clock, for display only) shows no holder.
pub(crate) async fn shown(js: &jetstream::Context) -> Result<serde_json::Value, Error> {
    let leases = Leases::open(js.clone()).await?;
    let now = crate::members::now_ms();
    let mut out = serde_json::Map::new();
    for (name, l) in leases.list().await? {
        let age_s = (now - l.renewed_ms).max(0) / 1000;
        let live = !l.holder.is_empty() && now - l.renewed_ms <= TTL.as_millis() as i64;
        out.insert(
            name,
            serde_json::json!({
                "holder": if live { Some(l.holder) } else { None },
                "epoch": l.epoch,
                "renewed_s_ago": age_s,
            }),
        );
    }
    Ok(out.into())
}

/// The epoch held and until when, per lease.
type HeldMap = std::collections::BTreeMap<String, (u64, Instant)>;

/// This member's leases: one task connects to nats-server (again and
/// again until it can) and then acquires and renews each lease, and says
/// which it holds.
pub struct Singletons {
    me: String,
    rx: watch::Receiver<HeldMap>,
    conn: Arc<tokio::sync::OnceCell<Arc<Leases>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Singletons {
    /// Starts contending for `names` as member `me` (its node name).
    pub fn start(
        client_port: u16,
        password: String,
        clustered: bool,
        me: &str,
        names: &[&str],
    ) -> Singletons {
        let (tx, rx) = watch::channel(HeldMap::new());
        let conn = Arc::new(tokio::sync::OnceCell::new());
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let task = tokio::spawn({
            let (conn, me) = (conn.clone(), me.to_string());
            async move {
                let mut said = String::new();
                let leases = loop {
                    match Leases::connect(client_port, &password, clustered).await {
                        Ok(l) => break Arc::new(l),
                        Err(e) => {
                            let e = e.to_string();
                            if e != said {
                                tracing::warn!(error = %e, "leases not reachable yet; acting nowhere");
                                said = e;
                            }
                            tokio::time::sleep(RENEW_EVERY).await;
                        }
                    }
                };
                let _ = conn.set(leases.clone());
                let tx = Arc::new(tx);
                let all = names
                    .into_iter()
                    .map(|n| hold(leases.clone(), n, me.clone(), tx.clone()));
                futures_util::future::join_all(all).await;
            }
        });
        Singletons {
            me: me.to_string(),
            rx,
            conn,
            task,
        }
    }

    /// The epoch of lease `name` this member holds now; `None` from the
    /// instant its last renewal runs out, whatever the lease task is doing.
    pub fn held(&self, name: &str) -> Option<u64> {
        let now = Instant::now();
        self.rx
            .borrow()
            .get(name)
            .filter(|(_, until)| now < *until)
            .map(|(e, _)| *e)
    }

    /// Returns when [`Singletons::held`] may have changed: a lease taken
    /// or lost, or the earliest held one running out.
    pub async fn changed(&mut self) {
        let until = self.rx.borrow().values().map(|(_, u)| *u).min();
        tokio::select! {
            r = self.rx.changed() => {
                if r.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            _ = async {
                match until {
                    Some(u) => tokio::time::sleep_until(u).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }

    /// The connection, once made: for the singletons' state.
    pub fn leases(&self) -> Option<Arc<Leases>> {
        self.conn.get().cloned()
    }

    /// Stops renewing and releases the leases this member holds, so
    /// another member takes over at once (a clean stop need not wait
    /// for [`TTL`]).
    pub async fn stop(self) {
        self.task.abort();
        let held: Vec<String> = self.rx.borrow().keys().cloned().collect();
        let Some(leases) = self.conn.get() else {
            return;
        };
        for name in held {
            if let Read::Found { rev, lease } = leases.read(&name).await
                && lease.holder == self.me
            {
                leases.release(&name, rev, lease.epoch).await;
            }
        }
    }
}

async fn hold(leases: Arc<Leases>, name: String, me: String, tx: Arc<watch::Sender<HeldMap>>) {
    let mut m = Machine::new(&me);
    let mut was = None;
    loop {
        let now = Instant::now();
        let read = if m.needs_read(now) {
            leases.read(&name).await
        } else {
            Read::Unknown
        };
        let step = m.step(Instant::now(), &read);
        let write = match step {
            Step::Acquire { expect, epoch } => Some((expect, epoch)),
            Step::Renew { rev, epoch } => Some((Some(rev), epoch)),
            Step::Wait => None,
        };
        if let Some((expect, epoch)) = write {
            let lease = Lease {
                holder: me.clone(),
                epoch,
                renewed_ms: crate::members::now_ms(),
            };
            let sent_at = Instant::now();
            match leases.write(&name, expect, &lease).await {
                Ok(Some(rev)) => m.written(&step, sent_at, rev),
                Ok(None) => m.refused(),
                Err(e) => tracing::warn!(lease = %name, error = %e, "lease not written"),
            }
        }
        let held = m.held(Instant::now());
        if held.map(|h| h.0) != was {
            match held {
                Some((epoch, _)) => tracing::info!(lease = %name, epoch, "lease held: acting"),
                None if was.is_some() => tracing::warn!(lease = %name, "lease lost: stopped"),
                None => {}
            }
            was = held.map(|h| h.0);
        }
        // Renewals move the deadline without waking the user: it wakes
        // at the old deadline and reads the new one then.
        tx.send_if_modified(|map| match held {
            Some(h) => map.insert(name.clone(), h).is_none_or(|old| old.0 != h.0),
            None => map.remove(&name).is_some(),
        });
        let next = Instant::now() + RENEW_EVERY;
        let wake = held.map_or(next, |(_, until)| next.min(until));
        tokio::time::sleep_until(wake).await;
    }
}
