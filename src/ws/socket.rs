//! One WebSocket client's socket: a reader that parses each message and
//! hands it to the handlers, and a writer that drains the bounded outgoing
//! queue, pings the client, and sends `reconnect` when the server stops or
//! the client falls too far behind.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::client::Connection;
use super::handlers;
use super::lanes::Lanes;
use crate::app::AppState;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::limits::ClientIp;
use crate::protocol::{ClientMessage, ServerMessage, MAX_MESSAGE_BYTES};
use crate::terminal::{Kick, READ_CHUNK, RECONNECT_DELAY_MS};

/// Outgoing queue length. Output frames carry at most [`READ_CHUNK`] bytes
/// of terminal text, so this bounds a connection's unsent output at 1 MiB.
pub const OUT_QUEUE: usize = MAX_MESSAGE_BYTES / READ_CHUNK;

/// How the reading half ended.
enum ReadEnd {
    /// The client sent a close frame.
    Closed,
    /// The client broke the protocol; this close frame says how.
    Violation(CloseFrame),
    /// The connection failed or ended without a close frame.
    Gone,
}

impl ReadEnd {
    fn from_error(err: axum::Error) -> Self {
        use tungstenite::error::{CapacityError, Error};
        let frame = |code, reason: &'static str| {
            ReadEnd::Violation(CloseFrame {
                code,
                reason: reason.into(),
            })
        };
        match err.into_inner().downcast::<Error>().map(|e| *e) {
            Ok(Error::Utf8(_)) => frame(close_code::INVALID, "Text frame is not valid UTF-8"),
            Ok(Error::Capacity(CapacityError::MessageTooLong { .. })) => {
                frame(close_code::SIZE, "Frame too large")
            }
            Ok(Error::Protocol(_)) => frame(close_code::PROTOCOL, "WebSocket protocol violation"),
            _ => ReadEnd::Gone,
        }
    }
}

/// Why the writing half ended.
enum WriteEnd {
    /// The server asks the client to come back (kicked, or restarting).
    Reconnect(&'static str),
    Read(ReadEnd),
    Gone,
}

/// How long the goodbye (`reconnect`, close frame) may wait for a client to
/// take it; a client that reads nothing is dropped then. Generous: a client
/// kicked for being slow still has its queued output to read first.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// One frame out. A client that does not take it is still told to go
/// (kicked, server stopping) or, after `patience`, dropped: a send that
/// waits on a full socket must not make the connection deaf to those.
async fn send_frame(
    sink: &mut SplitSink<WebSocket, Message>,
    msg: Message,
    conn: &Connection,
    shutdown: &CancellationToken,
    patience: std::time::Duration,
) -> Result<(), WriteEnd> {
    tokio::select! {
        biased;
        r = conn.kick.kicked() => Err(WriteEnd::Reconnect(r)),
        _ = shutdown.cancelled() => Err(WriteEnd::Reconnect("Server restarting")),
        r = tokio::time::timeout(patience, sink.send(msg)) => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriteEnd::Gone),
            Err(_) => {
                tracing::debug!(conn = conn.id, "a send waited {patience:?}; closing");
                Err(WriteEnd::Gone)
            }
        },
    }
}

pub async fn serve(
    socket: WebSocket,
    app: AppState,
    owner: Owner,
    ip: ClientIp,
    host: Option<String>,
) {
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(OUT_QUEUE);
    let conn = Arc::new(Connection {
        id: app.next_conn_id(),
        app: Arc::clone(&app),
        owner,
        ip,
        host,
        tx,
        kick: Kick::default(),
        current: Mutex::new(None),
        links: Default::default(),
    });
    let metrics = &app.metrics;
    metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
    metrics.ws_connections_total.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    // Pings sent since the client last sent anything; two unanswered close it.
    let unanswered = AtomicU32::new(0);
    let heartbeat = app.settings.heartbeat_interval;

    // Set by the reader when the client closes, breaks the protocol or goes
    // away; the writer then answers (close handshake) and ends.
    let (end_tx, mut end_rx) = oneshot::channel::<ReadEnd>();
    let stop = CancellationToken::new();

    let writer = async {
        let start = tokio::time::Instant::now() + heartbeat;
        let mut ping = tokio::time::interval_at(start, heartbeat);
        let ending = loop {
            let sent = tokio::select! {
                biased;
                r = conn.kick.kicked() => break WriteEnd::Reconnect(r),
                _ = app.shutdown.cancelled() => break WriteEnd::Reconnect("Server restarting"),
                end = &mut end_rx => break WriteEnd::Read(end.unwrap_or(ReadEnd::Gone)),
                m = rx.recv() => match m {
                    Some(text) => send_frame(&mut sink, Message::Text(text), &conn, &app.shutdown, 2 * heartbeat).await,
                    None => break WriteEnd::Gone,
                },
                _ = ping.tick() => {
                    if unanswered.fetch_add(1, Ordering::Relaxed) >= 2 {
                        tracing::debug!(conn = conn.id, "missed two heartbeats; closing");
                        break WriteEnd::Gone;
                    }
                    send_frame(&mut sink, Message::Ping(Default::default()), &conn, &app.shutdown, 2 * heartbeat).await
                }
            };
            if let Err(end) = sent {
                break end;
            }
        };
        stop.cancel();
        let mut goodbye = None;
        let close = match ending {
            WriteEnd::Reconnect(reason) => {
                goodbye = Some(
                    ServerMessage::Reconnect {
                        reason,
                        delay: RECONNECT_DELAY_MS,
                        session_id: None,
                    }
                    .to_text(),
                );
                let code = if reason == "Server restarting" {
                    close_code::RESTART
                } else {
                    close_code::AGAIN
                };
                Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })
            }
            WriteEnd::Read(ReadEnd::Violation(frame)) => Some(frame),
            // The client's close is answered by `close()` below, which sends
            // the reply the WebSocket library queued for it.
            WriteEnd::Read(ReadEnd::Closed) => None,
            WriteEnd::Read(ReadEnd::Gone) | WriteEnd::Gone => None,
        };
        // Bounded: a client that never reads cannot hold the task open.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            if let Some(msg) = goodbye {
                sink.send(Message::Text(msg.into())).await?;
            }
            if let Some(frame) = close {
                sink.send(Message::Close(Some(frame))).await?;
            }
            sink.close().await
        })
        .await;
    };

    let lanes = Arc::new(Lanes::default());
    let reader = async {
        let read = async {
            loop {
                let msg = match stream.next().await {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => return ReadEnd::from_error(e),
                    None => return ReadEnd::Gone,
                };
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
                        // A session's messages go to its lane; the reader
                        // never waits on the engine.
                        Ok(mut m) => match handlers::lane_of(&conn, &mut m) {
                            Ok(Some(session)) => {
                                if let Err(e) = lanes.send(&conn, &stop, &session, m, text.clone())
                                {
                                    conn.send_error(&e, Some(&session)).await;
                                }
                            }
                            Ok(None) => handlers::handle(&conn, m).await,
                            Err(e) => conn.send_error(&e, None).await,
                        },
                        // Refused as written: the error names what the
                        // message named (its session, command or path).
                        Err(e) => conn.send_refusal(&e, &text).await,
                    },
                    Message::Binary(_) => {
                        let err = ApiError::validation(
                            "Binary frames are not supported; send JSON text frames",
                        );
                        conn.send_error(&err, None).await;
                    }
                    Message::Close(_) => return ReadEnd::Closed,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
        };
        // A handler may wait on the outgoing queue; once the writer is done
        // nothing drains it, so the reader stops with it.
        let end = tokio::select! {
            end = read => end,
            _ = stop.cancelled() => return,
        };
        let _ = end_tx.send(end);
    };

    tokio::join!(writer, reader);
    app.sessions.detach_everywhere(conn.id).await;
    app.watches.forget_connection(conn.id);
    metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
}
