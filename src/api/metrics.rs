//! `GET /metrics`: Prometheus text exposition of the server's own gauges
//! and counters.

use std::sync::atomic::Ordering;

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::metrics::render;

pub async fn metrics(app: &App) -> Response {
    let docker_up = app.runtime.ping().await.is_ok();
    let m = &app.metrics;
    let text = render(&[
        ("studio_up", "gauge", "1 while the server runs.", 1),
        (
            "studio_uptime_seconds",
            "gauge",
            "Seconds since start.",
            app.started.elapsed().as_secs(),
        ),
        (
            "studio_docker_up",
            "gauge",
            "1 when the Docker engine answers.",
            docker_up as u64,
        ),
        (
            "studio_sessions",
            "gauge",
            "Sessions in the table.",
            app.sessions.count() as u64,
        ),
        (
            "studio_warm_pool_ready",
            "gauge",
            "Pre-started containers waiting in the warm pool.",
            app.sessions.pool_ready() as u64,
        ),
        (
            "studio_websocket_connections",
            "gauge",
            "Open WebSocket connections.",
            m.ws_connections.load(Ordering::Relaxed),
        ),
        (
            "studio_websocket_connections_total",
            "counter",
            "WebSocket connections accepted.",
            m.ws_connections_total.load(Ordering::Relaxed),
        ),
        (
            "studio_sessions_created_total",
            "counter",
            "Sessions created or re-adopted since start.",
            app.sessions.created_total(),
        ),
        (
            "studio_sweeps_total",
            "counter",
            "Cleanup sweeps completed since start.",
            app.sessions.sweeps_total(),
        ),
        (
            "studio_websocket_messages_total",
            "counter",
            "Client messages received.",
            m.ws_messages_total.load(Ordering::Relaxed),
        ),
    ]);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
