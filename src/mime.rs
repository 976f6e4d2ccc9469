//! Media types as `Content-Type` names them.

use axum::http::{header, HeaderMap};

/// The media type `Content-Type` names, without parameters (`text/html`).
pub fn media_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
}

/// Whether `Content-Type` names `media_type` (parameters such as charset ignored).
pub fn has_media_type(headers: &HeaderMap, media_type: &str) -> bool {
    self::media_type(headers).is_some_and(|v| v.eq_ignore_ascii_case(media_type))
}
