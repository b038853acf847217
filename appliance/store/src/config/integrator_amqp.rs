//! `[[integrator.outgoing_amqp]]` and `[[integrator.channel_amqp]]`: AMQP
//! 0-9-1 brokers (RabbitMQ) that services publish to with
//! `self.outgoing.amqp.send(msg, NAME, exchange, routing_key)`, and the
//! queues whose messages invoke a service.
//!
//! ```toml
//! [[integrator.outgoing_amqp]]
//! name = "broker"
//! host = "mq.lan"
//! vhost = "/"
//! user = "integrator"
//! password = "..."          # kept as the secret integrator.outgoing_amqp.broker
//! exchange = "orders"       # used when a send names none
//!
//! [[integrator.channel_amqp]]
//! name = "orders-in"
//! connection = "broker"
//! queue = "orders"
//! service = "orders.handle"
//! max_attempts = 3
//! dead_letter_queue = "orders.dead"   # else rejected to the queue's DLX
//! ```

use serde::{Deserialize, Serialize};

use super::{KeyPath, Problem, check};

/// A broker connection: outgoing sends use it, and channels consume
/// through their own connection made from the same definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OutgoingAmqp {
    pub name: String,
    /// Host name or address of the broker (plain AMQP, no TLS).
    pub host: String,
    #[serde(default = "default_amqp_port")]
    pub port: u16,
    #[serde(default = "default_vhost")]
    pub vhost: String,
    #[serde(default = "default_user")]
    pub user: String,
    /// Kept in the secret store as `integrator.outgoing_amqp.NAME`.
    #[serde(default)]
    pub password: Option<String>,
    /// The exchange a send that names none publishes to ("" is the
    /// default exchange, which routes by queue name).
    #[serde(default)]
    pub exchange: String,
    /// The routing key a send that names none uses.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Seconds a send may take, reconnecting included, before it fails;
    /// falls back to `integrator.timeout`.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// A queue consumed by the integrator: each message invokes `service`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChannelAmqp {
    pub name: String,
    /// The `outgoing_amqp` definition whose broker holds the queue.
    pub connection: String,
    pub queue: String,
    pub service: String,
    /// How the body becomes `self.request.payload`: json, form, xml, raw.
    #[serde(default = "default_format")]
    pub data_format: String,
    /// Unacknowledged messages the broker hands over at once.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Calls of the service a message gets before it is dead-lettered.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Where a message goes after its last failed attempt: this queue
    /// (through the default exchange), or, without one, rejected without
    /// requeue so the queue's own dead-letter exchange takes it.
    #[serde(default)]
    pub dead_letter_queue: Option<String>,
    /// Seconds one call may take; falls back to `integrator.timeout`.
    #[serde(default)]
    pub timeout: Option<u64>,
}

fn default_amqp_port() -> u16 {
    5672
}

fn default_vhost() -> String {
    "/".into()
}

fn default_user() -> String {
    "guest".into()
}

fn default_format() -> String {
    "json".into()
}

fn default_prefetch() -> u16 {
    10
}

fn default_attempts() -> u32 {
    3
}

/// The stored secret of a broker connection's password.
pub(super) fn amqp_password_secret(name: &str) -> String {
    format!("integrator.outgoing_amqp.{name}")
}

/// AMQP short strings (queue, exchange, routing key) are at most 255 bytes.
fn short(out: &mut Vec<Problem>, path: &KeyPath, v: &str) {
    if v.len() > 255 {
        check::push(
            out,
            path,
            "must be at most 255 bytes (an AMQP short string)",
        );
    }
}

/// Checks both lists; `reserved` is the integrator's AR-name rule.
pub(super) fn validate(
    conns: &[OutgoingAmqp],
    channels: &[ChannelAmqp],
    path: &KeyPath,
    out: &mut Vec<Problem>,
    reserved: fn(&mut Vec<Problem>, &KeyPath, &str),
) {
    let list = path.key("outgoing_amqp");
    for (i, c) in conns.iter().enumerate() {
        let at = list.index(i);
        check::object_name(out, &at.key("name"), &c.name);
        reserved(out, &at.key("name"), &c.name);
        super::integrator_conn::check_host(out, &at.key("host"), &c.host);
        if c.port == 0 {
            check::push(out, &at.key("port"), "must be 1-65535");
        }
        if c.vhost.is_empty() {
            check::push(
                out,
                &at.key("vhost"),
                "must not be empty (RabbitMQ's default is \"/\")",
            );
        }
        if c.user.is_empty() {
            check::push(out, &at.key("user"), "must not be empty");
        }
        if c.password.as_deref() == Some("") {
            check::push(out, &at.key("password"), "must not be empty");
        }
        short(out, &at.key("exchange"), &c.exchange);
        if let Some(k) = &c.routing_key {
            short(out, &at.key("routing_key"), k);
        }
        if c.timeout.is_some_and(|t| t == 0 || t > 3600) {
            check::push(out, &at.key("timeout"), "must be 1-3600 seconds");
        }
    }
    check::unique(out, &list, "name", conns.iter().map(|c| c.name.as_str()));
    let list = path.key("channel_amqp");
    for (i, c) in channels.iter().enumerate() {
        let at = list.index(i);
        check::object_name(out, &at.key("name"), &c.name);
        reserved(out, &at.key("name"), &c.name);
        if !conns.iter().any(|d| d.name == c.connection) {
            check::push(
                out,
                &at.key("connection"),
                format!("no outgoing_amqp connection is named {:?}", c.connection),
            );
        }
        if c.queue.is_empty() {
            check::push(out, &at.key("queue"), "must name a queue");
        }
        short(out, &at.key("queue"), &c.queue);
        if c.service.is_empty() {
            check::push(out, &at.key("service"), "must name a service");
        }
        if !["json", "form", "xml", "raw"].contains(&c.data_format.as_str()) {
            check::push(
                out,
                &at.key("data_format"),
                format!("{:?} is not one of json, form, xml, raw", c.data_format),
            );
        }
        if c.prefetch == 0 || c.prefetch > 1000 {
            check::push(out, &at.key("prefetch"), "must be 1-1000");
        }
        if c.max_attempts == 0 || c.max_attempts > 100 {
            check::push(out, &at.key("max_attempts"), "must be 1-100");
        }
        if let Some(q) = &c.dead_letter_queue {
            if q.is_empty() {
                check::push(
                    out,
                    &at.key("dead_letter_queue"),
                    "must not be empty (leave it out to use the queue's dead-letter exchange)",
                );
            } else if *q == c.queue {
                check::push(
                    out,
                    &at.key("dead_letter_queue"),
                    "is the consumed queue itself: a failing message would never leave it",
                );
            }
            short(out, &at.key("dead_letter_queue"), q);
        }
        if c.timeout.is_some_and(|t| t == 0 || t > 3600) {
            check::push(out, &at.key("timeout"), "must be 1-3600 seconds");
        }
    }
    check::unique(out, &list, "name", channels.iter().map(|c| c.name.as_str()));
}
