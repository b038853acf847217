//! `logfwd.status` (each collector: state, lines sent, queued and
//! dropped; SNMP traps sent and failed; the syslog receiver's listeners
//! and counts) and `logfwd.mark` (a line of the operator's text in this
//! service's log, which then travels to every collector like any other:
//! to check a collector end to end, as `logger` would).

use std::sync::Arc;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use serde::Deserialize;
use serde_json::json;

use crate::{Node, Output};

pub struct Rpc {
    pub node: Arc<Node>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    text: String,
}

/// Longest mark text: one log line, not a document.
const MAX_MARK: usize = 1000;

impl Handler for Rpc {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        match call.method.as_str() {
            "logfwd.status" => Ok(self.status().await.into()),
            "logfwd.mark" => {
                let p: Mark = call.params()?;
                if p.text.len() > MAX_MARK || p.text.contains(['\n', '\r']) {
                    return Err(RpcError::invalid_params(format!(
                        "the text must be one line of at most {MAX_MARK} bytes"
                    )));
                }
                tracing::info!("mark: {}", p.text);
                Ok(json!({ "logged": p.text }).into())
            }
            m => Err(RpcError::new(
                "method_not_found",
                format!("no method {m:?} in the logfwd service"),
            )),
        }
    }
}

impl Rpc {
    async fn status(&self) -> serde_json::Value {
        let traps = {
            let t = self.node.traps.lock().await;
            json!({
                "targets": t.targets(),
                "engine_id": t.engine_id(),
                "sent": t.stats.sent,
                "failed": t.stats.failed,
                "last_error": t.stats.last_error,
            })
        };
        let receiver = {
            let r = self.node.receiver.lock().await;
            json!({
                "listeners": r.listeners,
                "error": r.error,
                "counters": r.counters(),
            })
        };
        let outs = self.node.outputs.lock().await;
        let buffer = self.node.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let collectors: Vec<_> = outs
            .list
            .iter()
            .map(|o| {
                let (stats, key) = match o {
                    Output::Udp { udp, .. } => (&udp.stats, None),
                    Output::Stream { stats, key, .. } => (stats, Some(key)),
                };
                let s = stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let held = key.map(|k| buffer.held(k)).unwrap_or_default();
                json!({
                    "collector": s.collector,
                    "state": s.state,
                    "sent": s.sent,
                    "dropped": s.dropped,
                    "buffered_lines": held.lines,
                    "buffered_bytes": held.bytes,
                    "last_error": s.last_error,
                })
            })
            .collect();
        json!({
            "hostname": outs.hostname,
            "buffer_mb": outs.buffer_mb,
            "collectors": collectors,
            "traps": traps,
            "receiver": receiver,
        })
    }
}
