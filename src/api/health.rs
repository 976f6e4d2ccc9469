//! `GET /api/health`: never rate limited, never needs a token, always 200 so
//! that a load balancer can tell "up but degraded" from "down".

use axum::Json;
use serde_json::{json, Value};

use crate::app::App;

pub async fn health(app: &App) -> Json<Value> {
    let connected = app.runtime.ping().await.is_ok();
    Json(json!({
        "status": if connected { "ok" } else { "degraded" },
        "docker": if connected { "connected" } else { "disconnected" },
        "uptime": app.started.elapsed().as_secs(),
        "sessions": app.sessions.count(),
        "warmPool": app.sessions.pool_ready(),
        // The studio page asks for a token only when the server wants one.
        "authRequired": app.access.tokens.enabled(),
    }))
}
