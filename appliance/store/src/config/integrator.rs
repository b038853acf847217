use serde::{Deserialize, Serialize};

use super::integrator_amqp::{self, ChannelAmqp, OutgoingAmqp};
use super::integrator_conn::{self, OutgoingSmtp, OutgoingSql};
pub use super::jobtime::{Zone, parse_date, parse_datetime, parse_tz};
use super::url_template::{Template, channel_conflicts};
use super::{IntegratorTls, KeyPath, Problem, SecurityDef, check};

/// `[integrator]`: Python service workers, security definitions, REST
/// channels, outgoing REST connections and the load balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Integrator {
    /// Load balancer port (dev binds it on 127.0.0.1), the seed's 11223.
    pub port: u16,
    /// How the port speaks: `"node"` (TLS with the node's certificate, the
    /// default), `"off"` (plain HTTP) or `{cert, key}` (PEM files).
    pub tls: IntegratorTls,
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
    /// PostgreSQL databases: `self.outgoing.sql.get(name)`.
    pub outgoing_sql: Vec<OutgoingSql>,
    /// Mail senders through ARMAIL: `self.email.smtp.get(name)`.
    pub outgoing_smtp: Vec<OutgoingSmtp>,
    /// AMQP brokers: `self.outgoing.amqp.send(msg, name, ...)`.
    pub outgoing_amqp: Vec<OutgoingAmqp>,
    /// Queues consumed from an `outgoing_amqp` broker, a service per message.
    pub channel_amqp: Vec<ChannelAmqp>,
    /// Scheduled jobs (ARSCHED): one-time, interval or cron.
    pub jobs: Vec<Job>,
    /// Holiday calendars whose dates jobs naming them skip.
    pub calendars: Vec<Calendar>,
    /// Pub/sub topics (ARPuSuB) and their subscribing services.
    pub topics: Vec<Topic>,
    /// Attempts of `invoke_async` work before it is given up.
    pub async_attempts: u32,
    /// First retry delay of `invoke_async` work in ms (doubles, capped at 60 s).
    pub async_backoff_ms: u64,
    /// Zato's user config, `self.user_config.FILE.SECTION.key` in services
    /// (`integrator_user_config.rs`).
    pub user_config: serde_json::Map<String, serde_json::Value>,
}

impl Default for Integrator {
    fn default() -> Integrator {
        Integrator {
            port: 11223,
            tls: IntegratorTls::default(),
            workers: 0,
            worker_memory_limit: 512,
            timeout: 30,
            servers: Vec::new(),
            security: Vec::new(),
            channels: Vec::new(),
            outgoing: Vec::new(),
            outgoing_sql: Vec::new(),
            outgoing_smtp: Vec::new(),
            outgoing_amqp: Vec::new(),
            channel_amqp: Vec::new(),
            jobs: Vec::new(),
            calendars: Vec::new(),
            topics: Vec::new(),
            async_attempts: 5,
            async_backoff_ms: 1000,
            user_config: serde_json::Map::new(),
        }
    }
}

/// A scheduled job: runs `service` with `payload` on its schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub name: String,
    pub service: String,
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    /// `one_time`, `interval` or `cron`.
    pub kind: String,
    /// one_time: `YYYY-MM-DDTHH:MM[:SS]` in `timezone`.
    #[serde(default)]
    pub at: Option<String>,
    /// interval: the parts of the period, summed.
    #[serde(default)]
    pub seconds: u64,
    #[serde(default)]
    pub minutes: u64,
    #[serde(default)]
    pub hours: u64,
    #[serde(default)]
    pub days: u64,
    /// interval: first run (default: when the job is first seen) and last.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    /// cron: 5 fields (min hour dom month dow) or 6 with seconds first.
    #[serde(default)]
    pub cron: Option<String>,
    /// `UTC`, a fixed offset such as `+02:00`, or an IANA name such as
    /// `Europe/Berlin` (its daylight saving rules apply).
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// A calendar of `integrator.calendars` whose dates are skipped.
    #[serde(default)]
    pub calendar: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Runs of this job allowed at the same time.
    #[serde(default = "one")]
    pub max_instances: u32,
    /// After downtime: `run_once` (one catch-up run) or `skip`.
    #[serde(default = "default_misfire")]
    pub misfire: String,
}

/// Dates (`YYYY-MM-DD`) on which jobs naming this calendar do not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    pub name: String,
    #[serde(default)]
    pub dates: Vec<String>,
}

/// A topic: each subscriber (a service) has its own durable queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub name: String,
    #[serde(default)]
    pub subscribers: Vec<String>,
    /// Messages a subscriber's queue may hold; publishing beyond is refused.
    #[serde(default = "default_depth")]
    pub max_depth: u64,
    /// Seconds a message may wait for delivery; 0 = forever.
    #[serde(default = "default_expiry")]
    pub expiry: u64,
    /// Deliveries tried before a message goes to the dead-letter queue.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay in ms (doubles, capped at 60 s).
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
}

fn default_tz() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn default_misfire() -> String {
    "run_once".into()
}
fn default_depth() -> u64 {
    10_000
}
fn default_expiry() -> u64 {
    86_400
}
fn default_attempts() -> u32 {
    5
}
fn default_backoff() -> u64 {
    500
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
    /// Seconds; falls back to `integrator.timeout`. A WebSocket channel's
    /// limit for each message's service call.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// `"rest"` (the default) or `"websocket"`: a GET upgrade on
    /// `url_path`, then one service call per message (docs/integrator.md).
    #[serde(default = "default_transport")]
    pub transport: String,
    /// websocket: the largest message accepted, in bytes (default 1 MiB).
    #[serde(default)]
    pub max_message_size: Option<u64>,
    /// websocket: seconds between pings; a client that has not answered
    /// the previous one by then is disconnected (default 30).
    #[serde(default)]
    pub ping_interval: Option<u64>,
    /// websocket: seconds without a message either way before the
    /// connection is closed (default 600).
    #[serde(default)]
    pub idle_timeout: Option<u64>,
}

impl Channel {
    pub fn is_websocket(&self) -> bool {
        self.transport == WEBSOCKET
    }

    /// The methods it takes: a WebSocket channel only GET (the upgrade).
    pub fn takes(&self, method: &str) -> bool {
        if self.is_websocket() {
            method == "GET"
        } else {
            self.methods.is_empty() || self.methods.iter().any(|m| m == method)
        }
    }

    /// Its methods as listed to clients and in conflicts; empty = any.
    pub fn method_list(&self) -> Vec<String> {
        if self.is_websocket() {
            vec!["GET".into()]
        } else {
            self.methods.clone()
        }
    }
}

/// `transport` of a WebSocket channel.
pub const WEBSOCKET: &str = "websocket";
/// Largest `max_message_size`: the REST body limit.
pub const MAX_WS_MESSAGE: u64 = 10 << 20;

fn default_transport() -> String {
    "rest".into()
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

/// The WebSocket keys of a channel: only on `transport = "websocket"`,
/// each within its range.
fn websocket_keys(out: &mut Vec<Problem>, at: &KeyPath, ch: &Channel) {
    let ws = match ch.transport.as_str() {
        "rest" => false,
        WEBSOCKET => true,
        other => {
            check::push(
                out,
                &at.key("transport"),
                format!("{other:?} is not one of rest, websocket"),
            );
            return;
        }
    };
    let keys = [
        ("max_message_size", ch.max_message_size, 1, MAX_WS_MESSAGE),
        ("ping_interval", ch.ping_interval, 1, 3600),
        ("idle_timeout", ch.idle_timeout, 1, 86_400),
    ];
    for (key, value, min, max) in keys {
        match value {
            Some(_) if !ws => check::push(out, &at.key(key), "only for transport = \"websocket\""),
            Some(v) if v < min || v > max => {
                check::push(out, &at.key(key), format!("must be {min}-{max}"))
            }
            _ => {}
        }
    }
    if ws && ch.methods.iter().any(|m| m != "GET") {
        check::push(
            out,
            &at.key("methods"),
            "a WebSocket channel takes only GET (the upgrade request); leave methods out",
        );
    }
}

impl Integrator {
    pub(super) fn validate(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        if self.port == 0 {
            check::push(out, &path.key("port"), "must be 1-65535");
        }
        self.tls.validate(&path.key("tls"), out);
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
            reserved(out, &at.key("name"), &def.name);
            def.validate(&at, out);
            if def.kind == super::TLS_CLIENT_CERT
                && self.tls == super::IntegratorTls::Mode(super::TlsMode::Off)
            {
                check::push(
                    out,
                    &at.key("kind"),
                    "tls_client_cert needs TLS on the load-balancer port, and integrator.tls is \"off\"",
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
            if let Err(e) = Template::parse(&ch.url_path) {
                check::push(out, &at.key("url_path"), e);
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
            websocket_keys(out, &at, ch);
        }
        check::unique(
            out,
            &chans,
            "name",
            self.channels.iter().map(|c| c.name.as_str()),
        );
        channel_conflicts(out, &chans, &self.channels);
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
        integrator_conn::validate(&self.outgoing_sql, &self.outgoing_smtp, path, out, reserved);
        integrator_amqp::validate(&self.outgoing_amqp, &self.channel_amqp, path, out, reserved);
        self.validate_async(path, out);
        super::integrator_user_config::validate(&self.user_config, &path.key("user_config"), out);
    }

    fn validate_async(&self, path: &KeyPath, out: &mut Vec<Problem>) {
        let cals = path.key("calendars");
        for (i, c) in self.calendars.iter().enumerate() {
            let at = cals.index(i);
            check::object_name(out, &at.key("name"), &c.name);
            for (j, d) in c.dates.iter().enumerate() {
                if parse_date(d).is_none() {
                    check::push(
                        out,
                        &at.key("dates").index(j),
                        format!("{d:?} is not a YYYY-MM-DD date"),
                    );
                }
            }
        }
        check::unique(
            out,
            &cals,
            "name",
            self.calendars.iter().map(|c| c.name.as_str()),
        );
        let jobs = path.key("jobs");
        for (i, j) in self.jobs.iter().enumerate() {
            let at = jobs.index(i);
            check::object_name(out, &at.key("name"), &j.name);
            reserved(out, &at.key("name"), &j.name);
            if j.service.is_empty() {
                check::push(out, &at.key("service"), "must name a service");
            }
            let period = j.seconds + j.minutes * 60 + j.hours * 3600 + j.days * 86_400;
            match j.kind.as_str() {
                "one_time" => {
                    if j.at.is_none() {
                        check::push(out, &at.key("at"), "required for kind \"one_time\"");
                    }
                }
                "interval" => {
                    if period == 0 {
                        check::push(
                            out,
                            &at.key("seconds"),
                            "kind \"interval\" needs seconds, minutes, hours or days",
                        );
                    }
                }
                "cron" => match &j.cron {
                    None => check::push(out, &at.key("cron"), "required for kind \"cron\""),
                    Some(c) => {
                        let n = c.split_whitespace().count();
                        if n != 5 && n != 6 {
                            check::push(
                                out,
                                &at.key("cron"),
                                format!("{c:?} has {n} fields, not 5 (or 6 with seconds)"),
                            );
                        }
                    }
                },
                other => check::push(
                    out,
                    &at.key("kind"),
                    format!("{other:?} is not one of one_time, interval, cron"),
                ),
            }
            if j.kind != "interval" && period != 0 {
                check::push(
                    out,
                    &at.key("seconds"),
                    "seconds/minutes/hours/days only for kind \"interval\"",
                );
            }
            if j.kind != "cron" && j.cron.is_some() {
                check::push(out, &at.key("cron"), "only for kind \"cron\"");
            }
            for (key, v) in [("at", &j.at), ("start", &j.start), ("end", &j.end)] {
                if let Some(v) = v
                    && parse_datetime(v).is_none()
                {
                    check::push(
                        out,
                        &at.key(key),
                        format!("{v:?} is not YYYY-MM-DDTHH:MM[:SS]"),
                    );
                }
            }
            if parse_tz(&j.timezone).is_none() {
                check::push(
                    out,
                    &at.key("timezone"),
                    format!(
                        "{:?} is not UTC, an offset like +02:00 or a zone like Europe/Berlin",
                        j.timezone
                    ),
                );
            }
            if let Some(c) = &j.calendar
                && !self.calendars.iter().any(|k| &k.name == c)
            {
                check::push(
                    out,
                    &at.key("calendar"),
                    format!("no calendar is named {c:?}"),
                );
            }
            if j.max_instances == 0 || j.max_instances > 64 {
                check::push(out, &at.key("max_instances"), "must be 1-64");
            }
            if j.misfire != "run_once" && j.misfire != "skip" {
                check::push(
                    out,
                    &at.key("misfire"),
                    format!("{:?} is not one of run_once, skip", j.misfire),
                );
            }
        }
        check::unique(
            out,
            &jobs,
            "name",
            self.jobs.iter().map(|j| j.name.as_str()),
        );
        let topics = path.key("topics");
        for (i, t) in self.topics.iter().enumerate() {
            let at = topics.index(i);
            check::object_name(out, &at.key("name"), &t.name);
            reserved(out, &at.key("name"), &t.name);
            for (j, s) in t.subscribers.iter().enumerate() {
                if s.is_empty() {
                    check::push(out, &at.key("subscribers").index(j), "must name a service");
                }
            }
            if t.max_depth == 0 {
                check::push(out, &at.key("max_depth"), "must be at least 1");
            }
            if t.max_attempts == 0 || t.max_attempts > 100 {
                check::push(out, &at.key("max_attempts"), "must be 1-100");
            }
            if t.backoff_ms > 3_600_000 {
                check::push(out, &at.key("backoff_ms"), "at most 3600000 (one hour)");
            }
        }
        check::unique(
            out,
            &topics,
            "name",
            self.topics.iter().map(|t| t.name.as_str()),
        );
        if self.async_attempts == 0 || self.async_attempts > 100 {
            check::push(out, &path.key("async_attempts"), "must be 1-100");
        }
        if self.async_backoff_ms > 3_600_000 {
            check::push(
                out,
                &path.key("async_backoff_ms"),
                "at most 3600000 (one hour)",
            );
        }
    }
}
