//! The HTTP surface: the whole URL space is laid out in [`router`].

mod body;
mod containers;
mod health;
pub mod metrics;
mod openapi;
pub mod preview;

use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

use crate::app::AppState;
use crate::error::ApiError;

pub fn router(app: AppState) -> Router {
    let preview = crate::preview::Preview::new(Arc::clone(&app));
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
        .with_state(Arc::clone(&app))
        .merge(crate::preview::routes(Arc::clone(&preview)))
        // Layers run outermost last: the access guard (Host, client IP,
        // Origin, token) sees every request; preview host names then go to
        // the preview and never reach the API; the rate limits come last.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::limits::middleware::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            preview,
            crate::preview::host_dispatch,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app,
            crate::auth::guard::guard,
        ))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError::ContainerNotFound(format!("No route for '{path}'"))
}
