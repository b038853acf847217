//! `[web]`: the HTTPS front (the web service owns it).

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[web]`: the HTTPS front. Ports left out take the mode's default
/// (443/80 on a node, 8443/8080 with `--dev`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Web {
    pub https_port: Option<u16>,
    pub http_port: Option<u16>,
    /// Serve the plain-HTTP redirect to HTTPS.
    pub http_redirect: bool,
    /// PEM certificate chain of the operator's own certificate (absolute
    /// path); without it a self-signed one in `<state>/tls/` is used.
    pub cert: Option<String>,
    /// PEM private key matching `cert`.
    pub key: Option<String>,
    /// Minutes a console session lives without use.
    pub session_idle_minutes: u32,
}

impl Default for Web {
    fn default() -> Self {
        Web {
            https_port: None,
            http_port: None,
            http_redirect: true,
            cert: None,
            key: None,
            session_idle_minutes: 60,
        }
    }
}

impl Web {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        for (key, port) in [
            ("https_port", self.https_port),
            ("http_port", self.http_port),
        ] {
            check::port(out, &path.key(key), port);
        }
        if self.https_port.is_some() && self.https_port == self.http_port {
            check::push(
                out,
                &path.key("http_port"),
                "must differ from web.https_port",
            );
        }
        for (key, value) in [("cert", &self.cert), ("key", &self.key)] {
            if let Some(v) = value
                && !v.starts_with('/')
            {
                check::push(
                    out,
                    &path.key(key),
                    format!("{v:?} must be an absolute path"),
                );
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => check::push(out, &path.key("key"), "is needed when web.cert is set"),
            (None, Some(_)) => check::push(out, &path.key("cert"), "is needed when web.key is set"),
            _ => {}
        }
        if !(5..=7 * 24 * 60).contains(&self.session_idle_minutes) {
            check::push(
                out,
                &path.key("session_idle_minutes"),
                "must be between 5 and 10080 (one week)",
            );
        }
    }
}
