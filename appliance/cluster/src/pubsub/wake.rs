//! Wake-ups of the members' delivery loops when messages were stored.

use super::err;
use crate::Error;
use crate::kv::ClusterKv;

/// A core NATS subject, never stored and never across a link (`ar.>`):
/// a member that stored messages says so on it, and every member's
/// delivery loop takes them at once instead of at its next poll.
const WAKE: &str = "ar.wake.queues";

impl ClusterKv {
    /// Tells every member that messages were stored. Best effort: a
    /// wake-up lost leaves them to the members' next poll.
    pub(super) async fn wake_members(&self) {
        if let Err(e) = self.h.js.client().publish(WAKE, Vec::new().into()).await {
            tracing::debug!(error = %e, "no wake-up sent for stored messages");
        }
    }

    /// The wake-ups of messages stored by any member, this one included.
    /// It ends when this connection is dropped.
    pub fn queue_wakes(&self) -> Result<async_nats::Subscriber, Error> {
        let client = self.h.js.client();
        self.run(async move { client.subscribe(WAKE).await.map_err(err) })
    }
}
