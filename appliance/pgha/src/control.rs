//! `<state>/run/pgha.sock`: `pgha.status` (every group: roles, lag, last
//! action, pending timers, excluded groups; the last backup and the
//! next),
//! `pgha.unpin` (forget a host key after checking a host that was
//! reinstalled) and `pgha.backup` (run the backup controller now).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::{Error, Shared};

pub fn start(shared: Arc<Shared>) -> Result<JoinHandle<()>, Error> {
    let dir = shared.state_dir.clone();
    alpharen_rpc::spawn_service(&dir, "pgha", Control(shared))
        .map_err(|e| Error::Io("control socket".into(), e))
}

struct Control(Arc<Shared>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnpinParams {
    /// `host:port` as the status shows it.
    host: String,
}

impl Handler for Control {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        let sh = &self.0;
        match call.method.as_str() {
            "pgha.status" => {
                let groups: Vec<_> = sh
                    .groups
                    .lock()
                    .map(|g| {
                        g.values()
                            .filter_map(|s| s.lock().ok().map(|s| s.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                let excluded = sh.excluded.lock().map(|x| x.clone()).unwrap_or_default();
                let backup = sh.backup.lock().map(|b| b.clone()).unwrap_or_default();
                Ok(Reply::Value(json!({
                    "groups": groups,
                    "excluded": excluded,
                    "client_key": sh.client_key,
                    "backup_last": backup.last,
                    "backup_next": backup.next,
                    "singletons": sh.singletons.lock().map(|s| s.clone()).unwrap_or_default(),
                })))
            }
            "pgha.backup" => {
                if !sh.backup_configured.load(Ordering::Relaxed) {
                    return Err(RpcError::new(
                        "not_configured",
                        "no pgha.backup_controller is configured",
                    ));
                }
                sh.backup_now.notify_one();
                Ok(Reply::Value(json!({"started": true})))
            }
            "pgha.unpin" => {
                let p: UnpinParams = call.params()?;
                if sh.pins.forget(&p.host) {
                    Ok(Reply::Value(json!({"unpinned": p.host})))
                } else {
                    Err(RpcError::new(
                        "not_found",
                        format!(
                            "no pinned key for {:?}; hosts are written host:port",
                            p.host
                        ),
                    ))
                }
            }
            _ => Err(RpcError::new(
                "method_not_found",
                format!(
                    "pgha has no method {:?} (status, unpin, backup)",
                    call.method
                ),
            )),
        }
    }
}
