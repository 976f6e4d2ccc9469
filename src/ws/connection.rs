//! One WebSocket client: a reader that parses and applies its messages, and
//! a writer that drains its bounded outgoing queue, pings it, and sends
//! `reconnect` when the server stops or the client falls too far behind.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;

use super::handlers;
use super::protocol::{ClientMessage, ServerMessage, MAX_MESSAGE_BYTES};
use crate::app::AppState;
use crate::error::ApiError;
use crate::limits::ClientIp;
use crate::session::Owner;
use crate::terminal::{Kick, Subscriber, READ_CHUNK, RECONNECT_DELAY_MS};

/// Frames up to this size are read (and answered with `MessageTooLarge` when
/// over [`MAX_MESSAGE_BYTES`]); larger ones close the connection.
const HARD_FRAME_LIMIT: usize = 8 * MAX_MESSAGE_BYTES;
/// Outgoing queue length. Output frames carry at most [`READ_CHUNK`] bytes
/// of terminal text, so this bounds a connection's unsent output at 1 MiB.
pub const OUT_QUEUE: usize = MAX_MESSAGE_BYTES / READ_CHUNK;
const READ_BUFFER: usize = 4 * 1024;

pub async fn upgrade(
    State(app): State<AppState>,
    owner: Option<Owner>,
    ip: ClientIp,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return Json(json!({
                "service": "claude-studio",
                "version": env!("CARGO_PKG_VERSION"),
                "websocket": "Connect with a WebSocket client to / or /ws",
                "health": "/api/health",
            }))
            .into_response()
        }
    };
    // Resolved by the access guard; an upgrade it did not authenticate is refused.
    let Some(owner) = owner else {
        return ApiError::Authentication("Missing or invalid API token".into()).into_response();
    };
    let tasks = app.tasks.clone();
    // tungstenite preallocates its read buffer (128 KiB by default) for every
    // connection; client messages are small, and big ones still get room.
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| tasks.track_future(serve(socket, app, owner, ip)))
}

/// What the message handlers know of their connection.
pub struct Connection {
    pub app: AppState,
    pub id: u64,
    pub owner: Owner,
    /// What the per-IP limits on `create` and `configure_preview` count against.
    pub ip: ClientIp,
    tx: mpsc::Sender<Utf8Bytes>,
    kick: Kick,
    /// The session `input`/`resize` use when they name none: the one this
    /// connection created or attached to last.
    current: Mutex<Option<String>>,
}

impl Connection {
    pub fn subscriber(&self) -> Subscriber {
        Subscriber {
            conn_id: self.id,
            tx: self.tx.clone(),
            kick: self.kick.clone(),
        }
    }

    pub async fn send(&self, msg: &ServerMessage<'_>) {
        let _ = self.tx.send(msg.to_text().into()).await;
    }

    pub async fn send_error(&self, err: &ApiError, session_id: Option<&str>) {
        let _ = self
            .tx
            .send(err.to_ws_json(session_id).to_string().into())
            .await;
    }

    pub fn set_current(&self, session_id: &str) {
        *self.current.lock().unwrap() = Some(session_id.to_string());
    }

    /// The named session, or this connection's current one.
    pub fn session_or_current(&self, named: Option<String>) -> Result<String, ApiError> {
        named
            .or_else(|| self.current.lock().unwrap().clone())
            .ok_or_else(|| {
                ApiError::validation("sessionId is required: this connection has no session yet")
            })
    }
}

async fn serve(socket: WebSocket, app: AppState, owner: Owner, ip: ClientIp) {
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(OUT_QUEUE);
    let conn = Arc::new(Connection {
        id: app.next_conn_id(),
        app: Arc::clone(&app),
        owner,
        ip,
        tx,
        kick: Kick::default(),
        current: Mutex::new(None),
    });
    let metrics = &app.metrics;
    metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    metrics.ws_connections_total.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    // Pings sent since the client last sent anything; two unanswered close it.
    let unanswered = AtomicU32::new(0);
    let heartbeat = app.settings.heartbeat_interval;

    let writer = async {
        let start = tokio::time::Instant::now() + heartbeat;
        let mut ping = tokio::time::interval_at(start, heartbeat);
        let reason = loop {
            tokio::select! {
                biased;
                r = conn.kick.kicked() => break Some(r),
                _ = app.shutdown.cancelled() => break Some("Server restarting"),
                m = rx.recv() => match m {
                    Some(text) => if sink.send(Message::Text(text)).await.is_err() { break None },
                    None => break None,
                },
                _ = ping.tick() => {
                    if unanswered.fetch_add(1, Ordering::Relaxed) >= 2 {
                        tracing::debug!(conn = conn.id, "missed two heartbeats; closing");
                        break None;
                    }
                    if sink.send(Message::Ping(Default::default())).await.is_err() { break None }
                }
            }
        };
        if let Some(reason) = reason {
            let msg = ServerMessage::Reconnect {
                reason,
                delay: RECONNECT_DELAY_MS,
            }
            .to_text();
            let _ = sink.send(Message::Text(msg.into())).await;
            let code = if reason == "Server restarting" {
                close_code::RESTART
            } else {
                close_code::AGAIN
            };
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        let _ = sink.close().await;
    };

    let reader = async {
        while let Some(Ok(msg)) = stream.next().await {
            unanswered.store(0, Ordering::Relaxed);
            if matches!(msg, Message::Text(_) | Message::Binary(_)) {
                metrics.ws_messages_total.fetch_add(1, Ordering::Relaxed);
            }
            match msg {
                Message::Text(text) if text.len() > MAX_MESSAGE_BYTES => {
                    let err = ApiError::MessageTooLarge(format!(
                        "Message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes",
                        text.len()
                    ));
                    conn.send_error(&err, None).await;
                }
                Message::Text(text) => match ClientMessage::parse(&text) {
                    Ok(m) => handlers::handle(&conn, m).await,
                    Err(e) => conn.send_error(&e, None).await,
                },
                Message::Binary(_) => {
                    let err = ApiError::validation(
                        "Binary frames are not supported; send JSON text frames",
                    );
                    conn.send_error(&err, None).await;
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    };

    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    app.sessions.detach_everywhere(conn.id).await;
    metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
}
