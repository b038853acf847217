//! Each group's master as `<group>.pg.<zone>` in this node's dpx zone
//! (short TTL), so clients follow a failover: pgha asks the dpx service
//! over its socket (`dpx.pg_master`), again whenever the master it knows
//! of changes or dpx did not take the last one. In a cluster every
//! member does this for its own dpx from the masters in the cluster's
//! state, so each member's DNS names the new master.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

/// How often the masters are compared with what dpx has.
pub const EVERY: Duration = Duration::from_secs(2);

/// What dpx took last, per group, and the last error said.
#[derive(Default)]
pub struct Published {
    done: BTreeMap<String, String>,
    said: String,
}

impl Published {
    /// Publishes `masters` (group → master's `pg_host`) that differ from
    /// what dpx took last.
    pub async fn publish(&mut self, state_dir: &Path, masters: Vec<(String, String)>) {
        let socket = alpharen_rpc::service_socket(state_dir, "dpx");
        for (group, host) in masters {
            if self.done.get(&group) == Some(&host) {
                continue;
            }
            let params = json!({ "group": group, "host": host });
            match alpharen_rpc::call(&socket, "dpx.pg_master", params, Duration::from_secs(3)).await
            {
                Ok(v) => {
                    tracing::info!(group, host, name = %v["name"].as_str().unwrap_or(""), "master published in the zone");
                    self.done.insert(group, host);
                    self.said.clear();
                }
                Err(e) => {
                    let text = format!("{group}: {}", e.message);
                    if text != self.said {
                        tracing::warn!(error = %text, "master not published in the zone; trying again");
                        self.said = text;
                    }
                }
            }
        }
    }
}
