//! `integrator.*` control methods on `<state>/run/integrator.sock`.

use std::sync::Arc;

use alpharen_rpc::{Call, Handler, Reply, RpcError};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;

pub struct Control(pub Arc<App>);

#[derive(Deserialize)]
struct Deploy {
    file: String,
    source: String,
}

#[derive(Deserialize)]
struct Named {
    name: String,
    #[serde(default)]
    version: Option<i64>,
}

#[derive(Deserialize)]
struct Password {
    security: String,
    #[serde(default)]
    password: Option<String>,
}

fn actor(call: &Call) -> String {
    format!("uid:{}", call.peer.uid)
}

impl Handler for Control {
    async fn call(&self, call: Call) -> Result<Reply, RpcError> {
        let app = &self.0;
        let v = match call.method.as_str() {
            "integrator.status" => app.status(),
            "integrator.deploy" => {
                let p: Deploy = call.params()?;
                app.deploy(&p.file, &p.source, &actor(&call)).await?
            }
            "integrator.list" => app.list()?,
            "integrator.source" => {
                let p: Named = call.params()?;
                app.source(&p.name, p.version)?
            }
            "integrator.versions" => app.versions(&call.params::<Named>()?.name)?,
            "integrator.rollback" => {
                let p: Named = call.params()?;
                let v = p
                    .version
                    .ok_or_else(|| RpcError::invalid_params("rollback needs a version"))?;
                app.rollback(&p.name, v, &actor(&call)).await?
            }
            "integrator.undeploy" => app.undeploy(&call.params::<Named>()?.name, &actor(&call))?,
            "integrator.stats" => app
                .stats
                .lock()
                .map(|s| s.to_json())
                .unwrap_or_else(|_| json!([])),
            "integrator.ping" => app.ping(&call.params::<Named>()?.name).await?,
            "integrator.password" => {
                let p: Password = call.params()?;
                app.password(&p.security, p.password.as_deref())?
            }
            other => {
                return Err(RpcError::new(
                    "method_not_found",
                    format!("no method {other:?}"),
                ));
            }
        };
        Ok(Reply::Value(v))
    }
}
