//! Message shapes and error codes. Errors carry a stable string `code` in
//! `error.data.code` next to JSON-RPC's numeric one, so scripts can match
//! on names rather than numbers.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Longest request line accepted; a longer one is refused and the
/// connection closed, so a client cannot make us buffer without bound.
/// 8 MiB: an integrator project zip or wheel travels in one request,
/// base64-encoded ([`MAX_ARCHIVE`]); the buffer grows only as a line
/// arrives, and only local callers the socket's permissions admit reach it.
pub const MAX_LINE: usize = 8 << 20;

/// Largest project zip or wheel an integrator deploy takes: its base64
/// (4/3 of it) fits [`MAX_LINE`] with room for the JSON around it.
pub const MAX_ARCHIVE: usize = 11 << 19;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub jsonrpc: String,
    #[serde(default)]
    pub id: Value,
    pub method: String,
    #[serde(default)]
    pub params: Value,
    /// The services' token ([`crate::token`]), where the caller has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Request {
    /// A request carrying this process's token, if it has one.
    pub fn new(id: Value, method: &str, params: Value) -> Request {
        Request {
            jsonrpc: "2.0".into(),
            id,
            method: method.into(),
            params,
            token: crate::token::get().map(str::to_string),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub jsonrpc: String,
    pub id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

impl Response {
    pub fn ok(id: Value, result: Value) -> Response {
        Response {
            jsonrpc: "2.0".into(),
            id,
            result: Some(result),
            error: None,
        }
    }

    pub fn err(id: Value, e: &RpcError) -> Response {
        Response {
            jsonrpc: "2.0".into(),
            id,
            result: None,
            error: Some(e.to_object()),
        }
    }
}

/// A method's failure: a stable `code` string, a message for people, and
/// optional structured details (such as validation problems).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl RpcError {
    pub fn new(code: &str, message: impl Into<String>) -> RpcError {
        RpcError {
            code: code.into(),
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(mut self, details: Value) -> RpcError {
        self.details = details;
        self
    }

    pub fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError::new("invalid_params", message)
    }

    /// JSON-RPC's numeric codes for protocol errors; -32000 for the rest.
    fn numeric(&self) -> i64 {
        match self.code.as_str() {
            "parse_error" => -32700,
            "invalid_request" => -32600,
            "method_not_found" => -32601,
            "invalid_params" => -32602,
            "internal_error" => -32603,
            _ => -32000,
        }
    }

    pub fn to_object(&self) -> ErrorObject {
        let mut data = json!({ "code": self.code });
        if !self.details.is_null() {
            data["details"] = self.details.clone();
        }
        ErrorObject {
            code: self.numeric(),
            message: self.message.clone(),
            data: Some(data),
        }
    }

    pub fn from_object(e: &ErrorObject) -> RpcError {
        let data = e.data.clone().unwrap_or(Value::Null);
        RpcError {
            code: data
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_string(),
            message: e.message.clone(),
            details: data.get("details").cloned().unwrap_or(Value::Null),
        }
    }
}

/// One decoded call handed to a handler.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: Value,
    pub peer: crate::Peer,
}

impl Call {
    /// Parses `params` into a typed struct; a mismatch is `invalid_params`
    /// naming the method.
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, RpcError> {
        let value = if self.params.is_null() {
            json!({})
        } else {
            self.params.clone()
        };
        serde_json::from_value(value)
            .map_err(|e| RpcError::invalid_params(format!("{}: {e}", self.method)))
    }
}

/// A method's answer: one value, or a first value followed by a stream of
/// notifications (for `--follow`), which ends when the sender is dropped or
/// the client goes away, or raw bytes to receive before the answer
/// ([`crate::upload`]).
pub enum Reply {
    Value(Value),
    Stream {
        first: Value,
        rest: mpsc::Receiver<Value>,
    },
    Upload(crate::upload::Upload),
}

impl From<Value> for Reply {
    fn from(v: Value) -> Reply {
        Reply::Value(v)
    }
}
