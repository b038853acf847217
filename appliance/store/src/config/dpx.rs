//! `[dpx]`: the cluster zone served by the node's DNS, the keys allowed to
//! change it (RFC 2136 with TSIG) and the dyndns2 users of `/nic/update`.
//! Key material and passwords are never in this section: they are store
//! secrets named by [`TsigKey::secret_name`] and [`DyndnsUser::secret_name`].

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Dpx {
    pub zone: Option<String>,
    /// DNS port (UDP and TCP); 53 on a node, 5353 on 127.0.0.1 with `--dev`.
    pub port: Option<u16>,
    /// UDP threads, each with its own socket on the port (SO_REUSEPORT,
    /// the kernel spreads clients over them); 0 means one per CPU.
    pub udp_workers: u32,
    pub records: Vec<DnsRecord>,
    pub tsig_keys: Vec<TsigKey>,
    pub dyndns: Dyndns,
    /// Reverse-proxy routes served on the web service's HTTPS listener.
    pub routes: Vec<ProxyRoute>,
    /// Keeps this node's public name current at an upstream dyndns2 provider.
    pub client: Option<DyndnsClient>,
}

/// `[dpx.client]`: the dyndns2 client. The password is the secret
/// [`DyndnsClient::PASSWORD_SECRET`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DyndnsClient {
    /// `https://host[:port]` of the provider; `/nic/update` is appended.
    pub server: String,
    pub hostname: String,
    pub username: String,
    /// Take the address from this interface (first global IPv4, else IPv6)...
    #[serde(default)]
    pub interface: Option<String>,
    /// ...or from this URL, which answers with the caller's address in text.
    #[serde(default)]
    pub check_url: Option<String>,
    /// Seconds between address checks.
    #[serde(default = "default_client_interval")]
    pub interval: u64,
    /// PEM CA for a provider with a private CA (added to the built-in roots).
    #[serde(default)]
    pub ca_file: Option<String>,
}

fn default_client_interval() -> u64 {
    300
}

impl DyndnsClient {
    pub const PASSWORD_SECRET: &str = "dpx.client.password";
}

/// `(tls, host, port, path)` of an `http://` or `https://` URL; an IPv6
/// host comes without its brackets.
pub fn split_url(url: &str) -> Option<(bool, &str, u16, &str)> {
    let (tls, rest) = match url.split_once("://")? {
        ("https", r) => (true, r),
        ("http", r) => (false, r),
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let default = if tls { 443 } else { 80 };
    let bracketed = authority
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    let (host, port) = match (super::split_endpoint(authority), bracketed) {
        (Some((h, p)), _) => (h, p),
        // `[2001:db8::1]` without a port.
        (None, Some(h)) => (h, default),
        (None, None) if !authority.is_empty() && !authority.contains([':', '@', ' ']) => {
            (authority, default)
        }
        (None, None) => return None,
    };
    Some((tls, host, port, path))
}

/// `[[dpx.routes]]`: requests for `host` (and `path_prefix`) go to `backend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProxyRoute {
    pub host: String,
    /// `http://host[:port]` or `https://host[:port]`, reached from the node
    /// (a VPN address for a backend in a LAN without port forwarding).
    pub backend: String,
    /// Only paths below this prefix (`/app`); the whole host when unset.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only clients with an address inside the VPN's networks.
    #[serde(default)]
    pub vpn_only: bool,
    /// Seconds to get a connection to the backend (TCP and TLS); 502 after.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
    /// Seconds from sending the request to the response headers; 504
    /// after. Bodies and WebSockets then stream without a limit.
    #[serde(default = "default_response_timeout")]
    pub response_timeout: u64,
    /// PEM CA for an `https://` backend with a private CA (added to the
    /// built-in roots).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The name to verify an `https://` backend's certificate against when
    /// it is not the backend URL's host (a backend reached by IP).
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Active health checks; without them every request tries the backend.
    #[serde(default)]
    pub health: Option<HealthCheck>,
}

fn default_connect_timeout() -> u64 {
    5
}

fn default_response_timeout() -> u64 {
    60
}

impl ProxyRoute {
    /// `(host, port)` of an `http(s)://host[:port][/]` backend.
    pub fn backend_authority(&self) -> Option<(&str, u16)> {
        match split_url(&self.backend)? {
            (_, host, port, "/") => Some((host, port)),
            _ => None,
        }
    }

    /// Whether the backend is reached over TLS (`https://`).
    pub fn backend_tls(&self) -> bool {
        matches!(split_url(&self.backend), Some((true, ..)))
    }

    fn validate(&self, at: &KeyPath, out: &mut Vec<Problem>) {
        check::hostname(out, &at.key("host"), &self.host);
        if self.backend_authority().is_none() {
            check::push(
                out,
                &at.key("backend"),
                format!(
                    "{:?} is not a backend URL like http://10.8.0.2:8080 or https://app.lan",
                    self.backend
                ),
            );
        }
        if let Some(p) = &self.path_prefix {
            path(out, &at.key("path_prefix"), p);
        }
        seconds(out, &at.key("connect_timeout"), self.connect_timeout, 300);
        seconds(
            out,
            &at.key("response_timeout"),
            self.response_timeout,
            3600,
        );
        if !self.backend_tls() {
            for (key, set) in [
                ("ca_file", self.ca_file.is_some()),
                ("tls_server_name", self.tls_server_name.is_some()),
            ] {
                if set {
                    check::push(out, &at.key(key), "only for https:// backends");
                }
            }
        }
        if let Some(name) = &self.tls_server_name
            && name.parse::<std::net::IpAddr>().is_err()
        {
            check::hostname(out, &at.key("tls_server_name"), name);
        }
        if let Some(h) = &self.health {
            let at = at.key("health");
            path(out, &at.key("path"), &h.path);
            seconds(out, &at.key("interval"), h.interval, 3600);
            seconds(out, &at.key("timeout"), h.timeout, 3600);
            if h.expect_status.is_some_and(|s| !(100..=599).contains(&s)) {
                check::push(
                    out,
                    &at.key("expect_status"),
                    "must be an HTTP status, 100-599",
                );
            }
            for (key, n) in [("fails", h.fails), ("passes", h.passes)] {
                if !(1..=100).contains(&n) {
                    check::push(out, &at.key(key), "must be between 1 and 100 checks");
                }
            }
        }
    }
}

/// `[dpx.routes.health]`: the backend is probed every `interval` seconds
/// with `GET path`; `fails` failed probes in a row take it out of service,
/// `passes` good ones bring it back (nginx's fails/passes, HAProxy's
/// fall/rise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheck {
    pub path: String,
    /// Seconds between probes.
    pub interval: u64,
    /// Seconds a probe may take, answer headers included.
    pub timeout: u64,
    /// The status a healthy backend answers; any 2xx or 3xx when unset.
    pub expect_status: Option<u16>,
    pub fails: u32,
    pub passes: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/".into(),
            interval: 10,
            timeout: 5,
            expect_status: None,
            fails: 2,
            passes: 1,
        }
    }
}

/// A URL path like `/app`: leading slash, no whitespace.
fn path(out: &mut Vec<Problem>, at: &KeyPath, p: &str) {
    if !p.starts_with('/') || p.contains(char::is_whitespace) {
        check::push(out, at, format!("{p:?} is not a path like /app"));
    }
}

fn seconds(out: &mut Vec<Problem>, at: &KeyPath, value: u64, max: u64) {
    if !(1..=max).contains(&value) {
        check::push(out, at, format!("must be between 1 and {max} seconds"));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    #[serde(default)]
    pub ttl: Option<u32>,
}

/// A TSIG key allowed to send RFC 2136 updates, and what it may change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TsigKey {
    /// Key name as clients send it (`nsupdate -y hmac-sha256:NAME:SECRET`).
    pub name: String,
    pub algorithm: TsigAlgorithm,
    /// Names the key may change, relative to the zone (`@` for the apex,
    /// `*.dyn` for everything below `dyn`) or absolute with a final dot.
    pub names: Vec<String>,
    /// Record types the key may change; empty means all of A, AAAA, CNAME,
    /// TXT, MX and SRV.
    #[serde(default)]
    pub types: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum TsigAlgorithm {
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

/// `[dpx.dyndns]`: the dyndns2 protocol (`/nic/update`) on the web service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Dyndns {
    pub users: Vec<DyndnsUser>,
    /// Seconds a client must wait between two updates of one host name;
    /// faster updates are answered `abuse`.
    pub min_interval: u64,
}

impl Default for Dyndns {
    fn default() -> Self {
        Dyndns {
            users: Vec::new(),
            min_interval: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DyndnsUser {
    pub name: String,
    /// Fully qualified names (inside the zone) this user may update.
    pub hostnames: Vec<String>,
}

/// Types a record in the zone may have (SOA is made by the server).
pub const RECORD_TYPES: [&str; 7] = ["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "NS"];
/// Types dynamic updates may change (the apex SOA and NS stay the server's).
pub const UPDATE_TYPES: [&str; 6] = ["A", "AAAA", "CNAME", "TXT", "MX", "SRV"];

impl TsigKey {
    /// The store secret holding the base64 key.
    pub fn secret_name(&self) -> String {
        format!("dpx.tsig.{}", self.name.trim_end_matches('.'))
    }
}

impl DyndnsUser {
    /// The store secret holding the user's password.
    pub fn secret_name(&self) -> String {
        format!("dpx.dyndns.{}", self.name)
    }
}

/// Whether `name` (absolute, any case, final dot optional) is inside `zone`.
pub fn in_zone(name: &str, zone: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    name == zone || name.ends_with(&format!(".{zone}"))
}

impl Dpx {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if let Some(zone) = &self.zone {
            check::hostname(out, &path.key("zone"), zone);
        }
        if self.port == Some(0) {
            check::push(out, &path.key("port"), "must be 1-65535");
        }
        if self.udp_workers > 64 {
            check::push(out, &path.key("udp_workers"), "at most 64 workers");
        }
        let needs_zone =
            !self.records.is_empty() || !self.tsig_keys.is_empty() || !self.dyndns.users.is_empty();
        if needs_zone && self.zone.is_none() {
            check::push(
                out,
                &path.key("zone"),
                "records, tsig_keys and dyndns users need a zone to live in",
            );
        }
        for (i, rec) in self.records.iter().enumerate() {
            rec.validate(&path.key("records").index(i), out);
        }
        let keys = path.key("tsig_keys");
        check::unique(
            out,
            &keys,
            "name",
            self.tsig_keys.iter().map(|k| k.name.as_str()),
        );
        for (i, key) in self.tsig_keys.iter().enumerate() {
            let at = keys.index(i);
            check::hostname(out, &at.key("name"), &key.name);
            if key.names.is_empty() {
                check::push(
                    out,
                    &at.key("names"),
                    "a key needs at least one name it may change",
                );
            }
            for (j, name) in key.names.iter().enumerate() {
                if name != "@" {
                    owner_name(out, &at.key("names").index(j), name);
                }
            }
            for (j, t) in key.types.iter().enumerate() {
                if !UPDATE_TYPES.contains(&t.as_str()) {
                    check::push(
                        out,
                        &at.key("types").index(j),
                        format!("{t:?} is not one of {}", UPDATE_TYPES.join(", ")),
                    );
                }
            }
        }
        let routes = path.key("routes");
        let keys_of: Vec<String> = self
            .routes
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.host.to_ascii_lowercase(),
                    r.path_prefix.as_deref().unwrap_or("/")
                )
            })
            .collect();
        check::unique(out, &routes, "host", keys_of.iter().map(String::as_str));
        for (i, r) in self.routes.iter().enumerate() {
            r.validate(&routes.index(i), out);
        }
        if let Some(c) = &self.client {
            let at = path.key("client");
            if !matches!(split_url(&c.server), Some((true, _, _, "/"))) {
                check::push(
                    out,
                    &at.key("server"),
                    format!("{:?} is not https://host[:port]", c.server),
                );
            }
            check::hostname(out, &at.key("hostname"), &c.hostname);
            if c.username.is_empty() || c.username.contains(':') {
                check::push(out, &at.key("username"), "must be non-empty without ':'");
            }
            match (&c.interface, &c.check_url) {
                (Some(_), None) => {}
                (None, Some(u)) if split_url(u).is_some() => {}
                (None, Some(u)) => check::push(
                    out,
                    &at.key("check_url"),
                    format!("{u:?} is not an http(s) URL"),
                ),
                _ => check::push(out, &at, "set exactly one of interface and check_url"),
            }
            if c.interval < 60 {
                check::push(
                    out,
                    &at.key("interval"),
                    "at least 60 seconds (providers block faster clients)",
                );
            }
        }
        let users = path.key("dyndns").key("users");
        check::unique(
            out,
            &users,
            "name",
            self.dyndns.users.iter().map(|u| u.name.as_str()),
        );
        for (i, user) in self.dyndns.users.iter().enumerate() {
            let at = users.index(i);
            check::object_name(out, &at.key("name"), &user.name);
            for (j, host) in user.hostnames.iter().enumerate() {
                let host_at = at.key("hostnames").index(j);
                check::hostname(out, &host_at, host);
                if let Some(zone) = &self.zone
                    && !in_zone(host, zone)
                {
                    check::push(out, &host_at, format!("{host:?} is not inside {zone:?}"));
                }
            }
        }
    }
}

/// A record owner: a host name that may start with `*.` and whose labels
/// may start with `_` (`_sip._tcp`), as SRV and TXT owners do.
fn owner_name(out: &mut Vec<Problem>, path: &KeyPath, name: &str) {
    let plain: Vec<&str> = name
        .trim_start_matches("*.")
        .split('.')
        .map(|l| l.strip_prefix('_').unwrap_or(l))
        .collect();
    let mut problems = Vec::new();
    check::hostname(&mut problems, path, &plain.join("."));
    if !problems.is_empty() {
        check::push(
            out,
            path,
            format!(
                "{name:?} is not a DNS name (labels of letters, digits, '-', a leading '_' or a leading '*.')"
            ),
        );
    }
}

impl DnsRecord {
    fn validate(&self, at: &KeyPath, out: &mut Vec<Problem>) {
        if self.name != "@" {
            owner_name(out, &at.key("name"), &self.name);
        }
        if !RECORD_TYPES.contains(&self.kind.as_str()) {
            check::push(
                out,
                &at.key("type"),
                format!("{:?} is not one of {}", self.kind, RECORD_TYPES.join(", ")),
            );
            return;
        }
        let v = self.value.as_str();
        let fields: Vec<&str> = v.split_whitespace().collect();
        let host = |s: &str| {
            let mut p = Vec::new();
            check::hostname(&mut p, at, s);
            p.is_empty()
        };
        let (ok, shape) = match self.kind.as_str() {
            "A" => (v.parse::<std::net::Ipv4Addr>().is_ok(), "an IPv4 address"),
            "AAAA" => (v.parse::<std::net::Ipv6Addr>().is_ok(), "an IPv6 address"),
            "CNAME" | "NS" => (host(v), "a host name"),
            "MX" => (
                fields.len() == 2 && fields[0].parse::<u16>().is_ok() && host(fields[1]),
                "\"PREFERENCE HOST\" like \"10 mail\"",
            ),
            "SRV" => (
                fields.len() == 4
                    && fields[..3].iter().all(|f| f.parse::<u16>().is_ok())
                    && host(fields[3]),
                "\"PRIORITY WEIGHT PORT TARGET\" like \"0 5 443 www\"",
            ),
            _ => (!v.is_empty() && v.len() <= 255, "1-255 characters of text"),
        };
        if !ok {
            check::push(
                out,
                &at.key("value"),
                format!("{v:?} is not {shape} for this {} record", self.kind),
            );
        }
    }
}
