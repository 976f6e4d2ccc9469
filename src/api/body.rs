//! JSON request bodies, with every rejection in the documented error shape.

use axum::body::Bytes;
use axum::extract::Request;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::protocol::validate::fields;

/// Largest REST request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads a JSON object body into `T`: strict (unknown fields are refused,
/// wrong types name the field), failing with `ValidationError` /
/// `MessageTooLarge`. A request with no body and no JSON content type means
/// "all defaults" (`{}`); one that says `Content-Type: application/json`
/// must carry a JSON object, so an empty one is a `ValidationError`. A body
/// sent without a content type (`curl -d`) is read as JSON all the same.
pub async fn json<T: DeserializeOwned>(req: Request) -> Result<T, ApiError> {
    json_within(req, MAX_BODY_BYTES).await
}

/// [`json`] with a limit of its own (a command's stdin may be larger).
pub async fn json_within<T: DeserializeOwned>(req: Request, limit: usize) -> Result<T, ApiError> {
    let says_json = crate::mime::has_media_type(req.headers(), "application/json");
    // Refused before reading a byte, whatever the client sends after.
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        drain(req.into_body()).await;
        return Err(too_large(limit));
    }
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::validation(format!("The request body could not be read: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() > limit {
                drain(body).await;
                return Err(too_large(limit));
            }
        }
    }
    let bytes = Bytes::from(bytes);
    if bytes.len() > limit {
        return Err(too_large(limit));
    }
    parse(&bytes, says_json)
}

/// Bytes of a refused body read (and dropped) before answering, at most.
pub const DRAIN_BYTES: u64 = 8 * 1024 * 1024;
/// How long a refused body is read before answering, at most.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads what is left of a refused request's body, up to [`DRAIN_BYTES`]
/// for at most [`DRAIN_TIME`], and drops it. A client still sending when
/// the answer comes would otherwise have its connection reset (a socket
/// closed with unread data is reset) and lose the answer; past these bounds
/// it may, as with any server.
pub async fn drain(body: axum::body::Body) {
    let mut body = body;
    let mut read: u64 = 0;
    let until = tokio::time::Instant::now() + DRAIN_TIME;
    while read < DRAIN_BYTES {
        match tokio::time::timeout_at(until, body.frame()).await {
            Ok(Some(Ok(frame))) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
            _ => break,
        }
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::MessageTooLarge(format!("Request body exceeds the limit of {limit} bytes"))
}

/// The query string's parameters into `T` (strict: an unknown parameter
/// or a wrong value is a `ValidationError` that names it).
pub fn query<T: DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::validation(format!("Invalid query string: {e}")))
}

fn parse<T: DeserializeOwned>(bytes: &Bytes, says_json: bool) -> Result<T, ApiError> {
    let empty = bytes.iter().all(|b| b.is_ascii_whitespace());
    if empty && says_json {
        return Err(ApiError::validation(
            "The body is empty but Content-Type says JSON: send a JSON object (e.g. {}), \
             or no body and no Content-Type for the defaults",
        ));
    }
    let value: serde_json::Value = if empty {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        image: Option<String>,
    }

    #[test]
    fn an_empty_body_means_defaults_only_without_a_json_content_type() {
        let empty = Bytes::new();
        assert_eq!(parse::<Body>(&empty, false).unwrap(), Body { image: None });
        let e = parse::<Body>(&empty, true).unwrap_err();
        assert_eq!(e.name(), "ValidationError");
        assert!(e.to_string().contains("empty"), "{e}");
        assert!(parse::<Body>(&Bytes::from_static(b"  \n"), true).is_err());
        assert_eq!(
            parse::<Body>(&Bytes::from_static(br#"{"image":"x"}"#), false).unwrap(),
            Body {
                image: Some("x".into())
            }
        );
        for bad in [&b"nope"[..], b"[1]", b"\"x\""] {
            assert_eq!(
                parse::<Body>(&Bytes::from(bad), true).unwrap_err().name(),
                "ValidationError"
            );
        }
    }
}
