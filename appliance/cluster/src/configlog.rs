//! The cluster's configuration log: one JetStream stream, `AR_CONFIG`,
//! whose records each carry the whole cluster-wide part of the
//! configuration, `[integrator]` and `[pgha]` (`alpharen_store::shared`).
//! A record's sequence is the cluster-wide revision of that part. A member appends only if it has applied every
//! record before (the whole stream's expected last sequence, the check
//! the deploy log and the KV's compare-and-set use), so no change is made
//! on a stale section. The supervisor, the node's only configuration
//! writer, appends and applies; this module only moves and seals bytes.
//!
//! The values of the secrets a record's section refers to travel sealed:
//! AES-256-GCM under a key derived (HKDF-SHA256) from the cluster's join
//! secret, which every member holds, with a random salt per record. What
//! protects them is the join secret: whoever holds it (every member, and
//! whoever has a join token) can open them; the routes' TLS keeps them
//! off the wire, and nats-server's store keeps them sealed on disk.

use std::collections::BTreeMap;
use std::time::Duration;

use alpharen_store::shared::SharedPart;
use async_nats::jetstream::{self, stream};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::deploys::{Batch, batch_after};
use crate::kv::{client, off_runtime, runtime};

pub const STREAM: &str = "AR_CONFIG";
const SUBJECT: &str = "ar.config";
const INFO: &[u8] = b"alpharen cluster config secrets";

fn err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster configuration: {e}"))
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `[integrator]` without its node keys; secrets as references.
    pub section: serde_json::Value,
    /// The other shared sections (`[pgha]`) by name; none in a record of
    /// a member from before they were shared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sections: BTreeMap<String, serde_json::Value>,
    /// The referenced secrets: a JSON object of name →
    /// value, sealed ([`seal`]); empty when there are none.
    #[serde(default)]
    pub secrets: String,
    /// The salt of the secrets' key, base64.
    #[serde(default)]
    pub salt: String,
    pub author: String,
    pub comment: String,
    /// The member it was made on (`node.hostname`).
    pub node: String,
    /// Unix seconds.
    pub at: i64,
}

/// Who made a change, for the record.
pub struct Meta<'a> {
    pub author: &'a str,
    pub comment: &'a str,
    pub node: &'a str,
}

/// The record of `part`, its secrets sealed under `join_secret`.
pub fn record(join_secret: &str, part: &SharedPart, meta: &Meta) -> Result<Record, Error> {
    let (secrets, salt) = if part.secrets.is_empty() {
        (String::new(), String::new())
    } else {
        let salt: [u8; 16] = rand::random();
        let plain = serde_json::to_vec(&part.secrets).map_err(err)?;
        (
            crate::join::seal_bytes(join_secret, &salt, INFO, plain)?,
            B64.encode(salt),
        )
    };
    Ok(Record {
        section: part.section.clone(),
        sections: part.sections.clone(),
        secrets,
        salt,
        author: meta.author.into(),
        comment: meta.comment.into(),
        node: meta.node.into(),
        at: alpharen_store::now_unix(),
    })
}

/// The shared part a record carries, its secrets opened.
pub fn open(join_secret: &str, r: &Record) -> Result<SharedPart, Error> {
    let secrets = if r.secrets.is_empty() {
        BTreeMap::new()
    } else {
        let salt = B64
            .decode(&r.salt)
            .map_err(|_| err("the record's salt is not base64"))?;
        let plain =
            crate::join::open_bytes(join_secret, &salt, INFO, &r.secrets)?.ok_or_else(|| {
                err("the record's secrets do not open with this member's join secret")
            })?;
        serde_json::from_slice(&plain).map_err(err)?
    };
    Ok(SharedPart {
        section: r.section.clone(),
        sections: r.sections.clone(),
        secrets,
    })
}

/// How long [`ConfigLog::append`] tries: longer than a leader election
/// of the stream (nats-server's Raft election timeout, a few seconds).
const APPEND_WITHIN: Duration = Duration::from_secs(15);
/// How long one try, or a read of the log, waits for nats-server.
const TRY_WITHIN: Duration = Duration::from_secs(3);
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Why a try of an append failed.
enum Try {
    /// Nothing answered or the stream had no leader: the next try may
    /// find one.
    Again(String),
    /// The next try would fail the same way.
    Final(String),
}

/// What an append came to.
#[derive(Debug, PartialEq)]
pub enum Appended {
    /// Stored: the stream's identity and the record's sequence.
    Stored { stream: String, seq: u64 },
    /// The stream is not at the sequence this member expected: a record
    /// from another member came first, or this member has not read a new
    /// stream yet.
    Behind,
}

/// A connection to the log through the node's own nats-server.
pub struct ConfigLog {
    rt: tokio::runtime::Runtime,
    js: jetstream::Context,
    stream: stream::Stream,
}

impl ConfigLog {
    /// Connects as the node's client user and opens the stream, making it
    /// if it is missing (every record kept; one replica until the
    /// heartbeat raises it with the buckets).
    pub fn connect(client_port: u16, password: &str, clustered: bool) -> Result<ConfigLog, Error> {
        let rt = runtime("cluster-config")?;
        let (js, stream) = off_runtime(&rt, async {
            tokio::time::timeout(std::time::Duration::from_secs(10), async {
                let js = client(client_port, password, clustered).await?;
                let stream = crate::nats::log_stream(&js, STREAM, SUBJECT.into())
                    .await
                    .map_err(err)?;
                Ok((js, stream))
            })
            .await
            .map_err(|_| err("nats-server did not open the stream within 10 s"))?
        })?;
        Ok(ConfigLog { rt, js, stream })
    }

    fn run<T: Send>(
        &self,
        f: impl std::future::Future<Output = Result<T, Error>> + Send,
    ) -> Result<T, Error> {
        off_runtime(&self.rt, async move {
            tokio::time::timeout(TRY_WITHIN, f).await.map_err(|_| {
                err(format!(
                    "no answer from nats-server within {} s",
                    TRY_WITHIN.as_secs()
                ))
            })?
        })
    }

    /// Appends `r` if the stream is `stream_id` and its last sequence is
    /// `after` (`stream_id` `None`: whatever stream, if it is empty).
    ///
    /// Rides out an election of the stream's leader: when the member
    /// that led the stream dies, the others elect a new leader only after
    /// nats-server's Raft election timeout (seconds), and until then
    /// nothing answers. Each try is bounded by [`TRY_WITHIN`]; tries go on
    /// for [`APPEND_WITHIN`]. One message id for all tries, so a record
    /// stored by a try whose answer was lost is not stored again (the
    /// stream's duplicate window gives back its sequence).
    pub fn append(
        &self,
        stream_id: Option<&str>,
        after: u64,
        r: &Record,
    ) -> Result<Appended, Error> {
        let body = serde_json::to_vec(r).map_err(err)?;
        let msg_id = alpharen_store::uuid4();
        off_runtime(&self.rt, async move {
            let until = tokio::time::Instant::now() + APPEND_WITHIN;
            loop {
                let tried = tokio::time::timeout(
                    TRY_WITHIN,
                    self.try_append(stream_id, after, &msg_id, &body),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(Try::Again(format!(
                        "no answer from nats-server within {} s",
                        TRY_WITHIN.as_secs()
                    )))
                });
                match tried {
                    Ok(a) => return Ok(a),
                    Err(Try::Final(e)) => return Err(err(e)),
                    Err(Try::Again(e)) if tokio::time::Instant::now() + RETRY_PAUSE >= until => {
                        return Err(err(format!(
                            "{e}; tried for {} s (a majority of the cluster's members may be down)",
                            APPEND_WITHIN.as_secs()
                        )));
                    }
                    Err(Try::Again(e)) => {
                        tracing::debug!(error = %e, "the configuration log did not take the record yet; trying again");
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            }
        })
    }

    async fn try_append(
        &self,
        stream_id: Option<&str>,
        after: u64,
        msg_id: &str,
        body: &[u8],
    ) -> Result<Appended, Try> {
        use jetstream::context::PublishErrorKind as K;
        let again = |e: &dyn std::fmt::Display| Try::Again(e.to_string());
        let mut s = self.stream.clone();
        let info = s.info().await.map_err(|e| again(&e))?;
        let id = info.created.to_string();
        if stream_id.is_some_and(|want| want != id) {
            return Ok(Appended::Behind);
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
            after.to_string().as_str(),
        );
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        let ack = self
            .js
            .publish_with_headers(SUBJECT, headers, body.to_vec().into())
            .await
            .map_err(|e| again(&e))?;
        match ack.await {
            Ok(a) => Ok(Appended::Stored {
                stream: id,
                seq: a.sequence,
            }),
            Err(e) if e.kind() == K::WrongLastSequence => Ok(Appended::Behind),
            Err(e) if e.kind() == K::MaxPayloadExceeded => Err(Try::Final(e.to_string())),
            Err(e) => Err(again(&e)),
        }
    }

    /// Up to 64 records after sequence `after`, in order.
    pub fn after(&self, after: u64) -> Result<Batch, Error> {
        self.run(async move { batch_after(&self.stream, after).await.map_err(err) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part() -> SharedPart {
        SharedPart {
            section: serde_json::json!({"channels": []}),
            sections: [("pgha".to_string(), serde_json::json!({"grace": 30}))].into(),
            secrets: [("integrator.security.a".to_string(), "hunter2".to_string())].into(),
        }
    }

    #[test]
    fn a_record_of_a_member_before_pgha_was_shared_opens_without_it() {
        let mut r = serde_json::to_value(record("s", &part(), &META).unwrap()).unwrap();
        r.as_object_mut().unwrap().remove("sections");
        let old: Record = serde_json::from_value(r).unwrap();
        let p = open("s", &old).unwrap();
        assert!(p.sections.is_empty());
        assert_eq!(p.section, part().section);
    }

    const META: Meta = Meta {
        author: "ann",
        comment: "c",
        node: "a",
    };

    #[test]
    fn secrets_travel_sealed_and_open_only_with_the_join_secret() {
        let r = record("join-secret", &part(), &META).unwrap();
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(open("join-secret", &r).unwrap(), part());
        let e = open("other", &r).unwrap_err().to_string();
        assert!(e.contains("do not open"), "{e}");
        let mut changed = r.clone();
        changed.salt = B64.encode([0u8; 16]);
        assert!(open("join-secret", &changed).is_err());
    }

    #[test]
    fn a_section_without_secrets_carries_none() {
        let mut p = part();
        p.secrets.clear();
        let r = record("s", &p, &META).unwrap();
        assert!(r.secrets.is_empty() && r.salt.is_empty());
        assert_eq!(open("anything", &r).unwrap(), p);
    }
}
