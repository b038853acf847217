//! `backup.create` and `backup.restore`.

use std::sync::Arc;

use alpharen_rpc::backup::{CREATE, RESTORE, Restore};
use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_store::Backup;
use serde_json::json;

use super::{author, store_err, unknown, with_store};
use crate::state::NodeState;

pub async fn call(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let value = match call.method.as_str() {
        CREATE => json!(with_store(node, |s| s.backup())?),
        RESTORE => {
            let p: Restore = call.params()?;
            let backup = Backup::parse(&p.backup.to_string()).map_err(store_err)?;
            let who = author(&call, p.author);
            super::config::commit(node, move |s| s.restore(&backup, &who)).await?
        }
        _ => return Err(unknown(&call)),
    };
    Ok(Reply::Value(value))
}
