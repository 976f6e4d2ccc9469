//! The operations both doors offer, each written once: the REST handlers
//! (`api`) and the WebSocket handlers (`ws`) parse their input, call these,
//! and render the result in their own form.

pub mod events;
pub mod exec;
pub mod files;

use std::sync::Arc;

use crate::app::App;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::protocol::client::Create;
use crate::runtime::PullProgress;
use crate::session::{Session, SessionInfo};

/// Creates a session, or returns the caller's existing one when the request
/// names it (a safe retry). Runs to the end even if the caller goes away
/// meanwhile: a create cut short half-way would leave a container no
/// session knows, outside the owner's session limit. A session whose client
/// left is listed, and expires like any idle one.
pub async fn create(
    app: &App,
    owner: &Owner,
    req: Create,
    mut progress: Box<dyn FnMut(PullProgress) + Send>,
) -> Result<Arc<Session>, ApiError> {
    // Checked first, also when it names an existing session: an invalid
    // request is refused whatever it names.
    app.sessions.check(&req)?;
    if let Some(existing) = req
        .session_id
        .as_deref()
        .and_then(|id| app.sessions.get(id, owner).ok())
    {
        return Ok(existing);
    }
    let sessions = Arc::clone(&app.sessions);
    let owner = owner.clone();
    app.tasks
        .spawn(async move { sessions.create(req, &owner, &mut *progress).await })
        .await
        .map_err(|e| ApiError::ContainerCreation(format!("Session creation failed: {e}")))?
}

/// Removes a session and its container; like `create`, runs to its end if
/// the caller hangs up: never a session left pointing at a container
/// already removed.
pub async fn remove(app: &App, owner: &Owner, session_id: &str) -> Result<(), ApiError> {
    let sessions = Arc::clone(&app.sessions);
    let (owner, id) = (owner.clone(), session_id.to_string());
    app.tasks
        .spawn(async move { sessions.remove(&id, &owner).await })
        .await
        .map_err(|e| ApiError::DockerDaemon(format!("Removing the session failed: {e}")))?
}

/// One session with its container's state as the engine reports it now.
pub async fn session_info(
    app: &App,
    owner: &Owner,
    session_id: &str,
) -> Result<SessionInfo, ApiError> {
    let session = app.sessions.get(session_id, owner)?;
    match app
        .runtime
        .container_status(&session.container_id)
        .await
        .map_err(ApiError::engine)?
    {
        Some(status) => Ok(session.info(Some(status))),
        // Removed behind our back: the next sweep drops the session too.
        None => Err(ApiError::ContainerNotFound(format!(
            "Container of session '{session_id}' no longer exists"
        ))),
    }
}

/// The caller's sessions, each with its container's state (one engine call
/// for all of them).
pub async fn list_sessions(app: &App, owner: &Owner) -> Result<Vec<SessionInfo>, ApiError> {
    let sessions = app.sessions.list_restored(owner).await?;
    if sessions.is_empty() && app.sessions.fleet().is_none() {
        return Ok(Vec::new());
    }
    let states: std::collections::HashMap<String, crate::runtime::ContainerStatus> = app
        .runtime
        .list_managed(&app.settings.instance)
        .await
        .map_err(ApiError::engine)?
        .into_iter()
        .map(|c| (c.id, c.status))
        .collect();
    let mut infos: Vec<SessionInfo> = sessions
        .iter()
        .map(|s| s.info(states.get(&s.container_id).copied()))
        .collect();
    // In a fleet, the caller's sessions other gateways hold too (their
    // listening ports are known to their holders only).
    if let Some(fleet) = app.sessions.fleet() {
        let here: std::collections::HashSet<&str> =
            sessions.iter().map(|s| s.id.as_str()).collect();
        let records = fleet.records().await.map_err(|e| {
            ApiError::DockerDaemon(format!(
                "The fleet's store (Redis) is unreachable, so sessions held by other gateways \
                 cannot be listed; try again shortly ({e})"
            ))
        })?;
        for r in records {
            if r.removing || r.owner != owner.0 || here.contains(r.session_id.as_str()) {
                continue;
            }
            let status = states.get(&r.container_id).copied();
            infos.push(SessionInfo {
                status: crate::session::status_word(status),
                session_id: r.session_id,
                container_id: r.container_id,
                image: r.image,
                created_at: r.created,
                preview_port: r.preview_port,
                ports: Vec::new(),
            });
        }
        infos.sort_by(|a, b| (a.created_at, &a.session_id).cmp(&(b.created_at, &b.session_id)));
    }
    Ok(infos)
}

/// The images a create may name: the default, the patterns allowed (none:
/// any image), and those the engine already holds that are allowed.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Images {
    pub default_image: String,
    pub allowed: Vec<String>,
    pub local: Vec<String>,
    /// What a create naming no image gets when the default cannot be
    /// pulled: the fallback image, when it is on the engine and allowed.
    pub fallback_image: Option<String>,
}

pub async fn images(app: &App) -> Result<Images, ApiError> {
    let mut local: Vec<String> = app
        .runtime
        .list_images()
        .await
        .map_err(ApiError::engine)?
        .into_iter()
        .filter(|i| crate::image::ImageRef::parse(i).is_ok_and(|r| app.sessions.image_allowed(&r)))
        .collect();
    local.sort();
    local.dedup();
    let fallback_image = app.settings.fallback_image.clone().filter(|f| {
        crate::image::ImageRef::parse(f)
            .is_ok_and(|r| local.iter().any(|l| l == &r.raw || l == &r.normalized))
    });
    Ok(Images {
        default_image: app.settings.default_image.clone(),
        allowed: app.settings.allowed_images.clone(),
        local,
        fallback_image,
    })
}

/// Where a session's preview now points.
pub struct PreviewConfigured {
    pub session_id: String,
    pub preview_url: String,
    pub target_url: String,
    /// The preview on an origin of its own (`PORT-SESSION.DOMAIN`), the one
    /// to open in a browser.
    pub host_preview_url: String,
}

/// Points the session's preview at `port` of its own container (clients
/// name a port, never a host or URL) and records it.
/// `client_host`: the `Host` the client reached the server by, whose port
/// the host-based URL keeps.
pub async fn configure_preview(
    app: &App,
    owner: &Owner,
    session_id: &str,
    port: u16,
    client_host: Option<&str>,
) -> Result<PreviewConfigured, ApiError> {
    if port == 0 {
        return Err(ApiError::validation(
            "port must be between 1 and 65535, got 0",
        ));
    }
    let session = app.sessions.get(session_id, owner)?;
    app.sessions.set_preview_port(&session, port).await?;
    let base = format!("/preview/{}", session.id);
    let listen_port = client_host
        .and_then(|h| crate::hosts::split_port(h).1.map(str::to_string))
        .unwrap_or_else(|| app.access.names.port().to_string());
    let host_base = crate::hosts::host_url(
        "http",
        port,
        &session.id,
        &app.settings.preview_domain,
        Some(&listen_port),
        "/",
    );
    // With auth on, the links carry a short-lived token a browser tab
    // exchanges for a cookie (see auth::preview_gate).
    let gate = app.access.preview_gate();
    Ok(PreviewConfigured {
        preview_url: gate.preview_url(&base, &session.id, owner),
        host_preview_url: gate.preview_url(&host_base, &session.id, owner),
        target_url: format!("http://localhost:{port}"),
        session_id: session.id.clone(),
    })
}
