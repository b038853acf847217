//! `ctl --node URL`: the commands that have a route in the node's REST API,
//! sent over HTTPS with an API token instead of over the control socket,
//! so a developer deploys from their own machine; `system update` streams
//! the bundle as the body of `POST /api/v1/system/update`. The answers are the same
//! JSON the control methods give, so the commands print them the same way.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use alpharen_rpc::{ClientError, RpcError};
use serde_json::Value;

use crate::CtlError;

/// Where a token comes from: never an argument, which `ps` and shell
/// history would show.
pub const TOKEN_ENV: &str = "ALPHAREN_TOKEN";

/// A deploy validates in a fresh worker (30 s on the node) before answering.
const TIMEOUT: Duration = Duration::from_secs(90);

/// One API request: verb, path under the node's URL, and body.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub verb: &'static str,
    pub path: String,
    pub body: Option<Body>,
}

#[derive(Debug, PartialEq)]
pub enum Body {
    Json(Value),
    /// A service file's text, as `curl --data-binary` sends it.
    Text(String),
    /// A zip or a wheel, as `curl --data-binary` sends it.
    Bytes(Vec<u8>),
}

/// The bytes `ctl` read into a control method's base64 param.
fn unbase64(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("bad base64: {e}"))
}

/// The API route for a control method, or why there is none.
pub fn route(method: &str, params: &Value) -> Result<Request, String> {
    let name = || segment(params["name"].as_str().unwrap_or_default());
    let services = "/api/v1/integrator/services";
    let (verb, path, body) = match method {
        "integrator.list" => ("GET", services.to_string(), None),
        "integrator.stats" => ("GET", "/api/v1/integrator/stats".into(), None),
        "integrator.openapi" => ("GET", "/api/v1/integrator/openapi.json".into(), None),
        "integrator.deploy" if params["files"].is_object() => {
            return Err(
                "deploying a directory with --node is not supported; zip it and deploy the zip"
                    .into(),
            );
        }
        "integrator.deploy" => {
            let file = segment(params["file"].as_str().unwrap_or_default());
            let body = match params["zip"].as_str() {
                Some(z) => Body::Bytes(unbase64(z)?),
                None => Body::Text(params["source"].as_str().unwrap_or_default().to_string()),
            };
            ("POST", format!("{services}/{file}"), Some(body))
        }
        "integrator.packages" => ("GET", "/api/v1/integrator/packages".into(), None),
        "integrator.package_add" => (
            "POST",
            format!(
                "/api/v1/integrator/packages/{}",
                segment(params["file"].as_str().unwrap_or_default())
            ),
            Some(Body::Bytes(unbase64(
                params["wheel"].as_str().unwrap_or_default(),
            )?)),
        ),
        "integrator.package_remove" => (
            "DELETE",
            format!("/api/v1/integrator/packages/{}", name()),
            None,
        ),
        "integrator.package_sets" => ("GET", "/api/v1/integrator/package-sets".into(), None),
        "integrator.package_rollback" => (
            "POST",
            format!(
                "/api/v1/integrator/package-sets/{}/rollback",
                params["version"].as_i64().unwrap_or_default()
            ),
            None,
        ),
        "integrator.source" => {
            let q = match params["version"].as_i64() {
                Some(v) => format!("?version={v}"),
                None => String::new(),
            };
            ("GET", format!("{services}/{}{q}", name()), None)
        }
        "integrator.versions" => ("GET", format!("{services}/{}/versions", name()), None),
        "integrator.rollback" => (
            "POST",
            format!("{services}/{}/rollback", name()),
            Some(Body::Json(
                serde_json::json!({"version": params["version"]}),
            )),
        ),
        "integrator.undeploy" => ("DELETE", format!("{services}/{}", name()), None),
        "integrator.invoke" => (
            "POST",
            format!("/api/v1/integrator/invoke/{}", name()),
            Some(Body::Json(params["payload"].clone())),
        ),
        _ => {
            return Err(format!(
                "{method} has no API route for --node yet; run it on the node (ssh admin@node ...)"
            ));
        }
    };
    Ok(Request { verb, path, body })
}

/// A path segment with everything but unreserved characters escaped.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The node's API over HTTPS.
pub struct Remote {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Remote {
    /// `cacert`: a PEM file to trust instead of the public CAs (the node's
    /// self-signed certificate, `<state>/tls/cert.pem`).
    pub fn new(url: &str, cacert: Option<&Path>) -> Result<Remote, CtlError> {
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                CtlError::Usage(format!(
                    "--node needs an API token in {TOKEN_ENV} (make one in the console or with POST /api/v1/tokens)"
                ))
            })?;
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("https://") && !base.starts_with("http://") {
            return Err(CtlError::Usage(format!(
                "--node {url}: give the node's URL, e.g. https://node.example"
            )));
        }
        let roots = match cacert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| CtlError::Io(format!("cannot read {}: {e}", path.display())))?;
                let certs = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                if certs.is_empty() {
                    return Err(CtlError::Usage(format!(
                        "--cacert {}: no PEM certificate in it",
                        path.display()
                    )));
                }
                ureq::tls::RootCerts::new_with_certs(&certs)
            }
            None => ureq::tls::RootCerts::WebPki,
        };
        let tls = ureq::tls::TlsConfig::builder().root_certs(roots).build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into();
        Ok(Remote { base, token, agent })
    }

    /// Calls the route of `method`; an API error comes back as the control
    /// socket's would (`{code, message, details}`).
    pub fn call(&self, method: &str, params: &Value) -> Result<Value, ClientError> {
        let req = route(method, params)
            .map_err(|m| ClientError::Rpc(RpcError::new("not_supported", m)))?;
        let url = format!("{}{}", self.base, req.path);
        let auth = format!("Bearer {}", self.token);
        let sent = match (req.verb, req.body) {
            ("GET", _) => self.agent.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .call(),
            (_, Some(Body::Bytes(b))) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .content_type("application/octet-stream")
                .send(&b[..]),
            (_, Some(Body::Text(t))) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .content_type("text/x-python; charset=utf-8")
                .send(t.as_bytes()),
            (_, body) => {
                let json = match body {
                    Some(Body::Json(v)) => v,
                    _ => Value::Object(Default::default()),
                };
                self.agent
                    .post(&url)
                    .header("authorization", &auth)
                    .content_type("application/json")
                    .send(json.to_string().as_bytes())
            }
        };
        answer(
            &url,
            sent.map_err(|e| ClientError::Protocol(format!("{}: {e}", self.base)))?,
        )
    }

    /// A call that takes an upload: `system.update.upload`'s bytes become
    /// the streamed body of `POST /api/v1/system/update` (chunked, never
    /// held whole), `progress` hearing the bytes read so far.
    pub fn upload(
        &self,
        method: &str,
        input: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Value, ClientError> {
        if method != alpharen_rpc::system::UPDATE_UPLOAD {
            return Err(ClientError::Rpc(RpcError::new(
                "not_supported",
                format!("{method} has no API route for --node"),
            )));
        }
        let url = format!("{}/api/v1/system/update", self.base);
        let mut counted = Counted {
            input,
            read: 0,
            progress,
            failed: None,
        };
        let sent = self
            .agent
            .post(&url)
            .config()
            // A bundle takes as long as the network needs; only a stall fails.
            .timeout_global(None)
            .timeout_per_write(Some(UPLOAD_STALL))
            .timeout_recv_response(Some(UPLOAD_ANSWER))
            .build()
            .header("authorization", &format!("Bearer {}", self.token))
            .content_type("application/octet-stream")
            .send(ureq::SendBody::from_reader(&mut counted));
        if let Some(e) = counted.failed.take() {
            return Err(ClientError::Input(e));
        }
        answer(
            &url,
            sent.map_err(|e| ClientError::Protocol(format!("{}: {e}", self.base)))?,
        )
    }
}

/// A write to the node that makes no progress for this long fails.
const UPLOAD_STALL: Duration = Duration::from_secs(60);
/// After the last byte the node verifies the end and syncs the slot.
const UPLOAD_ANSWER: Duration = Duration::from_secs(600);

/// The upload's input, counting what it gives and keeping its own error
/// apart from the connection's.
struct Counted<'a> {
    input: &'a mut dyn Read,
    read: u64,
    progress: &'a mut dyn FnMut(u64),
    failed: Option<std::io::Error>,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.input.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                (self.progress)(self.read);
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                let message = e.to_string();
                self.failed = Some(e);
                Err(std::io::Error::new(kind, message))
            }
        }
    }
}

/// An API answer as the control socket's would be: the JSON body, or its
/// error as `{code, message, details}`.
fn answer(url: &str, mut resp: ureq::http::Response<ureq::Body>) -> Result<Value, ClientError> {
    let status = resp.status();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| ClientError::Protocol(format!("{url}: reading the answer: {e}")))?;
    let body: Value = serde_json::from_str(&text).map_err(|_| {
        ClientError::Protocol(format!(
            "{url}: HTTP {status}, not JSON: {}",
            text.chars().take(200).collect::<String>()
        ))
    })?;
    if status.is_success() {
        return Ok(body);
    }
    let code = body["code"].as_str().unwrap_or("http_error");
    let message = body["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let mut err = RpcError::new(code, message);
    err.details = body["details"].clone();
    Err(ClientError::Rpc(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deploy_sends_the_source_as_the_body() {
        let r = route(
            "integrator.deploy",
            &json!({"file": "svc.py", "source": "x = 1\n", "author": "a"}),
        )
        .unwrap();
        assert_eq!(r.verb, "POST");
        assert_eq!(r.path, "/api/v1/integrator/services/svc.py");
        assert_eq!(r.body, Some(Body::Text("x = 1\n".into())));
    }

    #[test]
    fn zips_and_wheels_go_as_bytes_and_directories_are_refused() {
        let r = route(
            "integrator.deploy",
            &json!({"file": "proj.zip", "zip": "UEsDBA=="}),
        )
        .unwrap();
        assert_eq!(r.path, "/api/v1/integrator/services/proj.zip");
        assert_eq!(r.body, Some(Body::Bytes(b"PK\x03\x04".to_vec())));
        let r = route(
            "integrator.package_add",
            &json!({"file": "a-1-py3-none-any.whl", "wheel": "UEsDBA=="}),
        )
        .unwrap();
        assert_eq!(r.path, "/api/v1/integrator/packages/a-1-py3-none-any.whl");
        let e = route("integrator.deploy", &json!({"file": "p", "files": {}})).unwrap_err();
        assert!(e.contains("zip it"), "{e}");
    }

    #[test]
    fn names_are_escaped_and_versions_queried() {
        let r = route(
            "integrator.source",
            &json!({"name": "a b/../c", "version": 2}),
        )
        .unwrap();
        assert_eq!(
            r.path,
            "/api/v1/integrator/services/a%20b%2F..%2Fc?version=2"
        );
        let r = route(
            "integrator.rollback",
            &json!({"name": "svc.py", "version": 1}),
        )
        .unwrap();
        assert_eq!(
            (r.verb, r.path.as_str(), r.body),
            (
                "POST",
                "/api/v1/integrator/services/svc.py/rollback",
                Some(Body::Json(json!({"version": 1})))
            )
        );
        let r = route("integrator.undeploy", &json!({"name": "svc.py"})).unwrap();
        assert_eq!(r.verb, "DELETE");
    }

    #[test]
    fn package_sets_and_their_rollback_have_routes() {
        let r = route("integrator.package_sets", &json!({})).unwrap();
        assert_eq!(
            (r.verb, r.path.as_str()),
            ("GET", "/api/v1/integrator/package-sets")
        );
        let r = route("integrator.package_rollback", &json!({"version": 3})).unwrap();
        assert_eq!(
            (r.verb, r.path.as_str(), r.body),
            ("POST", "/api/v1/integrator/package-sets/3/rollback", None)
        );
    }

    #[test]
    fn methods_without_a_route_say_so() {
        let e = route("config.apply", &json!({})).unwrap_err();
        assert!(e.contains("config.apply has no API route"), "{e}");
    }
}
