//! The one error type of the API boundary. Each variant is one of the error
//! names of the contract, and it renders the same shape over REST and over
//! WebSocket: `{error, message, retryable, statusCode?}`.

use std::num::NonZeroU32;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::limits::spec::RateSpec;
use crate::limits::RateInfo;
use crate::runtime::RuntimeError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Authentication(String),
    #[error("{0}")]
    ContainerNotFound(String),
    #[error("{0}")]
    MessageTooLarge(String),
    #[error("{0}")]
    RateLimit(String),
    #[error("{0}")]
    ContainerCreation(String),
    #[error("{0}")]
    DockerDaemon(String),
    /// The preview's upstream does not answer (nothing listening yet, no
    /// port configured, container stopped). Not in the seed's list: 502.
    #[error("{0}")]
    PreviewUnavailable(String),
    /// The preview's upstream took the whole request and did not answer in
    /// time: `PreviewUnavailableError` with 504.
    #[error("{0}")]
    PreviewTimeout(String),
    /// A known path asked with a method it does not take: a
    /// `ValidationError` (the contract's name for bad input) with 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Refused by one of the rate limits: a `RateLimitError` (429) with
    /// that limit's `X-RateLimit-*` and `Retry-After`.
    #[error("{}", .0.refusal_message())]
    Limited(RateInfo),
    /// A service the server depends on, other than the engine (the state
    /// store), does not answer: `ServiceUnavailableError` (503, retryable).
    #[error("{0}")]
    Unavailable(String),
    /// A path in a session that does not exist: `FileNotFoundError` (404).
    #[error("{0}")]
    FileNotFound(String),
    /// A command id the session does not know (any more):
    /// `CommandNotFoundError` (404).
    #[error("{0}")]
    CommandNotFound(String),
    /// A request the session's files refuse as they are now (a name that
    /// exists, a directory not empty, not a directory): a `ValidationError`
    /// with 409.
    #[error("{0}")]
    Conflict(String),
    /// A `Range` outside the file: a `ValidationError` with 416.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// The session user may not do it (file permissions): a
    /// `ValidationError` with 403.
    #[error("{0}")]
    Forbidden(String),
    /// A cap on what is held at once (sessions per owner, open preview
    /// WebSockets) is reached: a `RateLimitError` (429) whose
    /// `X-RateLimit-*` describe the cap (none left) and whose `Retry-After`
    /// says when to try again.
    #[error("{message}")]
    AtCapacity {
        message: String,
        limit: u32,
        retry_after_secs: u64,
    },
}

impl ApiError {
    pub fn validation(msg: impl Into<String>) -> Self {
        ApiError::Validation(msg.into())
    }

    pub fn session_not_found(session_id: &str) -> Self {
        ApiError::ContainerNotFound(format!("Session '{session_id}' not found"))
    }

    pub fn name(&self) -> &'static str {
        match self {
            ApiError::Validation(_)
            | ApiError::MethodNotAllowed(_)
            | ApiError::Conflict(_)
            | ApiError::Forbidden(_)
            | ApiError::RangeNotSatisfiable(_) => "ValidationError",
            ApiError::FileNotFound(_) => "FileNotFoundError",
            ApiError::CommandNotFound(_) => "CommandNotFoundError",
            ApiError::Authentication(_) => "AuthenticationError",
            ApiError::ContainerNotFound(_) => "ContainerNotFoundError",
            ApiError::MessageTooLarge(_) => "MessageTooLarge",
            ApiError::RateLimit(_) | ApiError::Limited(_) | ApiError::AtCapacity { .. } => {
                "RateLimitError"
            }
            ApiError::Unavailable(_) => "ServiceUnavailableError",
            ApiError::ContainerCreation(_) => "ContainerCreationError",
            ApiError::DockerDaemon(_) => "DockerDaemonError",
            ApiError::PreviewUnavailable(_) | ApiError::PreviewTimeout(_) => {
                "PreviewUnavailableError"
            }
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::FileNotFound(_) | ApiError::CommandNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Authentication(_) => StatusCode::UNAUTHORIZED,
            ApiError::ContainerNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MessageTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimit(_) | ApiError::Limited(_) | ApiError::AtCapacity { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ContainerCreation(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::DockerDaemon(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PreviewUnavailable(_) => StatusCode::BAD_GATEWAY,
            ApiError::PreviewTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimit(_)
                | ApiError::Limited(_)
                | ApiError::AtCapacity { .. }
                | ApiError::Unavailable(_)
                | ApiError::DockerDaemon(_)
                | ApiError::PreviewUnavailable(_)
                | ApiError::PreviewTimeout(_)
        )
    }

    /// The REST body.
    pub fn to_json(&self) -> Value {
        json!({
            "error": self.name(),
            "message": self.to_string(),
            "retryable": self.retryable(),
            "statusCode": self.status().as_u16(),
        })
    }

    /// The WebSocket message (no `statusCode`, as the contract says).
    pub fn to_ws_json(&self, session_id: Option<&str>) -> Value {
        let mut v = json!({
            "type": "error",
            "error": self.name(),
            "message": self.to_string(),
            "retryable": self.retryable(),
        });
        if let Some(id) = session_id {
            v["sessionId"] = Value::from(id);
        }
        v
    }

    /// Maps an engine failure met while creating a session.
    pub fn creation(err: RuntimeError) -> Self {
        match err {
            RuntimeError::Unavailable(m) => ApiError::DockerDaemon(daemon_message(&m)),
            RuntimeError::ImageNotFound(image) => ApiError::ContainerCreation(format!(
                "Failed to create container: Image '{image}' not found"
            )),
            RuntimeError::PullFailed { image, why } => ApiError::ContainerCreation(format!(
                "Failed to create container: Image '{image}' could not be pulled: {why}"
            )),
            RuntimeError::NotFound(m) | RuntimeError::NotRunning(m) | RuntimeError::Engine(m) => {
                ApiError::ContainerCreation(format!("Failed to create container: {m}"))
            }
        }
    }

    /// Maps an engine failure met on any other operation.
    pub fn engine(err: RuntimeError) -> Self {
        match err {
            RuntimeError::Unavailable(m) => ApiError::DockerDaemon(daemon_message(&m)),
            RuntimeError::ImageNotFound(image) => {
                ApiError::ContainerCreation(format!("Image '{image}' not found"))
            }
            e @ RuntimeError::PullFailed { .. } => ApiError::ContainerCreation(e.to_string()),
            RuntimeError::NotFound(m) | RuntimeError::NotRunning(m) => {
                ApiError::ContainerNotFound(m)
            }
            RuntimeError::Engine(m) => ApiError::DockerDaemon(format!("Docker engine error: {m}")),
        }
    }
}

/// What the client is told when the engine cannot be reached. The detail
/// (socket paths, client library errors) is for the server's log only.
fn daemon_message(detail: &str) -> String {
    tracing::debug!(detail, "Docker engine unreachable");
    "Docker daemon is not responding; try again shortly".to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (status, axum::Json(self.to_json())).into_response();
        match &self {
            ApiError::Limited(info) => info.apply(resp.headers_mut()),
            // The cap is the tightest limit here: its `X-RateLimit-*` and
            // `Retry-After`, written as the limiters write theirs.
            ApiError::AtCapacity {
                limit,
                retry_after_secs,
                ..
            } => {
                let wait = std::time::Duration::from_secs(*retry_after_secs);
                let cap = RateInfo {
                    name: "capacity",
                    spec: RateSpec {
                        count: NonZeroU32::new(*limit).unwrap_or(NonZeroU32::MIN),
                        per: wait,
                    },
                    remaining: 0,
                    reset_in: wait,
                    retry_after: Some(wait),
                };
                cap.apply(resp.headers_mut());
            }
            // Every 429 says when to come back; a limiter's refusal sets
            // its own (see `limits::headers`), which replaces this.
            ApiError::RateLimit(_) => {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, 1u64.into());
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_shape_has_status_code_and_ws_shape_does_not() {
        let e = ApiError::DockerDaemon("down".into());
        let rest = e.to_json();
        assert_eq!(rest["error"], "DockerDaemonError");
        assert_eq!(rest["retryable"], true);
        assert_eq!(rest["statusCode"], 503);
        let ws = e.to_ws_json(Some("session-x"));
        assert_eq!(ws["type"], "error");
        assert!(ws.get("statusCode").is_none());
        assert_eq!(ws["sessionId"], "session-x");
    }

    #[test]
    fn missing_image_names_the_image() {
        let e = ApiError::creation(RuntimeError::ImageNotFound("node:99".into()));
        assert_eq!(e.name(), "ContainerCreationError");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.retryable());
        assert!(e.to_string().contains("'node:99'"));
    }
}
