//! The REST door: one file per resource. Handlers are plain functions of
//! what the request carries (the route's parameters, the caller, the parsed
//! body); `crate::http` classifies, guards and dispatches to them, and they
//! call the operations in `crate::ops`.

pub mod body;
pub mod containers;
pub mod events;
pub mod exec;
pub mod files;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod preview;

use crate::error::ApiError;

/// A known path asked with a method it does not take (`Allow` is added by
/// the dispatch).
pub fn method_not_allowed(method: &axum::http::Method, path: &str) -> ApiError {
    let path: String = path.chars().take(200).collect();
    ApiError::MethodNotAllowed(format!(
        "Method {method} is not allowed on '{path}'; see the Allow header"
    ))
}

pub fn not_found(path: &str) -> ApiError {
    let path: String = path.chars().take(200).collect();
    ApiError::ContainerNotFound(format!("No route for '{path}'"))
}
