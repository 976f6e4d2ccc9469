//! Applies one client message. Every failure becomes an `error` message to
//! this client; none of them closes the connection.

use std::sync::Arc;

use super::client::Connection;
use crate::error::ApiError;
use crate::ops;
use crate::protocol::client::{Attach, ConfigurePreview, Create, Input, Resize};
use crate::protocol::{ClientMessage, ServerMessage};
use crate::runtime::PullProgress;
use crate::session::Session;
use crate::terminal::AttachMode;

/// The session whose lane applies `msg` (see `lanes`), or `None` for a
/// message of the connection itself (`ping`, `create`). A message that
/// relies on the connection's current session gets that session's id
/// written in now, so a later `attach` cannot change where it goes.
pub fn lane_of(conn: &Connection, msg: &mut ClientMessage) -> Result<Option<String>, ApiError> {
    let implicit = match msg {
        ClientMessage::Input(m) => &mut m.session_id,
        ClientMessage::Resize(m) => &mut m.session_id,
        _ => return Ok(msg.session_id().map(str::to_string)),
    };
    let id = conn.session_or_current(implicit.take())?;
    *implicit = Some(id.clone());
    Ok(Some(id))
}

pub async fn handle(conn: &Arc<Connection>, msg: ClientMessage) {
    let result = match msg {
        ClientMessage::Ping => {
            conn.send(&ServerMessage::Pong).await;
            Ok(())
        }
        ClientMessage::Create(c) => {
            if let Err(refused) = conn.app.limits.container(conn.ip, None) {
                conn.send_error(&ApiError::Limited(refused), None).await;
                return;
            }
            // Creating may pull an image for minutes; the connection keeps
            // answering meanwhile.
            let conn2 = Arc::clone(conn);
            conn.app.tasks.spawn(async move {
                if let Err(e) = create(&conn2, c).await {
                    conn2.send_error(&e, None).await;
                }
            });
            Ok(())
        }
        ClientMessage::Input(m) => input(conn, m).await,
        ClientMessage::Attach(m) => {
            let id = m.session_id.clone();
            attach(conn, m).await.map_err(|e| (e, Some(id)))
        }
        ClientMessage::Resize(m) => resize(conn, m).await,
        ClientMessage::ConfigurePreview(m) => {
            let id = m.session_id.clone();
            configure_preview(conn, m).await.map_err(|e| (e, Some(id)))
        }
    };
    if let Err((e, session)) = result {
        conn.send_error(&e, session.as_deref()).await;
    }
}

type Outcome = Result<(), (ApiError, Option<String>)>;

async fn create(conn: &Arc<Connection>, req: Create) -> Result<(), ApiError> {
    // Progress goes out as it comes; a full queue drops a progress line
    // rather than stall the pull.
    let tx = conn.subscriber().tx;
    let progress = move |p: PullProgress| {
        let msg = ServerMessage::Progress {
            stage: "pull",
            message: &p.message,
            current: p.current,
            total: p.total,
        };
        let _ = tx.try_send(msg.to_text().into());
    };
    let session = ops::create(&conn.app, &conn.owner, req, Box::new(progress)).await?;
    joined(conn, &session).await
}

/// Tells the client its session and attaches it to the terminal.
async fn joined(conn: &Arc<Connection>, session: &Session) -> Result<(), ApiError> {
    conn.send(&ServerMessage::ContainerCreated {
        session_id: &session.id,
        container_id: &session.container_id,
        status: "running",
    })
    .await;
    conn.set_current(&session.id);
    session
        .terminal
        .attach(conn.subscriber(), AttachMode::Creator)
        .await
}

async fn input(conn: &Arc<Connection>, m: Input) -> Outcome {
    let id = conn
        .session_or_current(m.session_id)
        .map_err(|e| (e, None))?;
    let fail = |e| (e, Some(id.clone()));
    let session = conn.app.sessions.get(&id, &conn.owner).map_err(fail)?;
    if !session.terminal.is_attached(conn.id).await {
        session
            .terminal
            .attach(conn.subscriber(), AttachMode::Reattach)
            .await
            .map_err(fail)?;
        conn.set_current(&id);
    }
    session
        .terminal
        .input(m.data.as_bytes())
        .await
        .map_err(fail)
}

async fn attach(conn: &Arc<Connection>, m: Attach) -> Result<(), ApiError> {
    let session = conn.app.sessions.get(&m.session_id, &conn.owner)?;
    session
        .terminal
        .attach(conn.subscriber(), AttachMode::Reattach)
        .await?;
    conn.set_current(&session.id);
    Ok(())
}

async fn resize(conn: &Arc<Connection>, m: Resize) -> Outcome {
    let id = conn
        .session_or_current(m.session_id)
        .map_err(|e| (e, None))?;
    let fail = |e| (e, Some(id.clone()));
    let session = conn.app.sessions.get(&id, &conn.owner).map_err(fail)?;
    session.terminal.resize(m.cols, m.rows).await.map_err(fail)
}

async fn configure_preview(conn: &Arc<Connection>, m: ConfigurePreview) -> Result<(), ApiError> {
    conn.app
        .limits
        .preview(conn.ip)
        .map_err(ApiError::Limited)?;
    let c = ops::configure_preview(
        &conn.app,
        &conn.owner,
        &m.session_id,
        m.port,
        conn.host.as_deref(),
    )
    .await?;
    conn.send(&ServerMessage::PreviewConfigured {
        session_id: &m.session_id,
        preview_url: &c.preview_url,
        target_url: &c.target_url,
        host_preview_url: &c.host_preview_url,
    })
    .await;
    Ok(())
}
