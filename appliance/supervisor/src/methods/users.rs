//! `users.*` and `setup.*`.

use std::sync::Arc;
use std::time::Instant;

use alpharen_rpc::setup::{self, Setup};
use alpharen_rpc::users::{self as m, Add, Changed, Del, Deleted, Passwd};
use alpharen_rpc::{Call, Reply, RpcError};
use alpharen_store::{Config, Role};
use serde_json::{Value, json};

use super::{author, store_err, unknown, with_store};
use crate::setup::CodeCheck;
use crate::state::NodeState;

pub async fn call(node: &Arc<NodeState>, call: Call) -> Result<Reply, RpcError> {
    let value = match call.method.as_str() {
        m::LIST => json!(with_store(node, |s| s.users())?),
        m::ADD => {
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
        m::PASSWD => {
            let p: Passwd = call.params()?;
            let who = author(&call, p.author);
            with_store(node, |s| s.set_password(&p.name, &p.password, &who))?;
            json!(Changed { changed: p.name })
        }
        m::DEL => {
            let p: Del = call.params()?;
            let who = author(&call, p.author);
            with_store(node, |s| s.delete_user(&p.name, &who))?;
            json!(Deleted { deleted: p.name })
        }
        m::AUTHENTICATE => {
            json!(crate::login::authenticate(node, call.params()?).await?)
        }
        setup::STATUS => {
            let required = !with_store(node, |s| s.has_admin())?;
            let code_file =
                required.then(|| node.opts.state_dir.join("setup-code").display().to_string());
            json!(setup::Status {
                required,
                code_file
            })
        }
        setup::COMPLETE => complete(node, call.params()?).await?,
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
    let password = p.admin_password;
    let out = super::config::commit(node, move |s| {
        s.add_user("admin", &password, Role::Admin, "setup")?;
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
