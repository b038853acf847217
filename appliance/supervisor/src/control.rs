//! The control socket's door: hands each call to `methods`.

use std::sync::Arc;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use tokio::net::UnixListener;

use crate::state::NodeState;

struct Control(Arc<NodeState>);

impl Handler for Control {
    fn call(&self, call: Call) -> impl Future<Output = Result<Reply, RpcError>> + Send {
        let node = self.0.clone();
        async move { crate::methods::dispatch(&node, call).await }
    }
}

pub async fn serve(listener: UnixListener, node: Arc<NodeState>) {
    alpharen_rpc::serve(listener, Arc::new(Control(node))).await
}
