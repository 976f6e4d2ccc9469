//! JSON request bodies, with every rejection in the documented error shape.

use axum::body::Bytes;
use axum::extract::Request;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::protocol::validate::fields;

/// Largest REST request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads a JSON object body into `T`: strict (unknown fields are refused,
/// wrong types name the field), failing with `ValidationError` /
/// `MessageTooLarge`. An empty body reads as `{}`.
pub async fn json<T: DeserializeOwned>(req: Request) -> Result<T, ApiError> {
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
    parse(&bytes)
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
