//! The web service's own methods on `<state>/run/web.sock` (forwarded by
//! the supervisor): `web.status` (the ACME certificate's state) and
//! `web.acme_renew` (order a certificate now).

use std::sync::Arc;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use serde_json::json;

use crate::acme::Acme;

pub struct Rpc {
    pub acme: Arc<Acme>,
}

impl Handler for Rpc {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        match call.method.as_str() {
            "web.status" => Ok(json!({ "acme": self.acme.status() }).into()),
            "web.acme_renew" => {
                self.acme
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
