//! The link client of a member's services ([`crate::link`]): invoke a
//! service of another cluster, publish to a topic of another cluster, and
//! serve the requests other clusters send to this one.
//!
//! An invoke is a NATS request on `arlink.<cluster>.invoke`, answered by
//! one member of that cluster (queue group): it needs the link up.
//!
//! A publish must survive the link being down, so it is first stored in
//! this cluster's JetStream stream [`OUTBOX`] (subject
//! `ar.linkout.<cluster>`, which never crosses a link) and acknowledged
//! there; a durable pull consumer shared by every member's integrator
//! forwards each message as a request on `arlink.<cluster>.publish`, and
//! acknowledges it in the outbox only when the other cluster answers that
//! it has queued it for its subscribers. While the link is down the
//! requests find no responder and the messages stay (retried every
//! second, for seven days). Delivery is at least once: an answer lost on
//! the way back sends the message again. The outbox is local, rather than
//! a stream of the other cluster sourcing it across JetStream domains, so
//! nothing of JetStream's API has to cross a link and either side of a
//! link can publish to the other.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use async_nats::{Client, Subject};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, conf, link};

/// The stream of messages published to other clusters, not forwarded yet.
pub const OUTBOX: &str = "AR_LINK_OUT";
const OUT_PREFIX: &str = "ar.linkout";
const FORWARDER: &str = "forward";
const QUEUE: &str = "arlink";
/// How long a message waits in the outbox for its cluster.
const OUTBOX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long the other cluster has to queue a forwarded message.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

fn err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster link: {e}"))
}

/// A request from another cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Incoming {
    Invoke {
        from: String,
        service: String,
        payload: Value,
    },
    Publish {
        from: String,
        /// Unique per published message: a message forwarded twice
        /// carries the same id.
        id: String,
        topic: String,
        data: Value,
    },
}

/// The answer to an [`Incoming`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub error: Option<String>,
}

/// A request to answer with [`Bridge::answer`].
pub struct Request {
    pub incoming: Incoming,
    reply: Option<Subject>,
}

/// The cluster of the outbox subject `ar.linkout.<cluster>`.
fn target_of(subject: &str) -> Option<&str> {
    subject
        .strip_prefix(OUT_PREFIX)?
        .strip_prefix('.')
        .filter(|c| alpharen_store::config::cluster_name_ok(c))
}

/// Opens the outbox, making it if it is missing (one replica until the
/// heartbeat raises it with the cluster's buckets).
async fn outbox(js: &jetstream::Context) -> Result<jetstream::stream::Stream, Error> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: OUTBOX.into(),
        subjects: vec![format!("{OUT_PREFIX}.>")],
        retention: jetstream::stream::RetentionPolicy::WorkQueue,
        max_age: OUTBOX_AGE,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| err(format!("the outbox stream: {e}")))
}

pub struct Bridge {
    client: Client,
    js: jetstream::Context,
    me: String,
}

impl Bridge {
    /// Connects to this node's nats-server as its client user, with the
    /// inbox prefix of cluster `me`, and makes the outbox if it is
    /// missing.
    pub async fn connect(client_port: u16, password: &str, me: &str) -> Result<Bridge, Error> {
        let client = async_nats::ConnectOptions::with_user_and_password(
            conf::CLIENT_USER.into(),
            password.into(),
        )
        .custom_inbox_prefix(link::inbox(me))
        .connection_timeout(Duration::from_secs(5))
        .connect(format!("127.0.0.1:{client_port}"))
        .await
        .map_err(|e| err(format!("cannot reach nats-server: {e}")))?;
        let js = jetstream::new(client.clone());
        outbox(&js).await?;
        Ok(Bridge {
            client,
            js,
            me: me.to_string(),
        })
    }

    /// Runs `service` in cluster `cluster` with `payload`; its answer
    /// (status, body, ...), or why there is none.
    pub async fn invoke(
        &self,
        cluster: &str,
        service: &str,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let body = Incoming::Invoke {
            from: self.me.clone(),
            service: service.into(),
            payload: payload.clone(),
        };
        self.request(cluster, "invoke", &body, timeout).await
    }

    async fn request(
        &self,
        cluster: &str,
        what: &str,
        body: &Incoming,
        timeout: Duration,
    ) -> Result<Value, Error> {
        use async_nats::client::RequestErrorKind;
        let bytes = serde_json::to_vec(body).map_err(err)?;
        let asked = self
            .client
            .request(link::subject(cluster, what), bytes.into());
        let m = match tokio::time::timeout(timeout, asked).await {
            Err(_) => {
                return Err(err(format!(
                    "cluster {cluster} did not answer within {} s",
                    timeout.as_secs()
                )));
            }
            Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => {
                return Err(err(format!(
                    "no member of cluster {cluster} answers: it is not linked to this one, or the link is down"
                )));
            }
            Ok(Err(e)) => return Err(err(format!("cluster {cluster}: {e}"))),
            Ok(Ok(m)) => m,
        };
        let a: Answer = serde_json::from_slice(&m.payload)
            .map_err(|e| err(format!("cluster {cluster} answered something else: {e}")))?;
        if a.ok {
            Ok(a.value)
        } else {
            Err(err(format!(
                "cluster {cluster}: {}",
                a.error.unwrap_or_else(|| "refused, no reason given".into())
            )))
        }
    }

    /// Stores a message for `topic` in cluster `cluster` in the outbox;
    /// its id once stored (it is forwarded when the link is up).
    pub async fn publish(&self, cluster: &str, topic: &str, data: &Value) -> Result<String, Error> {
        if !alpharen_store::config::cluster_name_ok(cluster) {
            return Err(err(format!("{cluster:?} is not a cluster name")));
        }
        if cluster == self.me {
            return Err(err(format!(
                "{cluster} is this cluster: publish without `cluster`"
            )));
        }
        let id = alpharen_store::uuid4();
        let body = Incoming::Publish {
            from: self.me.clone(),
            id: id.clone(),
            topic: topic.into(),
            data: data.clone(),
        };
        let bytes = serde_json::to_vec(&body).map_err(err)?;
        self.js
            .publish(format!("{OUT_PREFIX}.{cluster}"), bytes.into())
            .await
            .map_err(|e| err(format!("the outbox: {e}")))?
            .await
            .map_err(|e| err(format!("the outbox did not store the message: {e}")))?;
        Ok(id)
    }

    /// Requests from other clusters, one member of this cluster each.
    pub async fn requests(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Request> + use<>, Error> {
        let sub = self
            .client
            .queue_subscribe(link::subject(&self.me, "*"), QUEUE.into())
            .await
            .map_err(err)?;
        Ok(sub.filter_map(|m| async move {
            match serde_json::from_slice::<Incoming>(&m.payload) {
                Ok(incoming) => Some(Request {
                    incoming,
                    reply: m.reply,
                }),
                Err(e) => {
                    tracing::warn!(subject = %m.subject, error = %e, "a link request that does not read; dropped");
                    None
                }
            }
        }))
    }

    /// Answers a request (nothing to do for one sent without a reply
    /// subject).
    pub async fn answer(&self, r: Request, answer: Answer) -> Result<(), Error> {
        let Some(reply) = r.reply else { return Ok(()) };
        let bytes = serde_json::to_vec(&answer).map_err(err)?;
        self.client.publish(reply, bytes.into()).await.map_err(err)
    }

    /// Forwards the outbox until an error: each message to its cluster,
    /// acknowledged once that cluster queued it, else tried again in a
    /// second.
    pub async fn forward(&self) -> Result<(), Error> {
        // Made again if missing: the node's nats-server may have moved to
        // another JetStream store (one member → a cluster) since connect.
        let stream = outbox(&self.js).await?;
        let consumer = stream
            .get_or_create_consumer(
                FORWARDER,
                jetstream::consumer::pull::Config {
                    durable_name: Some(FORWARDER.into()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: FORWARD_TIMEOUT * 3,
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(16)
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .map_err(err)?;
            while let Some(m) = batch.next().await {
                let m = m.map_err(err)?;
                let Some(cluster) = target_of(&m.subject) else {
                    tracing::warn!(subject = %m.subject, "an outbox message for no cluster; dropped");
                    m.ack().await.map_err(err)?;
                    continue;
                };
                let sent = match serde_json::from_slice::<Incoming>(&m.payload) {
                    Ok(body) => {
                        self.request(cluster, "publish", &body, FORWARD_TIMEOUT)
                            .await
                    }
                    Err(e) => Err(err(format!("does not read: {e}"))),
                };
                match sent {
                    Ok(_) => m.double_ack().await.map_err(err)?,
                    Err(e) => {
                        tracing::debug!(cluster, error = %e, "outbox message not forwarded yet");
                        m.ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                            .await
                            .map_err(err)?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outbox_subjects_name_their_cluster() {
        assert_eq!(target_of("ar.linkout.lan-b"), Some("lan-b"));
        assert_eq!(target_of("ar.linkout.a.b"), None);
        assert_eq!(target_of("ar.linkoutx"), None);
    }

    #[test]
    fn requests_read_back_as_sent() {
        let i = Incoming::Publish {
            from: "lan-a".into(),
            id: "1".into(),
            topic: "orders".into(),
            data: json!({"n": 1}),
        };
        let text = serde_json::to_string(&i).unwrap();
        assert!(text.contains("\"op\":\"publish\""), "{text}");
        assert_eq!(serde_json::from_str::<Incoming>(&text).unwrap(), i);
        assert!(serde_json::from_str::<Incoming>(r#"{"op":"drop"}"#).is_err());
    }
}
