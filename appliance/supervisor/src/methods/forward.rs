//! `<svc>.<verb>`: a built-in service's own methods, passed on to its
//! socket and its answer passed back.

use alpharen_rpc::{Response, RpcError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::state::NodeState;

/// Passes a `<svc>.<verb>` call to the service's own socket.
pub async fn forward(
    node: &NodeState,
    service: &str,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let path = alpharen_rpc::service_socket(&node.opts.state_dir, service);
    let unavailable = |e: std::io::Error| {
        RpcError::new(
            "service_unavailable",
            format!("the {service} service is not answering ({e}); see `alpharen ctl services`"),
        )
    };
    let stream = UnixStream::connect(&path).await.map_err(unavailable)?;
    let (r, mut w) = stream.into_split();
    let mut line =
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .map_err(|e| RpcError::new("internal_error", e.to_string()))?;
    line.push(b'\n');
    w.write_all(&line).await.map_err(unavailable)?;
    let mut answer = Vec::new();
    BufReader::new(r)
        .take(alpharen_rpc::MAX_LINE as u64)
        .read_until(b'\n', &mut answer)
        .await
        .map_err(unavailable)?;
    let resp: Response = serde_json::from_slice(&answer).map_err(|e| {
        RpcError::new(
            "service_unavailable",
            format!("the {service} service answered garbage: {e}"),
        )
    })?;
    match (resp.result, resp.error) {
        (_, Some(e)) => Err(RpcError::from_object(&e)),
        (Some(v), None) => Ok(v),
        (None, None) => Ok(Value::Null),
    }
}
