//! The size of a request's head (request line and headers). hyper refuses
//! absurd heads on its own; this gives a clear, smaller bound with the
//! documented error shape.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Largest request head accepted: URI plus every header name and value.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

pub fn head_bytes(req: &Request) -> usize {
    let uri = req.uri().path().len() + req.uri().query().map_or(0, |q| q.len() + 1);
    uri + req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
}

/// `431` with a `MessageTooLarge` body when the head is over the limit.
pub fn check_head(req: &Request) -> Result<(), Box<Response>> {
    let n = head_bytes(req);
    if n <= MAX_HEAD_BYTES {
        return Ok(());
    }
    let err = ApiError::MessageTooLarge(format!(
        "Request line and headers total {n} bytes; the limit is {MAX_HEAD_BYTES} bytes"
    ));
    let mut body = err.to_json();
    body["statusCode"] = 431.into();
    Err(Box::new(
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            axum::Json(body),
        )
            .into_response(),
    ))
}
