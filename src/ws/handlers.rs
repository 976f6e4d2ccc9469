//! Applies one client message. Every failure becomes an `error` message to
//! this client; none of them closes the connection.

use std::sync::Arc;

use super::client::Connection;
use crate::error::ApiError;
use crate::exec::Sink;
use crate::ops;
use crate::protocol::client::{
    Attach, ConfigurePreview, Create, Exec, ExecInput, Input, Resize, Watch,
};
use crate::protocol::{ClientMessage, ServerMessage};
use crate::relay::link::SendError;
use crate::runtime::PullProgress;
use crate::session::{Located, Session};
use crate::terminal::AttachMode;

/// The session whose lane applies `msg` (see `lanes`), or `None` for a
/// message of the connection itself (`ping`, `create`). A message that
/// relies on the connection's current session gets that session's id
/// written in now, so a later `attach` cannot change where it goes.
pub fn lane_of(conn: &Connection, msg: &mut ClientMessage) -> Result<Option<String>, ApiError> {
    let implicit = match msg {
        ClientMessage::Input(m) => &mut m.session_id,
        ClientMessage::Resize(m) => &mut m.session_id,
        ClientMessage::Exec(m) => &mut m.session_id,
        ClientMessage::ExecInput(m) => &mut m.session_id,
        ClientMessage::ExecKill(m) => &mut m.session_id,
        _ => return Ok(msg.session_id().map(str::to_string)),
    };
    let id = conn.session_or_current(implicit.take())?;
    *implicit = Some(id.clone());
    Ok(Some(id))
}

/// Applies a message of session `session`'s lane: here, or, in a fleet,
/// relayed as sent (`raw`) to the gateway that holds the session.
pub async fn handle_for(conn: &Arc<Connection>, session: &str, msg: ClientMessage, raw: &str) {
    let app = &conn.app;
    let Some(fleet) = app.sessions.fleet() else {
        return handle(conn, msg).await;
    };
    // A holder that does not answer has stopped or died: its session moves
    // to another gateway (or here) within a lease, which this waits for.
    let deadline = std::time::Instant::now()
        + crate::fleet::LEASE_TTL
        + crate::fleet::RENEW_EVERY
        + std::time::Duration::from_secs(1);
    let joins = matches!(msg, ClientMessage::Attach(_) | ClientMessage::Input(_));
    loop {
        // An open link already goes to the holder: no lookup per keystroke.
        let url = match conn.links.open_for(session) {
            true => String::new(),
            false => match app.sessions.locate(session, Some(&conn.owner)).await {
                Ok(Located::Elsewhere(url)) => url,
                Err(e @ ApiError::DockerDaemon(_)) => {
                    return conn.send_error(&e, Some(session)).await;
                }
                // Here, or not found (which the handler says as it always does).
                _ => return handle(conn, msg).await,
            },
        };
        let client = crate::relay::link::Client {
            ip: &conn.ip,
            owner: &conn.owner,
            out: conn.subscriber(),
            tasks: &app.tasks,
            shutdown: &app.shutdown,
        };
        match conn.links.send(fleet, &url, session, raw, client).await {
            Ok(()) => {
                if joins {
                    conn.set_current(session);
                }
                return;
            }
            Err(SendError::Unreachable(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(SendError::Unreachable(e) | SendError::Refused(e)) => {
                return conn.send_error(&e, Some(session)).await;
            }
        }
    }
}

pub async fn handle(conn: &Arc<Connection>, msg: ClientMessage) {
    let result = match msg {
        ClientMessage::Ping => {
            conn.send(&ServerMessage::Pong).await;
            Ok(())
        }
        ClientMessage::Create(c) => {
            if let Err(refused) = conn.app.limits.container(conn.ip, None).await {
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
        ClientMessage::Exec(m) => {
            exec(conn, m).await;
            Ok(())
        }
        ClientMessage::ExecInput(m) => {
            let (id, exec_id) = (m.session_id.clone(), m.exec_id.clone().unwrap_or_default());
            if let Err(e) = exec_input(conn, m).await {
                conn.send_error_about(&e, id.as_deref(), "execId", &exec_id)
                    .await;
            }
            Ok(())
        }
        ClientMessage::ExecKill(m) => {
            let (id, exec_id) = (m.session_id.clone(), m.exec_id.clone());
            let r = ops::exec::signal(
                &conn.app,
                &conn.owner,
                id.as_deref().unwrap_or_default(),
                &m.exec_id,
                m.signal.as_ref(),
            )
            .await;
            if let Err(e) = r {
                conn.send_error_about(&e, id.as_deref(), "execId", &exec_id)
                    .await;
            }
            Ok(())
        }
        ClientMessage::Watch(m) => {
            if let Err(e) = watch(conn, &m).await {
                conn.send_error_about(&e, Some(&m.session_id), "path", &m.path)
                    .await;
            }
            Ok(())
        }
        ClientMessage::Unwatch(m) => {
            if conn
                .app
                .watches
                .unwatch(conn.id, &m.session_id, &m.path)
                .await
            {
                conn.send(&ServerMessage::Unwatched {
                    session_id: &m.session_id,
                    path: &m.path,
                })
                .await;
            } else {
                let e = ApiError::validation(format!(
                    "{} is not watched on this connection",
                    m.path.chars().take(256).collect::<String>()
                ));
                conn.send_error_about(&e, Some(&m.session_id), "path", &m.path)
                    .await;
            }
            Ok(())
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
        .attach(conn.subscriber(), AttachMode::Creator, None)
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
            .attach(conn.subscriber(), AttachMode::Reattach, None)
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
        .attach(conn.subscriber(), AttachMode::Reattach, m.since)
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

/// Starts a command; its messages (`exec_started`, `exec_output`,
/// `exec_exit`) come to this connection, an error names its `execId`.
async fn exec(conn: &Arc<Connection>, m: Exec) {
    let session = m.session_id.clone().unwrap_or_default();
    let exec_id = m.exec_id.clone();
    let sub = conn.subscriber();
    let sink = Sink {
        tx: sub.tx,
        kick: Some(sub.kick),
        conn_id: Some(conn.id),
    };
    if let Err(e) = ops::exec::start(&conn.app, &conn.owner, &session, m, Some(sink)).await {
        match exec_id {
            Some(x) => {
                conn.send_error_about(&e, Some(&session), "execId", &x)
                    .await
            }
            None => conn.send_error(&e, Some(&session)).await,
        }
    }
}

async fn exec_input(conn: &Arc<Connection>, m: ExecInput) -> Result<(), ApiError> {
    let data = m.bytes()?;
    ops::exec::input(
        &conn.app,
        &conn.owner,
        m.session_id.as_deref().unwrap_or_default(),
        m.exec_id.as_deref().unwrap_or_default(),
        data,
        m.eof,
    )
    .await
}

async fn watch(conn: &Arc<Connection>, m: &Watch) -> Result<(), ApiError> {
    let (session, files) = ops::files::open(&conn.app, &conn.owner, &m.session_id).await?;
    let started = conn
        .app
        .watches
        .watch(
            conn.id,
            conn.subscriber().tx,
            &session.id,
            files,
            &m.path,
            m.recursive,
        )
        .await?;
    conn.send(&ServerMessage::Watching {
        session_id: &session.id,
        path: &m.path,
        directories: started.directories,
        truncated: started.truncated,
    })
    .await;
    Ok(())
}

async fn configure_preview(conn: &Arc<Connection>, m: ConfigurePreview) -> Result<(), ApiError> {
    conn.app
        .limits
        .preview(conn.ip)
        .await
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
