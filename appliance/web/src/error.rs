//! The API's one error shape, `{code, message, details}`, and how control
//! socket error codes become HTTP status codes.

use alpharen_rpc::RpcError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Value,
    /// Seconds, for 429 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in first (POST /api/v1/session) or send an API token as `Authorization: Bearer ...`",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_params", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }
}

/// HTTP status for a control-socket error code. Unknown codes are the
/// server's fault until proven otherwise.
pub fn status_for(code: &str) -> StatusCode {
    match code {
        "invalid_config" | "invalid_user" | "invalid_backup" | "missing_secret"
        | "deploy_failed" | "package_refused" => StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_params" | "parse_error" | "invalid_request" => StatusCode::BAD_REQUEST,
        "forbidden" | "wrong_setup_code" => StatusCode::FORBIDDEN,
        "bad_credentials" => StatusCode::UNAUTHORIZED,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "setup_done" | "user_exists" | "nothing_pending" | "not_pending" | "conflict" => {
            StatusCode::CONFLICT
        }
        // The vpn service's: the state of the node stands in the way.
        "exists" | "no_pool" | "no_endpoint" | "pool_exhausted" => StatusCode::CONFLICT,
        // The integrator's: a service name that another file has.
        "deploy_refused" => StatusCode::CONFLICT,
        // The mail service's: a test mail with nobody to send it to.
        "no_recipients" => StatusCode::CONFLICT,
        // ... and a relay test with no smarthost to connect to.
        "no_relay" => StatusCode::CONFLICT,
        // The supervisor's: no A/B slots to show (a node not booted from
        // one, or its boot partition unreadable).
        "slots_unavailable" => StatusCode::CONFLICT,
        // The supervisor's update install: the bundle's fault, a node that
        // cannot install now (or one install at a time); writing the slot
        // failing stays a 500.
        "update_refused" => StatusCode::UNPROCESSABLE_ENTITY,
        "update_unavailable" | "busy" => StatusCode::CONFLICT,
        // The web service's: a renewal asked for while `[acme]` is off.
        "acme_off" => StatusCode::CONFLICT,
        // pgha's: a backup asked for without a backup controller.
        "not_configured" => StatusCode::CONFLICT,
        // The cluster service's: the member in a join or link token
        // refused, or could not be reached.
        "join_failed" | "link_failed" => StatusCode::BAD_GATEWAY,
        "not_supported" | "unsupported" => StatusCode::NOT_IMPLEMENTED,
        "unavailable" | "service_unavailable" | "unreachable" => StatusCode::SERVICE_UNAVAILABLE,
        "method_not_found" | "no_config" | "not_found" => StatusCode::NOT_FOUND,
        c if c.starts_with("no_such_") => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> ApiError {
        let retry_after =
            (e.code == "rate_limited").then(|| e.details["retry_after"].as_u64().unwrap_or(60));
        ApiError {
            status: status_for(&e.code),
            code: e.code,
            message: e.message,
            details: e.details,
            retry_after,
        }
    }
}

impl From<alpharen_store::StoreError> for ApiError {
    fn from(e: alpharen_store::StoreError) -> ApiError {
        tracing::error!(error = %e, "store");
        ApiError::new(status_for(e.code()), e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.code, message = %self.message, "request failed");
        }
        let body = json!({"code": self.code, "message": self.message, "details": self.details});
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Turns axum's JSON body rejections into our error shape with a status
/// that says what was wrong (syntax 400, shape 422, size 413, type 415).
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection as J;
        let (status, code) = match &r {
            J::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            J::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_params"),
            J::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
            _ => (StatusCode::BAD_REQUEST, "invalid_body"),
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_codes_map_to_http_statuses() {
        assert_eq!(
            status_for("invalid_config"),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(status_for("invalid_params"), StatusCode::BAD_REQUEST);
        assert_eq!(status_for("no_such_revision"), StatusCode::NOT_FOUND);
        assert_eq!(status_for("no_such_user"), StatusCode::NOT_FOUND);
        assert_eq!(status_for("forbidden"), StatusCode::FORBIDDEN);
        assert_eq!(status_for("rate_limited"), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_for("setup_done"), StatusCode::CONFLICT);
        assert_eq!(status_for("bad_credentials"), StatusCode::UNAUTHORIZED);
        assert_eq!(status_for("exists"), StatusCode::CONFLICT);
        assert_eq!(status_for("pool_exhausted"), StatusCode::CONFLICT);
        assert_eq!(status_for("not_found"), StatusCode::NOT_FOUND);
        assert_eq!(
            status_for("update_refused"),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(status_for("update_unavailable"), StatusCode::CONFLICT);
        assert_eq!(
            status_for("update_failed"),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        for code in ["service_unavailable", "unavailable", "unreachable"] {
            assert_eq!(status_for(code), StatusCode::SERVICE_UNAVAILABLE, "{code}");
        }
        assert_eq!(
            status_for("something_new"),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let e: ApiError = RpcError::new("rate_limited", "try again in 42 s")
            .with_details(json!({"retry_after": 42}))
            .into();
        assert_eq!(e.retry_after, Some(42));
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
    }
}
