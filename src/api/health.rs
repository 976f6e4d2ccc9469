//! `GET /api/health`: never rate limited, never needs a token, always 200 so
//! that a load balancer can tell "up but degraded" from "down".

use axum::Json;
use serde_json::{json, Value};

use crate::app::App;

pub async fn health(app: &App) -> Json<Value> {
    let (connected, store) = tokio::join!(app.runtime.ping(), async {
        match app.sessions.fleet() {
            Some(f) => Some(f.ping().await.is_ok()),
            None => None,
        }
    });
    let connected = connected.is_ok();
    let mut v = json!({
        "status": if connected && store != Some(false) { "ok" } else { "degraded" },
        "docker": if connected { "connected" } else { "disconnected" },
        "uptime": app.started.elapsed().as_secs(),
        // The sessions this gateway holds (in a fleet, not the fleet's).
        "sessions": app.sessions.count(),
        "warmPool": app.sessions.pool_ready(),
        // The studio page asks for a token only when the server wants one.
        "authRequired": app.access.tokens.enabled(),
    });
    // In a fleet: whether its store (Redis) answers.
    if let Some(up) = store {
        v["store"] = Value::from(if up { "connected" } else { "disconnected" });
    }
    Json(v)
}
