//! `/api/containers`: create, list, inspect and remove sessions.

use axum::extract::Request;
use axum::Json;
use serde_json::{json, Value};

use super::body;
use crate::app::App;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::ops;
use crate::protocol::client::Create;
use crate::session::Session;

pub async fn create(app: &App, owner: &Owner, req: Request) -> Result<Json<Value>, ApiError> {
    let create: Create = body::json(req).await?;
    let session = ops::create(app, owner, create, Box::new(|_| {})).await?;
    Ok(Json(created(&session)))
}

fn created(s: &Session) -> Value {
    json!({
        "sessionId": s.id,
        "containerId": s.container_id,
        "status": "running",
        "image": s.image,
    })
}

pub async fn list(app: &App, owner: &Owner) -> Result<Json<Value>, ApiError> {
    let sessions = ops::list_sessions(app, owner).await?;
    Ok(Json(serde_json::to_value(sessions).unwrap_or_default()))
}

pub async fn get(app: &App, owner: &Owner, session_id: &str) -> Result<Json<Value>, ApiError> {
    let info = ops::session_info(app, owner, session_id).await?;
    Ok(Json(serde_json::to_value(info).unwrap_or_default()))
}

pub async fn remove(app: &App, owner: &Owner, session_id: &str) -> Result<Json<Value>, ApiError> {
    ops::remove(app, owner, session_id).await?;
    Ok(Json(json!({ "message": "Container removed successfully" })))
}
