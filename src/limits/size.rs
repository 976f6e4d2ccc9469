//! The size of a request's head (request line and headers). hyper refuses
//! absurd heads on its own; this gives a clear, smaller bound with the
//! documented error shape.

use axum::extract::Request;

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
