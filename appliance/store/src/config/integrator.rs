use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// `[integrator]`: Python service workers, security definitions, REST
/// channels, outgoing REST connections and the load balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Integrator {
    /// Load balancer port (dev binds it on 127.0.0.1), the seed's 11223.
    pub port: u16,
    /// Python worker processes; 0 means one per CPU.
    pub workers: u32,
    /// Address-space limit of a worker in MiB (RLIMIT_AS); 0 = unlimited.
    pub worker_memory_limit: u64,
    /// Default request timeout in seconds for channels without their own.
    pub timeout: u64,
    /// Other servers of the cluster the load balancer may send requests to
    /// (`http://host:port`); this node's own server is always included.
    pub servers: Vec<String>,
    pub security: Vec<SecurityDef>,
    pub channels: Vec<Channel>,
    pub outgoing: Vec<Outgoing>,
}

impl Default for Integrator {
    fn default() -> Integrator {
        Integrator {
            port: 11223,
            workers: 0,
            worker_memory_limit: 512,
            timeout: 30,
            servers: Vec::new(),
            security: Vec::new(),
            channels: Vec::new(),
            outgoing: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecurityDef {
    pub name: String,
    /// `basic`, `apikey` or `hmac`.
    pub kind: String,
    /// Basic auth user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic password, API key or HMAC key; moved into the secrets table by
    /// the integrator and generated (uuid4) when omitted.
    #[serde(default)]
    pub password: Option<String>,
    /// Header carrying the API key (apikey only), default `X-API-Key`.
    #[serde(default)]
    pub header: Option<String>,
    /// Accepted clock skew in seconds for HMAC signatures, default 300.
    #[serde(default)]
    pub skew: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub name: String,
    pub url_path: String,
    /// HTTP methods accepted; empty means any.
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default = "default_format")]
    pub data_format: String,
    pub service: String,
    #[serde(default)]
    pub security: Option<String>,
    /// Seconds; falls back to `integrator.timeout`.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// An outgoing REST connection, reached by services as `self.out.rest[name]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Outgoing {
    pub name: String,
    /// `http://host:port` (https is accepted too).
    pub host: String,
    #[serde(default = "default_root")]
    pub url_path: String,
    #[serde(default = "default_format")]
    pub data_format: String,
    /// Seconds; falls back to `integrator.timeout`.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// A `basic` security definition whose credentials are sent.
    #[serde(default)]
    pub security: Option<String>,
}

fn default_format() -> String {
    "json".into()
}

fn default_root() -> String {
    "/".into()
}

const FORMATS: [&str; 4] = ["json", "form", "xml", "raw"];
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// The seed reserves names starting with `AR` for built-in objects.
fn reserved(out: &mut Vec<Problem>, path: &KeyPath, name: &str) {
    if name.starts_with("AR") {
        check::push(
            out,
            path,
            format!("{name:?} starts with \"AR\", which is reserved for built-in objects"),
        );
    }
}

fn format_ok(out: &mut Vec<Problem>, path: &KeyPath, format: &str) {
    if !FORMATS.contains(&format) {
        check::push(
            out,
            path,
            format!("{format:?} is not one of json, form, xml, raw"),
        );
    }
}

fn http_url(out: &mut Vec<Problem>, path: &KeyPath, url: &str) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.contains('/') => {}
        _ => check::push(
            out,
            path,
            format!("{url:?} is not an http://host[:port] address (no path)"),
        ),
    }
}

impl Integrator {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if self.port == 0 {
            check::push(out, &path.key("port"), "must be 1-65535");
        }
        if self.workers > 64 {
            check::push(out, &path.key("workers"), "at most 64 workers");
        }
        if self.worker_memory_limit != 0 && self.worker_memory_limit < 32 {
            check::push(
                out,
                &path.key("worker_memory_limit"),
                "at least 32 MiB (python3 needs that much to start), or 0 for no limit",
            );
        }
        if self.timeout == 0 || self.timeout > 3600 {
            check::push(out, &path.key("timeout"), "must be 1-3600 seconds");
        }
        for (i, s) in self.servers.iter().enumerate() {
            http_url(out, &path.key("servers").index(i), s);
        }
        let sec = path.key("security");
        for (i, def) in self.security.iter().enumerate() {
            let at = sec.index(i);
            check::object_name(out, &at.key("name"), &def.name);
            reserved(out, &at.key("name"), &def.name);
            match def.kind.as_str() {
                "basic" => {
                    if def.username.as_deref().is_none_or(str::is_empty) {
                        check::push(out, &at.key("username"), "required for kind \"basic\"");
                    }
                }
                "apikey" | "hmac" => {
                    if def.username.is_some() {
                        check::push(
                            out,
                            &at.key("username"),
                            format!("only for kind \"basic\", not {:?}", def.kind),
                        );
                    }
                }
                other => check::push(
                    out,
                    &at.key("kind"),
                    format!("{other:?} is not one of basic, apikey, hmac"),
                ),
            }
            if def.header.is_some() && def.kind != "apikey" {
                check::push(out, &at.key("header"), "only for kind \"apikey\"");
            }
            if let Some(h) = &def.header
                && (h.is_empty()
                    || !h
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            {
                check::push(
                    out,
                    &at.key("header"),
                    format!("{h:?} is not a header name"),
                );
            }
            if def.skew.is_some() && def.kind != "hmac" {
                check::push(out, &at.key("skew"), "only for kind \"hmac\"");
            }
            if def.skew.is_some_and(|s| s == 0 || s > 3600) {
                check::push(out, &at.key("skew"), "must be 1-3600 seconds");
            }
            if def.password.as_deref() == Some("") {
                check::push(
                    out,
                    &at.key("password"),
                    "empty; omit it to have one generated",
                );
            }
        }
        check::unique(
            out,
            &sec,
            "name",
            self.security.iter().map(|s| s.name.as_str()),
        );
        let chans = path.key("channels");
        for (i, ch) in self.channels.iter().enumerate() {
            let at = chans.index(i);
            check::object_name(out, &at.key("name"), &ch.name);
            reserved(out, &at.key("name"), &ch.name);
            if !ch.url_path.starts_with('/') || ch.url_path.contains(['?', '#', ' ']) {
                check::push(
                    out,
                    &at.key("url_path"),
                    "must start with '/' and hold no '?', '#' or spaces",
                );
            }
            for (j, m) in ch.methods.iter().enumerate() {
                if !METHODS.contains(&m.as_str()) {
                    check::push(
                        out,
                        &at.key("methods").index(j),
                        format!("{m:?} is not one of {}", METHODS.join(", ")),
                    );
                }
            }
            format_ok(out, &at.key("data_format"), &ch.data_format);
            if ch.service.is_empty() {
                check::push(out, &at.key("service"), "must name a service");
            }
            if ch.timeout.is_some_and(|t| t == 0 || t > 3600) {
                check::push(out, &at.key("timeout"), "must be 1-3600 seconds");
            }
            if let Some(name) = &ch.security
                && !self.security.iter().any(|s| &s.name == name)
            {
                check::push(
                    out,
                    &at.key("security"),
                    format!("no security definition is named {name:?}"),
                );
            }
        }
        check::unique(
            out,
            &chans,
            "name",
            self.channels.iter().map(|c| c.name.as_str()),
        );
        check::unique(
            out,
            &chans,
            "url_path",
            self.channels.iter().map(|c| c.url_path.as_str()),
        );
        let outs = path.key("outgoing");
        for (i, o) in self.outgoing.iter().enumerate() {
            let at = outs.index(i);
            check::object_name(out, &at.key("name"), &o.name);
            reserved(out, &at.key("name"), &o.name);
            http_url(out, &at.key("host"), &o.host);
            if !o.url_path.starts_with('/') {
                check::push(out, &at.key("url_path"), "must start with '/'");
            }
            format_ok(out, &at.key("data_format"), &o.data_format);
            if o.timeout.is_some_and(|t| t == 0 || t > 3600) {
                check::push(out, &at.key("timeout"), "must be 1-3600 seconds");
            }
            if let Some(name) = &o.security {
                match self.security.iter().find(|s| &s.name == name) {
                    Some(s) if s.kind == "basic" => {}
                    Some(_) => check::push(
                        out,
                        &at.key("security"),
                        format!("{name:?} is not a basic definition"),
                    ),
                    None => check::push(
                        out,
                        &at.key("security"),
                        format!("no security definition is named {name:?}"),
                    ),
                }
            }
        }
        check::unique(
            out,
            &outs,
            "name",
            self.outgoing.iter().map(|o| o.name.as_str()),
        );
    }
}
