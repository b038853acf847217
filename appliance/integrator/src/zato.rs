//! The worker's requests for Zato's `self.crypto` and `self.user_config`:
//! encryption with the node's Fernet key and the user config with its
//! secret references resolved. Neither key nor secrets ever reach a log.

use std::time::{SystemTime, UNIX_EPOCH};

use alpharen_store::View;
use alpharen_store::config::secret_ref;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::fernet::{KEY_SECRET, Key};

type Answer = Result<Value, (String, &'static str)>;

/// Makes the node's Fernet key when the secret store has none yet; the
/// supervisor keeps the first one made, so racing starts agree.
pub async fn ensure_key(state_dir: &std::path::Path, view: &mut View) {
    if view.secret(KEY_SECRET).is_some() {
        return;
    }
    let Some(made) = Key::generate() else {
        tracing::warn!("no randomness for the crypto key; self.crypto.encrypt will fail");
        return;
    };
    match alpharen_rpc::view::keep_secret(state_dir, "integrator", KEY_SECRET, &made).await {
        Ok(kept) => {
            view.secrets.insert(KEY_SECRET.into(), kept);
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot keep the crypto key; self.crypto.encrypt will fail")
        }
    }
}

fn key(view: &View) -> Result<Key, (String, &'static str)> {
    view.secret(KEY_SECRET).and_then(Key::parse).ok_or_else(|| {
        (
            format!("the node's crypto key ({KEY_SECRET}) is not in the secret store; restart the integrator to make one"),
            "unavailable",
        )
    })
}

fn bytes_param(req: &Value, name: &str) -> Result<Vec<u8>, (String, &'static str)> {
    req[name]
        .as_str()
        .and_then(|s| STANDARD.decode(s).ok())
        .ok_or_else(|| (format!("{name} must be base64 text"), "invalid_params"))
}

/// Answers `crypto.*` and `user_config`; `None` for other calls.
pub fn host_call(
    view: &View,
    user_config: &serde_json::Map<String, Value>,
    req: &Value,
) -> Option<Answer> {
    Some(match req["call"].as_str().unwrap_or_default() {
        "crypto.encrypt" => (|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            key(view)?
                .encrypt(&bytes_param(req, "data")?, now)
                .map(Value::String)
                .ok_or_else(|| ("no randomness for the IV".to_string(), "internal_error"))
        })(),
        "crypto.decrypt" => (|| {
            let token = req["token"]
                .as_str()
                .ok_or_else(|| ("token must be a string".to_string(), "invalid_params"))?;
            let plain = key(view)?
                .decrypt(token)
                .map_err(|e| (e.to_string(), "invalid_token"))?;
            Ok(json!(STANDARD.encode(plain)))
        })(),
        "user_config" => resolve(
            &Value::Object(user_config.clone()),
            "integrator.user_config",
            view,
        ),
        _ => return None,
    })
}

/// `value` with every `secret:NAME` string replaced by the stored secret.
fn resolve(value: &Value, at: &str, view: &View) -> Answer {
    Ok(match value {
        Value::String(s) => match secret_ref(s) {
            Some(name) => json!(view.secret(name).ok_or_else(|| {
                (
                    format!("{at} refers to secret {name:?}, which is not in the secret store; set it with [secrets] \"{name}\" = \"...\""),
                    "missing_secret",
                )
            })?),
            None => value.clone(),
        },
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                out.insert(k.clone(), resolve(v, &format!("{at}.{k}"), view)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_config_secrets_resolve_and_a_missing_one_is_named() {
        let mut view = View::default();
        view.secrets
            .insert("integrator.user_config.crm".into(), "s3cret".into());
        let conf = json!({"crm": {"api": {"url": "http://x", "token": "secret:integrator.user_config.crm", "n": 3}}});
        let Value::Object(conf) = conf else {
            unreachable!()
        };
        let req = json!({"call": "user_config"});
        let out = host_call(&view, &conf, &req).expect("handled").expect("ok");
        assert_eq!(
            out,
            json!({"crm": {"api": {"url": "http://x", "token": "s3cret", "n": 3}}})
        );
        view.secrets.clear();
        let (e, code) = host_call(&view, &conf, &req).expect("handled").unwrap_err();
        assert_eq!(code, "missing_secret");
        assert!(e.contains("integrator.user_config.crm.api.token"), "{e}");
        assert!(host_call(&view, &conf, &json!({"call": "kv.get"})).is_none());
    }

    #[test]
    fn encrypt_then_decrypt_with_the_node_key() {
        let mut view = View::default();
        let req = json!({"call": "crypto.encrypt", "data": STANDARD.encode("hi")});
        let none = serde_json::Map::new();
        assert_eq!(
            host_call(&view, &none, &req)
                .expect("handled")
                .unwrap_err()
                .1,
            "unavailable"
        );
        view.secrets
            .insert(KEY_SECRET.into(), Key::generate().expect("key"));
        let token = host_call(&view, &none, &req)
            .expect("handled")
            .expect("token");
        let back = json!({"call": "crypto.decrypt", "token": token});
        let plain = host_call(&view, &none, &back)
            .expect("handled")
            .expect("plain");
        assert_eq!(plain, json!(STANDARD.encode("hi")));
        let bad = json!({"call": "crypto.decrypt", "token": "x"});
        assert_eq!(
            host_call(&view, &none, &bad)
                .expect("handled")
                .unwrap_err()
                .1,
            "invalid_token"
        );
    }
}
