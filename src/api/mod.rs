//! The HTTP surface: the whole URL space is laid out in [`router`].

mod body;
mod containers;
pub mod front;
mod health;
pub mod metrics;
mod openapi;
pub mod preview;

use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

use crate::app::AppState;
use crate::error::ApiError;

/// Every request's entry point: the guard, then the preview or the API.
pub fn front(app: AppState) -> front::Front {
    let preview = crate::preview::Preview::new(Arc::clone(&app));
    front::Front::new(Arc::clone(&app), preview, router(app))
}

/// The API's routes (the preview is dispatched before them, in `front`).
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/", get(crate::ws::upgrade))
        .route("/ws", get(crate::ws::upgrade))
        .route("/api/health", get(health::health))
        .route("/api/openapi.json", get(openapi::openapi))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/api/containers",
            post(containers::create).get(containers::list),
        )
        .route(
            "/api/containers/{session_id}",
            get(containers::get).delete(containers::remove),
        )
        .route("/api/preview/configure", post(preview::configure_handler))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// axum adds the `Allow` header to this response itself.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::MethodNotAllowed(format!(
        "Method {method} is not allowed on '{path}'; see the Allow header"
    ))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::ContainerNotFound(format!("No route for '{path}'"))
}
