//! `/api/containers`: create, list, inspect and remove sessions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::ApiJson;
use crate::app::AppState;
use crate::error::ApiError;
use crate::session::{CreateRequest, Owner, Session};
use crate::ws::protocol::check_dims;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateBody {
    image: Option<String>,
    workspace_dir: Option<String>,
    /// An existing session of the caller's: the call then returns it instead
    /// of creating another (a safe retry). Ids are never chosen by clients.
    session_id: Option<String>,
    env: Option<BTreeMap<String, String>>,
    /// The first shell's size, as over WebSocket.
    cols: Option<u16>,
    rows: Option<u16>,
}

pub async fn create(
    State(app): State<AppState>,
    owner: Owner,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Json<Value>, ApiError> {
    if let Some(id) = &body.session_id {
        if let Ok(existing) = app.sessions.get(id, &owner) {
            return Ok(Json(created(&existing)));
        }
    }
    if body.cols.is_some() || body.rows.is_some() {
        check_dims(body.cols.unwrap_or(80), body.rows.unwrap_or(24))?;
    }
    let req = CreateRequest {
        image: body.image,
        workspace_dir: body.workspace_dir,
        env: body.env.unwrap_or_default(),
        cols: body.cols,
        rows: body.rows,
    };
    // Runs to the end even if the client goes away meanwhile (as a WebSocket
    // `create` does): a create cut short half-way would leave a container
    // no session knows, outside the owner's session limit. A session whose
    // client left is listed, and expires like any idle one.
    let sessions = Arc::clone(&app.sessions);
    let session = app
        .tasks
        .spawn(async move { sessions.create(req, &owner, &mut |_| {}).await })
        .await
        .map_err(|e| ApiError::ContainerCreation(format!("Session creation failed: {e}")))??;
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

/// The caller's sessions, each with its container's state as the engine
/// reports it (one engine call for all of them).
pub async fn list(State(app): State<AppState>, owner: Owner) -> Result<Json<Value>, ApiError> {
    let sessions = app.sessions.list_restored(&owner).await?;
    if sessions.is_empty() {
        return Ok(Json(Value::Array(Vec::new())));
    }
    let states: HashMap<String, String> = app
        .runtime
        .list_managed(&app.settings.instance)
        .await
        .map_err(ApiError::engine)?
        .into_iter()
        .map(|c| (c.id, c.status))
        .collect();
    let sessions: Vec<Value> = sessions
        .iter()
        .map(|s| {
            let status = states
                .get(&s.container_id)
                .map_or("removed", String::as_str);
            serde_json::to_value(s.info(status)).unwrap_or_default()
        })
        .collect();
    Ok(Json(Value::Array(sessions)))
}

pub async fn get(
    State(app): State<AppState>,
    owner: Owner,
    Path(session_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let session = app.sessions.get(&session_id, &owner)?;
    let state = app
        .runtime
        .container_state(&session.container_id)
        .await
        .map_err(ApiError::engine)?;
    match state {
        Some(st) => Ok(Json(
            serde_json::to_value(session.info(&st.status)).unwrap_or_default(),
        )),
        // Removed behind our back: the next sweep drops the session too.
        None => Err(ApiError::ContainerNotFound(format!(
            "Container of session '{session_id}' no longer exists"
        ))),
    }
}

pub async fn remove(
    State(app): State<AppState>,
    owner: Owner,
    Path(session_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // Like create, runs to its end if the client hangs up: never a session
    // left pointing at a container already removed.
    let sessions = Arc::clone(&app.sessions);
    app.tasks
        .spawn(async move { sessions.remove(&session_id, &owner).await })
        .await
        .map_err(|e| ApiError::DockerDaemon(format!("Removing the session failed: {e}")))??;
    Ok(Json(json!({ "message": "Container removed successfully" })))
}
