//! Outgoing AMQP (`[[integrator.outgoing_amqp]]`): one broker connection
//! per definition with a publisher-confirm channel, used by
//! `self.outgoing.amqp.send(...)` through the worker pipe. A send answers
//! only once the broker confirmed the message; a lost connection is made
//! again with backoff within the send's timeout, and a send that could not
//! be confirmed in time fails, so the service knows (a message sent again
//! after a lost confirmation may arrive twice, never not at all).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use alpharen_store::View;
use alpharen_store::config::OutgoingAmqp;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde_json::{Map, Value, json};

/// First and longest pause between attempts to reach a broker.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why a send failed, with a code for the worker.
#[derive(Debug)]
pub struct AmqpError {
    pub code: &'static str,
    pub message: String,
}

impl AmqpError {
    fn new(code: &'static str, message: impl Into<String>) -> AmqpError {
        AmqpError {
            code,
            message: message.into(),
        }
    }

    pub fn to_reply(&self) -> Value {
        json!({"ok": false, "code": self.code, "error": self.message})
    }
}

/// The next pause of a backoff that doubles up to `BACKOFF_MAX`.
pub fn next_backoff(d: Duration) -> Duration {
    (d * 2).min(BACKOFF_MAX)
}

/// Opens a connection to a definition's broker; `purpose` names it in the
/// broker's connection list.
pub async fn connect(
    def: &OutgoingAmqp,
    password: Option<&str>,
    purpose: &str,
    limit: Duration,
) -> Result<Connection, String> {
    let uri = AMQPUri {
        scheme: AMQPScheme::AMQP,
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: def.user.clone(),
                password: password.unwrap_or_default().to_string(),
            },
            host: def.host.clone(),
            port: def.port,
        },
        vhost: def.vhost.clone(),
        query: AMQPQueryString {
            // Lets both sides notice a dead peer within a minute.
            heartbeat: Some(20),
            connection_timeout: Some(limit.as_millis() as u64),
            ..AMQPQueryString::default()
        },
    };
    let props = ConnectionProperties::default()
        .with_connection_name(format!("alpharen-integrator {purpose}").into());
    match tokio::time::timeout(limit, Connection::connect_uri(uri, props)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!(
            "cannot connect to amqp://{}:{}{}: {e}",
            def.host,
            def.port,
            vhost_path(&def.vhost)
        )),
        Err(_) => Err(format!(
            "no connection to amqp://{}:{} within {limit:?}",
            def.host, def.port
        )),
    }
}

fn vhost_path(vhost: &str) -> String {
    if vhost == "/" {
        "/".into()
    } else {
        format!("/{vhost}")
    }
}

/// A channel in publisher-confirm mode on a new connection.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel, lapin::Error> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// How a publish ended short of a confirmation.
pub enum PublishError {
    /// The broker answered no: retrying will not help.
    Refused(String),
    /// The connection failed or the confirmation did not come.
    Lost(String),
}

/// Publishes one message with `mandatory` (a message no queue takes comes
/// back instead of vanishing) and waits for the broker's confirmation.
pub async fn publish(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
    limit: Duration,
) -> Result<(), PublishError> {
    let opts = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let confirmed = async {
        ch.basic_publish(exchange.into(), routing_key.into(), opts, body, props)
            .await?
            .await
    };
    match tokio::time::timeout(limit, confirmed).await {
        Err(_) => Err(PublishError::Lost(format!(
            "the broker did not confirm within {limit:?}"
        ))),
        Ok(Err(e)) => Err(PublishError::Lost(e.to_string())),
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(r)) | Confirmation::Nack(Some(r)))) => {
            Err(PublishError::Refused(format!(
                "no queue took the message (exchange {exchange:?}, routing key {routing_key:?}): {} {}",
                r.reply_code, r.reply_text
            )))
        }
        Ok(Ok(Confirmation::Nack(None))) => Err(PublishError::Refused(
            "the broker refused the message (nack)".into(),
        )),
        Ok(Ok(Confirmation::NotRequested)) => Err(PublishError::Lost(
            "the channel is not in confirm mode".into(),
        )),
    }
}

// ---- values -------------------------------------------------------------------

/// An AMQP field value as JSON (headers for services).
pub fn to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Timestamp(n) => json!(n),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::DecimalValue(d) => json!(d.value as f64 / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ByteArray(b) => json!(String::from_utf8_lossy(b.as_slice())),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(to_json).collect()),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::Void => Value::Null,
    }
}

pub fn table_to_json(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
            .collect(),
    )
}

/// A JSON value as an AMQP field value (headers from services).
pub fn from_json(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(a) => {
            let mut arr = FieldArray::default();
            for x in a {
                arr.push(from_json(x));
            }
            AMQPValue::FieldArray(arr)
        }
        Value::Object(o) => AMQPValue::FieldTable(table_from_json(o)),
    }
}

fn table_from_json(o: &Map<String, Value>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in o {
        t.insert(ShortString::from(k.as_str()), from_json(v));
    }
    t
}

fn short(key: &str, v: &Value) -> Result<ShortString, String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err(format!("property {key} must be a string")),
    };
    if s.len() > 255 {
        return Err(format!("property {key} is longer than 255 bytes"));
    }
    Ok(ShortString::from(s))
}

fn octet(key: &str, v: &Value, max: u64) -> Result<u8, String> {
    v.as_u64()
        .filter(|n| *n <= max)
        .map(|n| n as u8)
        .ok_or_else(|| format!("property {key} must be a number 0-{max}"))
}

/// Zato's `properties` and `headers` of a send as AMQP properties;
/// messages are persistent (delivery_mode 2) unless the service says 1.
pub fn properties(props: &Value, headers: &Value) -> Result<BasicProperties, String> {
    let mut p = BasicProperties::default().with_delivery_mode(2);
    if let Some(o) = props.as_object() {
        for (k, v) in o {
            if v.is_null() {
                continue;
            }
            p = match k.as_str() {
                "content_type" => p.with_content_type(short(k, v)?),
                "content_encoding" => p.with_content_encoding(short(k, v)?),
                "delivery_mode" => match octet(k, v, 2)? {
                    0 => return Err("property delivery_mode must be 1 or 2".into()),
                    m => p.with_delivery_mode(m),
                },
                "priority" => p.with_priority(octet(k, v, 255)?),
                "correlation_id" => p.with_correlation_id(short(k, v)?),
                "reply_to" => p.with_reply_to(short(k, v)?),
                "expiration" => p.with_expiration(short(k, v)?),
                "message_id" => p.with_message_id(short(k, v)?),
                "type" => p.with_type(short(k, v)?),
                "user_id" => p.with_user_id(short(k, v)?),
                "app_id" => p.with_app_id(short(k, v)?),
                "cluster_id" => p.with_cluster_id(short(k, v)?),
                "timestamp" => p.with_timestamp(
                    v.as_u64()
                        .ok_or("property timestamp must be seconds since 1970")?,
                ),
                other => return Err(format!("{other:?} is not an AMQP message property")),
            };
        }
    } else if !props.is_null() {
        return Err("properties must be a dict".into());
    }
    match headers {
        Value::Null => {}
        Value::Object(o) if o.is_empty() => {}
        Value::Object(o) => p = p.with_headers(table_from_json(o)),
        _ => return Err("headers must be a dict".into()),
    }
    Ok(p)
}

/// A delivery's properties as JSON, for `self.request.amqp`.
pub fn properties_json(p: &BasicProperties) -> Value {
    let s = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_string());
    json!({
        "content_type": s(p.content_type()), "content_encoding": s(p.content_encoding()),
        "delivery_mode": p.delivery_mode(), "priority": p.priority(),
        "correlation_id": s(p.correlation_id()), "reply_to": s(p.reply_to()),
        "expiration": s(p.expiration()), "message_id": s(p.message_id()),
        "timestamp": p.timestamp(), "type": s(p.kind()), "user_id": s(p.user_id()),
        "app_id": s(p.app_id()), "cluster_id": s(p.cluster_id()),
    })
}

// ---- outgoing connections -------------------------------------------------------

/// One definition: its broker connection and confirm channel, made on
/// the first send and again after a loss.
pub struct Out {
    pub def: OutgoingAmqp,
    pub password: Option<String>,
    timeout: Duration,
    link: tokio::sync::Mutex<Option<(Connection, Channel)>>,
}

impl Out {
    /// The confirm channel, connecting first when there is none or the
    /// one there is has failed.
    async fn channel(&self, limit: Duration) -> Result<Channel, String> {
        let mut link = self.link.lock().await;
        if let Some((conn, ch)) = link.as_ref()
            && conn.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        if let Some((conn, _)) = link.take() {
            drop_connection(conn);
        }
        let conn = connect(&self.def, self.password.as_deref(), &self.def.name, limit).await?;
        let ch = confirm_channel(&conn).await.map_err(|e| e.to_string())?;
        *link = Some((conn, ch.clone()));
        Ok(ch)
    }
}

/// Closes a connection in the background (a broken one may never answer).
pub fn drop_connection(conn: Connection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            conn.close(200, "alpharen-integrator".into()),
        )
        .await;
    });
}

/// Every outgoing AMQP definition.
#[derive(Default)]
pub struct Conns {
    conns: RwLock<HashMap<String, Arc<Out>>>,
}

impl Conns {
    /// Brings the definitions in line with the configuration (start,
    /// SIGHUP); an unchanged one keeps its connection.
    pub fn reload(&self, view: &View, default_timeout: u64) {
        let old = self.conns.read().map(|c| c.clone()).unwrap_or_default();
        let mut new = HashMap::new();
        for def in &view.config.integrator.outgoing_amqp {
            let field = format!("integrator.outgoing_amqp {:?}", def.name);
            let password = match view.reveal(&field, def.password.as_deref()) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(connection = %def.name, error = %e, "outgoing AMQP connection left out");
                    continue;
                }
            };
            let timeout = Duration::from_secs(def.timeout.unwrap_or(default_timeout));
            let out = match old.get(&def.name) {
                Some(o) if o.def == *def && o.password == password && o.timeout == timeout => {
                    o.clone()
                }
                _ => Arc::new(Out {
                    def: def.clone(),
                    password,
                    timeout,
                    link: tokio::sync::Mutex::new(None),
                }),
            };
            new.insert(def.name.clone(), out);
        }
        if let Ok(mut c) = self.conns.write() {
            *c = new;
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Out>> {
        self.conns.read().ok().and_then(|c| c.get(name).cloned())
    }

    /// `amqp.send` from a worker: `conn`, `body` (base64), `exchange`,
    /// `routing_key`, `properties`, `headers`.
    pub async fn send(&self, req: &Value) -> Result<Value, AmqpError> {
        let name = req["conn"].as_str().unwrap_or_default();
        let out = self.get(name).ok_or_else(|| {
            AmqpError::new(
                "not_found",
                format!("no outgoing AMQP connection is named {name:?}"),
            )
        })?;
        let bad =
            |m: String| AmqpError::new("invalid_params", format!("outgoing AMQP {name:?}: {m}"));
        let exchange = req["exchange"].as_str().unwrap_or(&out.def.exchange);
        let routing_key = req["routing_key"]
            .as_str()
            .or(out.def.routing_key.as_deref())
            .ok_or_else(|| {
                bad("the send names no routing key and the connection has none".into())
            })?;
        if exchange.len() > 255 || routing_key.len() > 255 {
            return Err(bad("exchange and routing key are at most 255 bytes".into()));
        }
        let body = B64
            .decode(req["body"].as_str().unwrap_or_default())
            .map_err(|e| bad(format!("body: {e}")))?;
        let props = properties(&req["properties"], &req["headers"]).map_err(bad)?;
        let deadline = Instant::now() + out.timeout;
        let mut pause = BACKOFF_FIRST;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let lost = match out.channel(left).await {
                Err(e) => e,
                Ok(ch) => {
                    match publish(&ch, exchange, routing_key, &body, props.clone(), left).await {
                        Ok(()) => return Ok(json!(true)),
                        Err(PublishError::Refused(m)) => {
                            return Err(AmqpError::new(
                                "amqp_refused",
                                format!("outgoing AMQP {name:?}: {m}"),
                            ));
                        }
                        Err(PublishError::Lost(m)) => m,
                    }
                }
            };
            if Instant::now() + pause >= deadline {
                return Err(AmqpError::new(
                    "amqp_unavailable",
                    format!(
                        "outgoing AMQP {name:?}: the message was not confirmed by the broker within {:?} ({lost}); it may not have been sent",
                        out.timeout
                    ),
                ));
            }
            tracing::debug!(connection = %name, error = %lost, "AMQP send retrying");
            tokio::time::sleep(pause).await;
            pause = next_backoff(pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_amqp_values() {
        let h = json!({"id": 7, "name": "x", "ok": true, "ratio": 0.5, "tags": ["a", 1], "sub": {"n": null}});
        let table = match from_json(&h) {
            AMQPValue::FieldTable(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(table_to_json(&table), h);
    }

    #[test]
    fn properties_take_zato_keys_and_refuse_others() {
        let p = properties(
            &json!({"content_type": "application/json", "priority": 5, "delivery_mode": 1, "app_id": null}),
            &json!({"X-Id": "1"}),
        )
        .unwrap();
        assert_eq!(p.delivery_mode(), &Some(1));
        assert_eq!(p.priority(), &Some(5));
        assert_eq!(properties_json(&p)["content_type"], "application/json");
        assert_eq!(
            table_to_json(p.headers().as_ref().unwrap()),
            json!({"X-Id": "1"})
        );
        // Persistent unless told otherwise.
        assert_eq!(
            properties(&Value::Null, &Value::Null)
                .unwrap()
                .delivery_mode(),
            &Some(2)
        );
        for (props, msg) in [
            (
                json!({"colour": "red"}),
                "\"colour\" is not an AMQP message property",
            ),
            (
                json!({"delivery_mode": 3}),
                "property delivery_mode must be a number 0-2",
            ),
            (
                json!({"priority": -1}),
                "property priority must be a number 0-255",
            ),
            (json!([1]), "properties must be a dict"),
        ] {
            assert_eq!(properties(&props, &Value::Null).err().as_deref(), Some(msg));
        }
        assert_eq!(
            properties(&Value::Null, &json!("x")).err().as_deref(),
            Some("headers must be a dict")
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut d = BACKOFF_FIRST;
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(d.as_millis());
            d = next_backoff(d);
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
