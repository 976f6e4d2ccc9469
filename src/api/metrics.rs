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
            "studio_warm_pool_memory_bytes",
            "gauge",
            "Memory the warm pool's waiting containers hold, as the engine measured each.",
            app.sessions.pool_memory(),
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
        (
            "studio_tasks",
            "gauge",
            "Tasks alive on the server's runtime.",
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks() as u64,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the server process in bytes.",
            process::resident_bytes().unwrap_or(0),
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors of the server process.",
            process::open_fds().unwrap_or(0),
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

/// The server process's own figures, read from `/proc/self` (Linux).
mod process {
    /// Resident set size in bytes (`VmRSS` of `/proc/self/status`).
    pub fn resident_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Entries of `/proc/self/fd` (less the one the listing itself holds).
    pub fn open_fds() -> Option<u64> {
        let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(n.saturating_sub(1))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn figures_of_this_process_are_plausible() {
            let rss = super::resident_bytes().unwrap();
            assert!(rss > 1 << 20, "{rss}");
            // stdin, stdout, stderr and the file opened here at least.
            let f = std::fs::File::open("/proc/self/status").unwrap();
            assert!(super::open_fds().unwrap() >= 4);
            drop(f);
        }
    }
}
