//! `POST /api/preview/configure`: which port of a session's own container
//! the preview proxy forwards to. Clients name a port, never a host or URL.

use axum::extract::Request;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body;
use crate::app::App;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::ops;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigureBody {
    session_id: String,
    port: u16,
}

pub async fn configure(app: &App, owner: &Owner, req: Request) -> Result<Json<Value>, ApiError> {
    let host = crate::hosts::request_host(req.uri(), req.headers()).map(str::to_string);
    let b: ConfigureBody = body::json(req).await?;
    let c = ops::configure_preview(app, owner, &b.session_id, b.port, host.as_deref()).await?;
    Ok(Json(json!({
        "previewUrl": c.preview_url,
        "targetUrl": c.target_url,
        "hostPreviewUrl": c.host_preview_url,
        "sessionId": c.session_id,
    })))
}
