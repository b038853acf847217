//! The cluster's installed Python packages: a log of package sets, the
//! JetStream stream `AR_PACKAGES` (one subject; every record is the whole
//! set after a change), read in order by every member like the deploy log
//! ([`crate::deploys`]), and the wheels themselves in the JetStream object
//! store `ar_wheels`, one object per wheel named by its SHA-256 (a
//! record names wheels, it does not carry them: a wheel can be larger
//! than a NATS message). Records are opaque bytes here; the integrator
//! gives them their meaning.

use std::time::Duration;

use async_nats::jetstream::{self, object_store, stream};
use tokio::io::AsyncReadExt;

use crate::Error;
use crate::deploys::{Batch, append_if_last, batch_after};
use crate::kv::ClusterKv;

pub const STREAM: &str = "AR_PACKAGES";
const SUBJECT: &str = "ar.packages.set";
/// The object store of the wheels (its stream is `OBJ_ar_wheels`).
pub const WHEELS: &str = "ar_wheels";
/// A wheel (up to 5.5 MiB) written or read through the local nats-server.
const WHEEL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long reading a wheel of `size` bytes may take: 10 s, and 1 s
/// more per MiB (far slower than any LAN), at most [`WHEEL_TIMEOUT`].
fn read_limit(size: u64) -> Duration {
    (Duration::from_secs(10) + Duration::from_secs(size / (1 << 20))).min(WHEEL_TIMEOUT)
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::Join(format!("cluster packages: {e}"))
}

/// Makes the stream and the object store if they are missing: every
/// record and wheel kept, one replica until the heartbeat raises them
/// with the buckets.
pub(crate) async fn open(
    js: &jetstream::Context,
) -> Result<(stream::Stream, object_store::ObjectStore), String> {
    let log = crate::nats::log_stream(js, STREAM, SUBJECT.into()).await?;
    let wheels = match js.get_object_store(WHEELS).await {
        Ok(o) => o,
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: WHEELS.into(),
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?,
    };
    Ok((log, wheels))
}

impl ClusterKv {
    /// Appends a package set built by `make` from the last one (`None`:
    /// the first), only if no other member appended in between. Returns
    /// the record's sequence and bytes.
    pub fn append_package_set(
        &self,
        make: impl Fn(Option<&[u8]>) -> Result<Vec<u8>, String> + Send + Sync,
    ) -> Result<(u64, Vec<u8>), Error> {
        self.run(async move {
            append_if_last(&self.h.js, &self.h.package_log, SUBJECT, make)
                .await
                .map_err(err)
        })
    }

    /// Up to 64 package sets after sequence `after`, in order.
    pub fn package_sets_after(&self, after: u64) -> Result<Batch, Error> {
        self.run(async move { batch_after(&self.h.package_log, after).await.map_err(err) })
    }

    /// The cluster's current package set (`None`: none was recorded).
    pub fn last_package_set(&self) -> Result<Option<Vec<u8>>, Error> {
        self.run(async move {
            match self
                .h
                .package_log
                .get_last_raw_message_by_subject(SUBJECT)
                .await
            {
                Ok(m) => Ok(Some(m.payload.to_vec())),
                Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Err(e) => Err(err(e)),
            }
        })
    }

    /// Stores a wheel under its SHA-256 (hex) unless it is there already,
    /// giving up after `within` (at most [`WHEEL_TIMEOUT`]).
    pub fn put_wheel(&self, sha256: &str, wheel: &[u8], within: Duration) -> Result<(), Error> {
        self.run_within(within.min(WHEEL_TIMEOUT), async move {
            // Tried again for a while: right after a member dies, its
            // streams have no leader until the others elect one.
            let mut tries = 0;
            loop {
                if self.h.wheels.info(sha256).await.is_ok() {
                    return Ok(());
                }
                let mut body = wheel;
                match self.h.wheels.put(sha256, &mut body).await {
                    Ok(_) => return Ok(()),
                    Err(e) if tries < 15 => {
                        tracing::debug!(error = %e, "storing a wheel; trying again");
                        tries += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(err(format!("storing wheel {sha256}: {e}"))),
                }
            }
        })
    }

    /// The wheel stored under `sha256`, `size` bytes long. A read that
    /// stalls (its consumer lost to a leader election after a member
    /// died) is given up after [`read_limit`], so that the caller tries
    /// again soon instead of waiting out the store's limit.
    pub fn wheel(&self, sha256: &str, size: u64) -> Result<Vec<u8>, Error> {
        self.run_within(read_limit(size), async move {
            let mut object = self
                .h
                .wheels
                .get(sha256)
                .await
                .map_err(|e| err(format!("wheel {sha256}: {e}")))?;
            let mut out = Vec::new();
            object
                .read_to_end(&mut out)
                .await
                .map_err(|e| err(format!("reading wheel {sha256}: {e}")))?;
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wheel_read_may_take_10_s_and_1_s_per_mib_up_to_the_store_limit() {
        assert_eq!(read_limit(0), Duration::from_secs(10));
        assert_eq!(read_limit(700 * 1024), Duration::from_secs(10));
        assert_eq!(read_limit(20 << 20), Duration::from_secs(30));
        assert_eq!(read_limit(1 << 40), WHEEL_TIMEOUT);
    }
}
