//! JSON request bodies, with every rejection in the documented error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::ws::protocol::fields;

/// Largest REST request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Like `axum::Json`, but strict (unknown fields are refused, wrong types
/// name the field) and failing with `ValidationError` / `MessageTooLarge`.
/// An empty body reads as `{}`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Refused before reading a byte, whatever the client sends after.
        let announced = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES + 1)
            .await
            .map_err(|e| {
                let length = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if length {
                    too_large()
                } else {
                    ApiError::validation(format!("The request body could not be read: {e}"))
                }
            })?;
        let _ = state;
        parse(&bytes).map(ApiJson)
    }
}

fn too_large() -> ApiError {
    ApiError::MessageTooLarge(format!(
        "Request body exceeds the limit of {MAX_BODY_BYTES} bytes"
    ))
}

fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let value: serde_json::Value = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::validation(format!("Malformed JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::validation("Request body must be a JSON object"));
    }
    fields("request body", value)
}
