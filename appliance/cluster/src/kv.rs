//! The cluster-wide key-value store (ARKVD of a cluster) for the node's
//! services: one JetStream KV bucket, `ar_kv`, reached through the local
//! nats-server as its client user. A blocking facade: callers (the
//! integrator's request path) are synchronous, so every call runs on this
//! client's own runtime thread and waits at most [`TIMEOUT`].
//!
//! Namespaces and keys are free text; NATS keys are not, so each is
//! stored as `n<base64url(ns)>.k<base64url(key)>`. A record carries its
//! kind, its bytes and its expiry; an expired record reads as absent
//! (debris of expired keys stays in the bucket until overwritten).

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::{self, kv};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{Error, conf, io_err};

pub const BUCKET: &str = "ar_kv";
/// One-time claims (a scheduled job's fire time, [`crate::claims`]):
/// dropped by JetStream after a day.
pub const CLAIMS: &str = "ar_claims";
const CLAIM_AGE_SECS: u64 = 24 * 3600;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A stored value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub kind: String,
    #[serde(with = "b64")]
    pub value: Vec<u8>,
    /// Unix milliseconds; `None` never expires.
    pub expires_at: Option<i64>,
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

impl Record {
    fn live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

/// Whether a stream message of the bucket holds a live value (not a
/// delete marker, not expired).
fn holds_value(m: &StreamMessage, now: i64) -> bool {
    live_value(Some(&m.headers), &m.payload, now)
}

/// [`holds_value`] of a message's headers and payload.
fn live_value(headers: Option<&async_nats::HeaderMap>, payload: &[u8], now: i64) -> bool {
    let deleted = headers
        .and_then(|h| h.get("KV-Operation"))
        .is_some_and(|op| op.as_str() != "PUT");
    !deleted && serde_json::from_slice::<Record>(payload).is_ok_and(|r| r.live(now))
}

/// The NATS key of `ns`/`key`.
pub fn encode_key(ns: &str, key: &str) -> String {
    format!("n{}.k{}", B64.encode(ns), B64.encode(key))
}

/// `ns` and `key` back from a NATS key; `None` for keys not ours.
pub fn decode_key(k: &str) -> Option<(String, String)> {
    let (n, key) = k.split_once('.')?;
    let ns = B64.decode(n.strip_prefix('n')?).ok()?;
    let key = B64.decode(key.strip_prefix('k')?).ok()?;
    Some((String::from_utf8(ns).ok()?, String::from_utf8(key).ok()?))
}

fn kv_err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster KV: {e}"))
}

/// A runtime of one thread for a blocking facade over the cluster.
pub(crate) fn runtime(name: &str) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(io_err(format!("{name} runtime")))
}

/// Connects to this node's nats-server as its client user. `clustered`:
/// whether the node has seeds, so its nats-server must be in a NATS
/// cluster; a server still in the other mode (about to be restarted by
/// the cluster service) is refused, or streams would land in the
/// JetStream store it is leaving.
pub(crate) async fn client(
    client_port: u16,
    password: &str,
    clustered: bool,
) -> Result<jetstream::Context, Error> {
    let client = async_nats::ConnectOptions::with_user_and_password(
        conf::CLIENT_USER.into(),
        password.into(),
    )
    .connection_timeout(TIMEOUT)
    .connect(format!("127.0.0.1:{client_port}"))
    .await
    .map_err(|e| kv_err(format!("cannot reach nats-server: {e}")))?;
    let in_cluster = client.server_info().cluster.is_some_and(|c| !c.is_empty());
    if in_cluster != clustered {
        return Err(kv_err("nats-server is not in its configured mode yet"));
    }
    Ok(jetstream::new(client))
}

/// A connection to the cluster's KV bucket.
pub struct ClusterKv {
    rt: tokio::runtime::Runtime,
    pub(crate) h: Handles,
}

/// What a [`ClusterKv`] holds open on its runtime.
pub(crate) struct Handles {
    kv: kv::Store,
    pub(crate) js: jetstream::Context,
    stream: jetstream::stream::Stream,
    /// The bucket of [`crate::claims`].
    pub(crate) claims_stream: jetstream::stream::Stream,
    /// The log of deploys ([`crate::deploys`]).
    pub(crate) deploys: jetstream::stream::Stream,
    /// Pub/sub and `invoke_async` queues ([`crate::pubsub`]).
    pub(crate) queues: crate::pubsub::Queues,
    /// The bucket of `self.lock` ([`crate::locks`]).
    pub(crate) locks_stream: jetstream::stream::Stream,
    /// The package sets and their wheels ([`crate::packages`]).
    pub(crate) package_log: jetstream::stream::Stream,
    pub(crate) wheels: jetstream::object_store::ObjectStore,
}

impl ClusterKv {
    /// Connects to this node's nats-server ([`client`]) and opens the
    /// bucket, making it if it is missing.
    pub fn connect(client_port: u16, password: &str, clustered: bool) -> Result<ClusterKv, Error> {
        let rt = runtime("cluster-kv")?;
        let password = password.to_string();
        let h = off_runtime(&rt, async move {
            let js = client(client_port, &password, clustered).await?;
            let kv = crate::nats::bucket(&js, BUCKET, 0).await.map_err(kv_err)?;
            let stream = js
                .get_stream(format!("KV_{BUCKET}"))
                .await
                .map_err(kv_err)?;
            // Made here; written through its stream (`write_if`).
            crate::nats::bucket(&js, CLAIMS, CLAIM_AGE_SECS)
                .await
                .map_err(kv_err)?;
            let claims_stream = js
                .get_stream(format!("KV_{CLAIMS}"))
                .await
                .map_err(kv_err)?;
            let deploys = crate::deploys::open(&js).await.map_err(kv_err)?;
            let queues = crate::pubsub::open(&js).await.map_err(kv_err)?;
            crate::nats::bucket(&js, crate::locks::BUCKET, 0)
                .await
                .map_err(kv_err)?;
            let locks_stream = js
                .get_stream(format!("KV_{}", crate::locks::BUCKET))
                .await
                .map_err(kv_err)?;
            let (package_log, wheels) = crate::packages::open(&js).await.map_err(kv_err)?;
            Ok(Handles {
                kv,
                js,
                stream,
                claims_stream,
                deploys,
                queues,
                locks_stream,
                package_log,
                wheels,
            })
        })?;
        Ok(ClusterKv { rt, h })
    }

    pub(crate) fn run<T: Send>(
        &self,
        f: impl Future<Output = Result<T, Error>> + Send,
    ) -> Result<T, Error> {
        self.run_within(TIMEOUT, f)
    }

    /// [`Self::run`] with another limit (moving a wheel takes longer).
    pub(crate) fn run_within<T: Send>(
        &self,
        limit: Duration,
        f: impl Future<Output = Result<T, Error>> + Send,
    ) -> Result<T, Error> {
        off_runtime(&self.rt, async move {
            tokio::time::timeout(limit, f)
                .await
                .map_err(|_| kv_err(format!("no answer within {} s", limit.as_secs())))?
        })
    }

    async fn entry(kv: &kv::Store, k: &str) -> Result<Option<(Record, u64)>, Error> {
        match kv.entry(k).await.map_err(kv_err)? {
            Some(e) if e.operation == kv::Operation::Put => {
                let r: Record = serde_json::from_slice(&e.value).map_err(kv_err)?;
                Ok(Some((r, e.revision)))
            }
            Some(_) | None => Ok(None),
        }
    }

    /// The cluster's members as `cluster status` lists them (the load
    /// balancer's peers come from them).
    pub fn members(&self) -> Result<Vec<crate::members::Member>, Error> {
        let js = &self.h.js;
        off_runtime(&self.rt, async move {
            crate::control::member_list(js).await.map_err(kv_err)
        })
    }

    pub fn get(&self, ns: &str, key: &str, now: i64) -> Result<Option<Record>, Error> {
        let (kv, k) = (&self.h.kv, encode_key(ns, key));
        self.run(async move {
            Ok(Self::entry(kv, &k)
                .await?
                .map(|(r, _)| r)
                .filter(|r| r.live(now)))
        })
    }

    pub fn set(&self, ns: &str, key: &str, r: &Record) -> Result<(), Error> {
        let (kv, k) = (&self.h.kv, encode_key(ns, key));
        let body = serde_json::to_vec(r).map_err(kv_err)?;
        self.run(async move {
            kv.put(&k, body.into()).await.map_err(kv_err)?;
            Ok(())
        })
    }

    /// Deletes a key; whether it held a live value.
    pub fn del(&self, ns: &str, key: &str, now: i64) -> Result<bool, Error> {
        let (kv, k) = (&self.h.kv, encode_key(ns, key));
        self.run(async move {
            let was = Self::entry(kv, &k).await?.is_some_and(|(r, _)| r.live(now));
            kv.delete(&k).await.map_err(kv_err)?;
            Ok(was)
        })
    }

    /// Compare-and-set on the JetStream revision: `expected` `None`
    /// means absent (or expired); `new` `None` deletes. Of two members
    /// racing, exactly one sees its write taken.
    pub fn cas(
        &self,
        ns: &str,
        key: &str,
        expected: Option<(&str, &[u8])>,
        new: Option<&Record>,
        now: i64,
    ) -> Result<bool, Error> {
        let (kv, k) = (&self.h.kv, encode_key(ns, key));
        let body = new.map(serde_json::to_vec).transpose().map_err(kv_err)?;
        let this = self;
        let expected = expected.map(|(kind, v)| (kind.to_string(), v.to_vec()));
        self.run(async move {
            let cur = Self::entry(kv, &k).await?;
            let live = cur
                .as_ref()
                .filter(|(r, _)| r.live(now))
                .map(|(r, _)| (r.kind.clone(), r.value.clone()));
            if live != expected {
                return Ok(false);
            }
            let bucket = this.bucket();
            let done = match (body, cur.map(|(_, rev)| rev)) {
                (Some(b), Some(rev)) => {
                    this.write_if(bucket, &k, Some(b), |m| {
                        m.is_some_and(|m| m.sequence == rev)
                    })
                    .await?
                }
                (Some(b), None) => {
                    let absent = |m: Option<&StreamMessage>| m.is_none_or(|m| !holds_value(m, now));
                    this.write_if(bucket, &k, Some(b), absent).await?
                }
                (None, Some(rev)) => {
                    this.write_if(bucket, &k, None, |m| m.is_some_and(|m| m.sequence == rev))
                        .await?
                }
                (None, None) => true,
            };
            Ok(done)
        })
    }

    fn bucket(&self) -> Bucket<'_> {
        Bucket {
            name: BUCKET,
            stream: &self.h.stream,
        }
    }

    pub(crate) async fn write_if(
        &self,
        into: Bucket<'_>,
        k: &str,
        body: Option<Vec<u8>>,
        expect: impl Fn(Option<&StreamMessage>) -> bool,
    ) -> Result<bool, Error> {
        Ok(write_if(&self.h.js, into, k, body, expect).await?.is_some())
    }

    /// Keys of `ns` starting with `prefix`, sorted, live only.
    pub fn keys(
        &self,
        ns: &str,
        prefix: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<String>, Error> {
        let all = self.scan(&format!("n{}.>", B64.encode(ns)), now)?;
        let mut out: Vec<String> = all
            .into_iter()
            .filter(|(n, k)| n == ns && k.starts_with(prefix))
            .map(|(_, k)| k)
            .collect();
        out.sort();
        out.truncate(limit);
        Ok(out)
    }

    /// Every namespace with its live key count.
    pub fn namespaces(&self, now: i64) -> Result<Vec<(String, i64)>, Error> {
        let mut counts = std::collections::BTreeMap::new();
        for (ns, _) in self.scan(">", now)? {
            *counts.entry(ns).or_insert(0i64) += 1;
        }
        Ok(counts.into_iter().collect())
    }

    /// Every live (namespace, key) whose NATS key matches `filter` (`>`
    /// for all): one ordered consumer delivers the last message of each
    /// key, values included, so a listing is one pass over those keys
    /// and not a read per key of the whole bucket (2.7 s for 10,000 keys;
    /// some 18,000 would have run out of [`TIMEOUT`]).
    fn scan(&self, filter: &str, now: i64) -> Result<Vec<(String, String)>, Error> {
        let (js, stream) = (&self.h.js, &self.h.stream);
        let prefix = format!("$KV.{BUCKET}.");
        let config = jetstream::consumer::push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            description: Some("key listing".into()),
            filter_subject: format!("{prefix}{filter}"),
            deliver_policy: jetstream::consumer::DeliverPolicy::LastPerSubject,
            replay_policy: jetstream::consumer::ReplayPolicy::Instant,
            ..Default::default()
        };
        self.run(async move {
            // nats-server 2.9.10 and 2.15.1 both make it on an empty
            // bucket or namespace, with nothing pending.
            let consumer = stream.create_consumer(config).await.map_err(kv_err)?;
            let mut pending = consumer.cached_info().num_pending;
            let mut messages = consumer.messages().await.map_err(kv_err)?;
            let mut out = Vec::new();
            while pending > 0 {
                let m = messages
                    .next()
                    .await
                    .ok_or_else(|| kv_err("the key listing ended before its last key"))?
                    .map_err(kv_err)?;
                pending = m.info().map_err(kv_err)?.pending;
                if let Some(pair) = m.subject.strip_prefix(prefix.as_str()).and_then(decode_key)
                    && live_value(m.headers.as_ref(), &m.payload, now)
                {
                    out.push(pair);
                }
            }
            Ok(out)
        })
    }
}

/// A bucket's name and stream, for [`write_if`].
#[derive(Clone, Copy)]
pub(crate) struct Bucket<'a> {
    pub(crate) name: &'a str,
    pub(crate) stream: &'a jetstream::stream::Stream,
}

/// Writes `body` under `k` (`None`: a delete marker) only if the
/// key's last message, as the stream's leader has it, is what
/// `expect` accepts, and nothing at all was written to the bucket
/// since it was read. nats-server 2.9 (Debian 12's, still on members
/// updated from an older firmware) checks a
/// per-subject expectation (what `kv.update` sends) against the
/// messages it has applied, not those still being replicated, so two
/// members could both update from the same revision; the check of the
/// whole stream's last sequence counts those too. A busy bucket
/// retries; a write whose outcome is unknown is an error, never
/// retried. The stream sequence of the write when it was made.
pub(crate) async fn write_if(
    js: &jetstream::Context,
    into: Bucket<'_>,
    k: &str,
    body: Option<Vec<u8>>,
    expect: impl Fn(Option<&StreamMessage>) -> bool,
) -> Result<Option<u64>, Error> {
    let subject = format!("$KV.{}.{k}", into.name);
    for _ in 0..20 {
        let mut stream = into.stream.clone();
        let last = stream.info().await.map_err(kv_err)?.state.last_sequence;
        let cur = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => Some(m),
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                None
            }
            Err(e) => return Err(kv_err(e)),
        };
        if !expect(cur.as_ref()) {
            return Ok(None);
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
            last.to_string().as_str(),
        );
        if body.is_none() {
            headers.insert("KV-Operation", "DEL");
        }
        let ack = js
            .publish_with_headers(
                subject.clone(),
                headers,
                body.clone().unwrap_or_default().into(),
            )
            .await
            .map_err(kv_err)?;
        // Another write since `last`: look again; any other failure
        // leaves the outcome unknown.
        match ack.await {
            Ok(ack) => return Ok(Some(ack.sequence)),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {}
            Err(e) => {
                return Err(kv_err(format!(
                    "a conditional write did not confirm ({e}); it may or may not have been made"
                )));
            }
        }
    }
    Err(kv_err("the bucket is too busy to write the key; try again"))
}

/// Runs `f` to its end on the calling thread, inside `rt`'s context: its
/// sockets and timers are `rt`'s, driven by `rt`'s own worker thread.
/// So a caller inside another runtime (the integrator's, where
/// `Runtime::block_on` would panic) may block on it, without a thread
/// of its own per call (a spawn and a join were most of a call's cost
/// besides the round trip to nats-server).
pub(crate) fn off_runtime<T: Send>(
    rt: &tokio::runtime::Runtime,
    f: impl Future<Output = Result<T, Error>> + Send,
) -> Result<T, Error> {
    let _in = rt.enter();
    futures_executor::block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_namespace_and_key_make_a_nats_key_and_come_back() {
        for (ns, key) in [("orders", "user:1"), ("ns with space", ""), ("ü", "a.b>c*")] {
            let k = encode_key(ns, key);
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "{k}"
            );
            assert_eq!(decode_key(&k), Some((ns.to_string(), key.to_string())));
        }
        assert_eq!(decode_key("ar_members"), None);
    }

    #[test]
    fn a_record_is_live_until_it_expires() {
        let r = Record {
            kind: "json".into(),
            value: b"1".to_vec(),
            expires_at: Some(100),
        };
        assert!(r.live(99) && !r.live(100));
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
    }
}
