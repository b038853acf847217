//! The cluster's log of deploys (ARCLST's shared service code): one
//! JetStream stream, `AR_DEPLOYS`, with a subject per module. Every
//! deploy, rollback and undeploy on any member is appended to it; every
//! member reads it in order and applies each record to its own registry,
//! so a member that was down catches up from where it stopped. Records
//! are opaque bytes here; the integrator gives them their meaning.

use async_nats::jetstream::{self, stream};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::Error;
use crate::kv::ClusterKv;

pub const STREAM: &str = "AR_DEPLOYS";
const PREFIX: &str = "ar.deploys";

/// Records fetched per [`ClusterKv::deploys_after`] call.
const BATCH: u64 = 64;

fn err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster deploys: {e}"))
}

/// The subject of a module's records.
fn subject(module: &str) -> String {
    format!("{PREFIX}.m{}", B64.encode(module))
}

/// Makes the stream if it is missing: every record kept (a member that
/// returns after a long time still finds what it missed), one replica
/// until the heartbeat raises it with the buckets.
pub(crate) async fn open(js: &jetstream::Context) -> Result<stream::Stream, String> {
    crate::nats::log_stream(js, STREAM, format!("{PREFIX}.>")).await
}

/// What a member reads from the log in one call.
#[derive(Debug)]
pub struct Batch {
    /// The stream's identity (its creation time): a member whose
    /// nats-server moved to another JetStream store (one member → a
    /// cluster) finds a new stream and starts again from its beginning.
    pub stream_id: String,
    /// The stream's last sequence (0: empty).
    pub last: u64,
    /// Records after the asked sequence, in order: (sequence, bytes).
    pub records: Vec<(u64, Vec<u8>)>,
}

impl ClusterKv {
    /// Appends a record for `module`, built by `make` from the module's
    /// last record (`None`: the first), only if no other record reached
    /// the stream in between: two members deploying at once each build
    /// from what the other wrote, so a version number taken from the last
    /// record is never given twice. Returns the record's sequence and bytes.
    pub fn append_deploy(
        &self,
        module: &str,
        make: impl Fn(Option<&[u8]>) -> Result<Vec<u8>, String> + Send + Sync,
    ) -> Result<(u64, Vec<u8>), Error> {
        let subject = subject(module);
        self.run(async move {
            append_if_last(&self.h.js, &self.h.deploys, &subject, make)
                .await
                .map_err(err)
        })
    }

    /// Up to 64 records after sequence `after`, in order.
    pub fn deploys_after(&self, after: u64) -> Result<Batch, Error> {
        self.run(async move { batch_after(&self.h.deploys, after).await.map_err(err) })
    }
}

/// Appends to `subject` of `stream` a record built by `make` from the
/// subject's last record, only if nothing else reached the stream in
/// between (the expected last sequence); retried while other members
/// write. The record's sequence and bytes.
pub(crate) async fn append_if_last(
    js: &jetstream::Context,
    stream: &stream::Stream,
    subject: &str,
    make: impl Fn(Option<&[u8]>) -> Result<Vec<u8>, String>,
) -> Result<(u64, Vec<u8>), String> {
    for _ in 0..20 {
        let mut s = stream.clone();
        let last = s
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .last_sequence;
        let prev = match s.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Some(m.payload.to_vec()),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(e.to_string()),
        };
        let body = make(prev.as_deref())?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
            last.to_string().as_str(),
        );
        let ack = js
            .publish_with_headers(subject.to_string(), headers, body.clone().into())
            .await
            .map_err(|e| e.to_string())?;
        match ack.await {
            Ok(a) => return Ok((a.sequence, body)),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {}
            Err(e) => {
                return Err(format!(
                    "the record did not confirm ({e}); it may or may not have been stored"
                ));
            }
        }
    }
    Err("other members kept changing it; try again".into())
}

/// Up to 64 records of `stream` after sequence `after`, in order, with
/// the stream's identity.
pub(crate) async fn batch_after(stream: &stream::Stream, after: u64) -> Result<Batch, String> {
    let mut s = stream.clone();
    let info = s.info().await.map_err(|e| e.to_string())?;
    let stream_id = info.created.to_string();
    let last = info.state.last_sequence;
    let mut records = Vec::new();
    for seq in after + 1..=last.min(after + BATCH) {
        match s.get_raw_message(seq).await {
            Ok(m) => records.push((seq, m.payload.to_vec())),
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(Batch {
        stream_id,
        last,
        records,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn module_subjects_are_single_nats_tokens() {
        for m in ["svc", "my.proj", "ü>*"] {
            let s = super::subject(m);
            let tail = s.strip_prefix("ar.deploys.").unwrap();
            assert!(
                tail.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
                "{s}"
            );
        }
        assert_ne!(super::subject("a"), super::subject("b"));
    }
}
