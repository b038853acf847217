//! Control methods, one file per namespace, in the style of mini-redis's
//! `cmd/`: each parses its own params and applies itself.

mod backup;
mod config;
mod dns;
mod forward;
mod reboot;
mod services;
pub(crate) mod update;
mod users;
mod view;

pub(crate) use view::may_read;

use std::sync::Arc;

use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_store::StoreError;
use serde_json::{Value, json};

use crate::state::NodeState;

pub async fn dispatch(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let ns = call
        .method
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    if view::METHODS.contains(&call.method.as_str()) {
        return view::call(node, &call).map(Reply::Value);
    }
    if call.method == alpharen_rpc::system::SLOTS || call.method.starts_with("system.update.") {
        return update::call(node, call).await;
    }
    if call.method.starts_with("system.reboot.") {
        return reboot::call(node, call).await;
    }
    match ns.as_str() {
        "status" | "services" | "logs" | "system" => services::call(node, call).await,
        "config" => config::call(node, call).await,
        "users" | "setup" => users::call(node, call).await,
        "backup" => backup::call(node, call).await,
        svc if crate::builtin::find(svc).is_some() => {
            forward::forward(node, svc, &call.method, call.params)
                .await
                .map(Reply::Value)
        }
        _ => Err(unknown(&call)),
    }
}

pub(crate) fn unknown(call: &Call) -> RpcError {
    RpcError::new(
        "method_not_found",
        format!(
            "there is no method {:?}; see `alpharen ctl --help`",
            call.method
        ),
    )
}

pub(crate) fn store_err(e: StoreError) -> RpcError {
    let details = match &e {
        StoreError::Invalid(problems) => json!(problems),
        _ => Value::Null,
    };
    RpcError::new(e.code(), e.to_string()).with_details(details)
}

/// Runs a closure on the store under its lock.
pub(crate) fn with_store<T>(
    node: &NodeState,
    f: impl FnOnce(&mut alpharen_store::Store) -> Result<T, StoreError>,
) -> Result<T, RpcError> {
    let mut store = node.store.lock().map_err(|_| {
        RpcError::new(
            "internal_error",
            "the store lock is poisoned; restart the supervisor",
        )
    })?;
    f(&mut store).map_err(store_err)
}

/// Who made a change, for revisions and the audit log: an explicit
/// `author` (the web and ssh doors pass their logged-in user), else the
/// peer's Unix user.
pub(crate) fn author(call: &Call, explicit: Option<String>) -> String {
    if let Some(a) = explicit {
        return a;
    }
    nix::unistd::User::from_uid(call.peer.uid.into())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", call.peer.uid), |u| u.name)
}
