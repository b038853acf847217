//! The web service's own methods on `<state>/run/web.sock` (forwarded by
//! the supervisor): `web.status` (the ACME certificate's state, each proxy
//! route's health, each dyndns host's last update) and `web.acme_renew`
//! (order a certificate now).

use std::sync::Arc;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use serde_json::json;

use crate::App;

pub struct Rpc {
    pub app: Arc<App>,
}

impl Handler for Rpc {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        match call.method.as_str() {
            "web.status" => {
                let updates = self
                    .app
                    .dyndns_updates
                    .lock()
                    .map(|u| u.clone())
                    .unwrap_or_default();
                let routes: Vec<_> = self.app.upstreams().iter().map(|u| u.status()).collect();
                Ok(json!({
                    "acme": self.app.acme.status(),
                    "routes": routes,
                    "dyndns": crate::dyndns::hosts(&self.app.dpx(), &updates),
                })
                .into())
            }
            "web.acme_renew" => {
                self.app
                    .acme
                    .renew_now()
                    .map_err(|e| RpcError::new("acme_off", e))?;
                Ok(json!({ "ordering": true }).into())
            }
            m => Err(RpcError::new(
                "method_not_found",
                format!("no method {m:?} in the web service"),
            )),
        }
    }
}
