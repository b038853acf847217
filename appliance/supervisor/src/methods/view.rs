//! `services.view`, `services.keep_secret`, `services.audit`: what a
//! service gets instead of opening the node's database; and
//! `services.ready`, a service saying it is serving; `services.alert`,
//! a service's alert for the admin. Under privilege
//! separation a service may ask only for itself (its user decides), and
//! sees only the secrets its [`Builtin::secrets`] prefixes name.

use alpharen_rpc::view::{ALERT, AUDIT, KEEP_SECRET, READY, VIEW};
use alpharen_rpc::{Call, RpcError};
use alpharen_store::{Config, View};
use serde::Deserialize;
use serde_json::{Value, json};

use super::with_store;
use crate::builtin::Builtin;
use crate::state::NodeState;

pub const METHODS: &[&str] = &[VIEW, KEEP_SECRET, AUDIT, READY, ALERT];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewParams {
    service: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeepParams {
    service: String,
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertParams {
    service: String,
    text: String,
}

/// Longest alert text: one line for a mail subject's body and a trap.
const MAX_ALERT: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    service: String,
    actor: String,
    action: String,
    detail: String,
}

pub fn call(node: &NodeState, call: &Call) -> Result<Value, RpcError> {
    match call.method.as_str() {
        VIEW => {
            let p: ViewParams = call.params()?;
            let b = asking_for(node, call, &p.service)?;
            let view = with_store(node, |s| {
                let config = s.current_config()?;
                let mut view = View::default();
                for name in s.secret_names()? {
                    if may_read(b, &config, &name)
                        && let Some(value) = s.secret(&name)?
                    {
                        view.secrets.insert(name, value);
                    }
                }
                view.config = config;
                Ok(view)
            })?;
            serde_json::to_value(view).map_err(|e| RpcError::new("internal_error", e.to_string()))
        }
        KEEP_SECRET => {
            let p: KeepParams = call.params()?;
            let b = asking_for(node, call, &p.service)?;
            if !b.secrets.iter().any(|pre| p.name.starts_with(pre)) || p.value.is_empty() {
                return Err(RpcError::new(
                    "forbidden",
                    format!(
                        "{} may keep only non-empty secrets named {}…",
                        b.name,
                        b.secrets.join("…, ")
                    ),
                ));
            }
            let value = with_store(node, |s| match s.secret(&p.name)? {
                Some(kept) => Ok(kept),
                None => {
                    s.set_secret(&p.name, &p.value)?;
                    s.audit(b.name, "secret.generated", &p.name)?;
                    Ok(p.value.clone())
                }
            })?;
            Ok(json!({ "value": value }))
        }
        READY => {
            let p: ViewParams = call.params()?;
            let b = asking_for(node, call, &p.service)?;
            node.serving(b.name, call.peer.pid);
            Ok(json!({}))
        }
        ALERT => {
            let p: AlertParams = call.params()?;
            let b = asking_for(node, call, &p.service)?;
            if p.text.is_empty() || p.text.len() > MAX_ALERT || p.text.contains(['\n', '\r']) {
                return Err(RpcError::invalid_params(format!(
                    "text: one line of 1 to {MAX_ALERT} bytes"
                )));
            }
            // The service's name comes from the caller's user, so no
            // service can raise another's alert or a supervisor event.
            node.notify(&format!("alert from {}", b.name), &p.text);
            Ok(json!({}))
        }
        _ => {
            let p: AuditParams = call.params()?;
            asking_for(node, call, &p.service)?;
            with_store(node, |s| s.audit(&p.actor, &p.action, &p.detail))?;
            Ok(json!({}))
        }
    }
}

/// The built-in `service`, if the caller may act for it: root may for
/// any, a service's user only for its own.
fn asking_for(node: &NodeState, call: &Call, service: &str) -> Result<&'static Builtin, RpcError> {
    let b = crate::builtin::find(service).ok_or_else(|| {
        RpcError::invalid_params(format!("service: there is no built-in service {service:?}"))
    })?;
    if node.separate && call.peer.uid != 0 && call.peer.uid != b.user.id {
        return Err(RpcError::new(
            "forbidden",
            format!(
                "uid {} is not {}'s user ({}); a service may ask only for itself",
                call.peer.uid, b.name, b.user.name
            ),
        ));
    }
    Ok(b)
}

/// Whether `name` belongs in `b`'s view: its prefixes, for the vpn the
/// preshared keys its peers name (any name the admin chose), and for mail
/// the ACME certificate's key while `[acme]` is on (STARTTLS serves that
/// certificate; mail may read the key but not keep it).
pub fn may_read(b: &Builtin, config: &Config, name: &str) -> bool {
    b.secrets.iter().any(|pre| name.starts_with(pre))
        || (b.name == "mail" && config.acme.enabled && name == "web.acme.key")
        || (b.name == "vpn"
            && config
                .vpn
                .peers
                .iter()
                .any(|p| p.preshared_key_secret.as_deref() == Some(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_holds_only_the_services_secrets() {
        let find = |n| crate::builtin::find(n).unwrap();
        let mut config = Config::default();
        assert!(may_read(
            find("integrator"),
            &config,
            "integrator.security.a"
        ));
        assert!(!may_read(find("integrator"), &config, "pgha.x.ssh_pwd"));
        assert!(!may_read(find("web"), &config, "dpx.tsig.k"));
        assert!(may_read(find("web"), &config, "dpx.dyndns.home"));
        assert!(!may_read(find("dpx"), &config, "vpn.private_key"));
        assert!(!may_read(find("vpn"), &config, "psk-phone"));
        config.vpn.peers.push(alpharen_store::config::VpnPeer {
            preshared_key_secret: Some("psk-phone".into()),
            ..Default::default()
        });
        assert!(may_read(find("vpn"), &config, "psk-phone"));
        assert!(!may_read(find("net"), &config, "psk-phone"));
        // The ACME key reaches mail only while [acme] is on; the account never.
        assert!(!may_read(find("mail"), &config, "web.acme.key"));
        config.acme.enabled = true;
        assert!(may_read(find("mail"), &config, "web.acme.key"));
        assert!(!may_read(find("mail"), &config, "web.acme.account.0011"));
        assert!(!may_read(find("reaction"), &config, "web.acme.key"));
    }
}
