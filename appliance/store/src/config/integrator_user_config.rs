//! `[integrator.user_config]`: Zato's user config. Each table is one of
//! Zato's user config files (`user_config/FILE.conf`), its tables that
//! file's sections; services read `self.user_config.FILE.SECTION.key`.
//! A value that is a secret is written `secret:integrator.NAME` and kept
//! in the secret store (`[secrets]`), never in a revision.

use serde_json::Value;

use super::{KeyPath, Problem, check, secret_ref};

/// Problems of the user config at `path`.
pub(super) fn validate(
    user_config: &serde_json::Map<String, Value>,
    path: &KeyPath,
    out: &mut Vec<Problem>,
) {
    for (file, v) in user_config {
        let at = path.key(file);
        match v {
            Value::Object(sections) => refs(sections, &at, out),
            _ => check::push(
                out,
                &at,
                "must be a table (one of Zato's user config files: [integrator.user_config.FILE.SECTION])",
            ),
        }
    }
}

fn refs(table: &serde_json::Map<String, Value>, path: &KeyPath, out: &mut Vec<Problem>) {
    for (k, v) in table {
        match v {
            Value::Object(inner) => refs(inner, &path.key(k), out),
            Value::String(s) => {
                if let Some(name) = secret_ref(s)
                    && !name.starts_with("integrator.")
                {
                    check::push(
                        out,
                        &path.key(k),
                        format!(
                            "refers to secret {name:?}; the integrator reads only secrets named integrator.*"
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn files_are_tables_and_secrets_are_the_integrators() {
        let ok = r#"
[integrator.user_config.crm.api]
url = "https://crm.example"
retries = 3
token = "secret:integrator.user_config.crm"
"#;
        let c = Config::from_toml(ok).expect("valid");
        assert_eq!(c.integrator.user_config["crm"]["api"]["retries"], 3);
        let bad = r#"
[integrator.user_config]
flat = "a file must be a table"
[integrator.user_config.crm.api]
token = "secret:pgha.other"
"#;
        let e = format!("{:?}", Config::from_toml(bad).expect_err("refused"));
        assert!(e.contains("integrator.user_config.flat"), "{e}");
        assert!(e.contains("integrator.user_config.crm.api.token"), "{e}");
        assert!(e.contains("reads only secrets named integrator.*"), "{e}");
    }
}
