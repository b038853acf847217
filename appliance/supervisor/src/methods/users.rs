//! `users.*` and `setup.*`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_store::{Config, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{author, store_err, unknown, with_store};
use crate::setup::CodeCheck;
use crate::state::NodeState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Add {
    name: String,
    password: String,
    #[serde(default = "viewer")]
    role: String,
    author: Option<String>,
}

fn viewer() -> String {
    "viewer".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Passwd {
    name: String,
    password: String,
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Del {
    name: String,
    author: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Setup {
    code: String,
    admin_password: String,
    hostname: String,
    network: Option<Value>,
    timezone: Option<String>,
    mail: Option<Value>,
    #[serde(default)]
    ssh_authorized_keys: Vec<String>,
    /// The caller's address (the web passes its client's): wrong codes
    /// lock out only that client's network; `None` for local callers.
    #[serde(default)]
    client: Option<IpAddr>,
}

pub async fn call(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let value = match call.method.as_str() {
        "users.list" => json!(with_store(node, |s| s.users())?),
        "users.add" => {
            let p: Add = call.params()?;
            let role = Role::parse(&p.role).map_err(store_err)?;
            let who = author(&call, p.author);
            json!(with_store(node, |s| s.add_user(
                &p.name,
                &p.password,
                role,
                &who
            ))?)
        }
        "users.passwd" => {
            let p: Passwd = call.params()?;
            let who = author(&call, p.author);
            with_store(node, |s| s.set_password(&p.name, &p.password, &who))?;
            json!({"changed": p.name})
        }
        "users.del" => {
            let p: Del = call.params()?;
            let who = author(&call, p.author);
            with_store(node, |s| s.delete_user(&p.name, &who))?;
            json!({"deleted": p.name})
        }
        alpharen_rpc::auth::METHOD => {
            json!(crate::login::authenticate(node, call.params()?).await?)
        }
        "setup.status" => {
            let required = !with_store(node, |s| s.has_admin())?;
            json!({"required": required})
        }
        "setup.complete" => complete(node, call.params()?).await?,
        _ => return Err(unknown(&call)),
    };
    Ok(Reply::Value(value))
}

/// The wizard's one step: check the code, validate everything, then create
/// the admin and the first configured revision.
async fn complete(node: &Arc<NodeState>, p: Setup) -> Result<Value, RpcError> {
    let check = match node.setup.lock() {
        Ok(mut s) => s.check(&p.code, p.client, Instant::now()),
        Err(_) => return Err(RpcError::new("internal_error", "setup state lock poisoned")),
    };
    match check {
        CodeCheck::Ok => {}
        CodeCheck::NotRequired => {
            return Err(RpcError::new(
                "setup_done",
                "setup is already complete; log in instead",
            ));
        }
        CodeCheck::Wrong => {
            return Err(RpcError::new(
                "wrong_setup_code",
                "that setup code is wrong; it is shown on the node's console and in <state>/setup-code",
            ));
        }
        CodeCheck::Locked(left) => {
            let secs = left.as_secs() + 1;
            return Err(RpcError::new(
                "rate_limited",
                format!("too many wrong setup codes from your address; try again in {secs} s"),
            )
            .with_details(json!({"retry_after": secs})));
        }
    }
    let mut doc = with_store(node, |s| Ok(s.current_config()?.to_json()))?;
    if !p.ssh_authorized_keys.is_empty() {
        doc["ssh"]["authorized_keys"]["admin"] = json!(p.ssh_authorized_keys);
    }
    doc["node"]["hostname"] = json!(p.hostname);
    if let Some(tz) = p.timezone {
        doc["node"]["timezone"] = json!(tz);
    }
    if let Some(net) = p.network {
        doc["network"] = net;
    }
    if let Some(mail) = p.mail {
        doc["mail"] = mail;
    }
    let config =
        Config::from_value(doc).map_err(|e| store_err(alpharen_store::StoreError::Invalid(e)))?;
    let out = super::config::commit(node, |s| {
        s.add_user("admin", &p.admin_password, Role::Admin, "setup")?;
        let out = s.apply(&config, "setup", "first-boot setup")?;
        // Setup is the admin's own act on a new node: nothing to confirm.
        if let Some(p) = out.pending {
            s.confirm(p.revision, "setup")?;
        }
        Ok(out)
    })
    .await?;
    if let Ok(mut s) = node.setup.lock() {
        s.finish();
    }
    node.logs.event("setup complete: admin user created");
    Ok(out)
}
