//! The control socket's door: hands calls to `methods`, forwards a
//! service's own methods to its socket, and raises admin notifications.

use std::sync::Arc;

use alpharen_rpc::{Call, Handler, Reply, Response, RpcError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::supervise::Node;

struct Control(Arc<Node>);

impl Handler for Control {
    fn call(&self, call: Call) -> impl Future<Output = Result<Reply, RpcError>> + Send {
        let node = self.0.clone();
        async move { crate::methods::dispatch(&node, call).await }
    }
}

pub async fn serve(listener: UnixListener, node: Arc<Node>) {
    alpharen_rpc::serve(listener, Arc::new(Control(node))).await
}

/// Passes a `<svc>.<verb>` call to the service's own socket.
pub async fn forward(
    node: &Node,
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

/// An event the admin should hear about: logged always, mailed when the
/// mail service is present.
pub fn notify(node: &Node, subject: &str, body: &str) {
    node.logs.event(&format!("notification: {subject}: {body}"));
    if crate::builtin::find("mail").is_none() {
        return;
    }
    let params = json!({"subject": subject, "body": body});
    let state_dir = node.opts.state_dir.clone();
    let logs = node.logs.clone();
    tokio::spawn(async move {
        let path = alpharen_rpc::service_socket(&state_dir, "mail");
        let sent = async {
            let mut s = UnixStream::connect(&path).await?;
            let mut line = serde_json::to_vec(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "mail.notify", "params": params}),
            )?;
            line.push(b'\n');
            s.write_all(&line).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        if let Err(e) = sent.await {
            logs.event(&format!("notification not mailed: {e}"));
        }
    });
}
