//! `<svc>.<verb>`: a built-in service's own methods, passed on to its
//! socket and its answer passed back.

use std::time::Duration;

use alpharen_rpc::RpcError;
use serde_json::Value;

use crate::state::NodeState;

/// Longest a service may take to answer (a peer add writes the config).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);

/// Passes a `<svc>.<verb>` call to the service's own socket.
pub async fn forward(
    node: &NodeState,
    service: &str,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let path = alpharen_rpc::service_socket(&node.opts.state_dir, service);
    alpharen_rpc::call(&path, method, params, FORWARD_TIMEOUT)
        .await
        .map_err(|e| {
            if e.code == alpharen_rpc::UNREACHABLE {
                RpcError::new(
                    "service_unavailable",
                    format!(
                        "the {service} service is not answering ({}); see `alpharen ctl services`",
                        e.message
                    ),
                )
            } else {
                e
            }
        })
}
