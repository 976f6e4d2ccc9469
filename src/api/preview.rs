//! Preview configuration: which port of a session's own container the
//! preview proxy forwards to. Clients name a port, never a host or URL.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::ApiJson;
use crate::app::App;
use crate::app::AppState;
use crate::error::ApiError;
use crate::session::Owner;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigureBody {
    session_id: String,
    port: u16,
}

pub struct Configured {
    pub preview_url: String,
    pub target_url: String,
}

/// Shared by REST and WebSocket.
pub fn configure(
    app: &App,
    owner: &Owner,
    session_id: &str,
    port: u16,
) -> Result<Configured, ApiError> {
    if port == 0 {
        return Err(ApiError::validation(
            "port must be between 1 and 65535, got 0",
        ));
    }
    let session = app.sessions.get(session_id, owner)?;
    app.sessions.set_preview_port(&session, port);
    let base = format!("/preview/{}", session.id);
    Ok(Configured {
        // With auth on, the link carries a short-lived token a browser tab
        // exchanges for a cookie (see auth::preview_gate).
        preview_url: app
            .access
            .preview_gate()
            .preview_url(&base, &session.id, owner),
        target_url: format!("http://localhost:{port}"),
    })
}

pub async fn configure_handler(
    State(app): State<AppState>,
    owner: Owner,
    ApiJson(body): ApiJson<ConfigureBody>,
) -> Result<Json<Value>, ApiError> {
    let c = configure(&app, &owner, &body.session_id, body.port)?;
    Ok(Json(
        json!({ "previewUrl": c.preview_url, "targetUrl": c.target_url, "sessionId": body.session_id }),
    ))
}
