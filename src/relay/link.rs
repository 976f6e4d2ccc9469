//! The terminal protocol through another gateway: for each session a client
//! connection talks to that another gateway holds, one WebSocket to that
//! gateway carries the session's messages (the client's, as it sent them
//! with the session named; the holder's answers, output and events, as the
//! holder sent them). The holder sees the relay as one attached client, so
//! output order, the replay and flow control are the holder's.
//!
//! When a link ends without the client leaving (the holder stopped or
//! died), the client is told to reconnect: through any gateway it attaches
//! again and gets its replay from whichever gateway holds the session then.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Owner;
use crate::error::ApiError;
use crate::fleet::Fleet;
use crate::limits::ClientIp;
use crate::terminal::Subscriber;

/// Messages queued for one link before the client is told to slow down.
const LINK_QUEUE: usize = 256;
/// Connecting to the holder may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a quiet link pings the holder.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A holder that has sent nothing (not even a pong) for this long is gone.
const SILENCE: Duration = Duration::from_secs(30);
/// The reason a client is given when its session's gateway went away.
pub const GATEWAY_GONE: &str = "Gateway unavailable";

/// One client connection's links, by session.
#[derive(Default)]
pub struct Links {
    links: Mutex<HashMap<String, mpsc::Sender<String>>>,
}

/// Why a message was not relayed.
#[derive(Debug)]
pub enum SendError {
    /// Nothing answers at the holder's URL.
    Unreachable(ApiError),
    /// Refused (the error the client gets).
    Refused(ApiError),
}

/// Who the relay speaks for, and where the holder's answers go.
pub struct Client<'a> {
    pub ip: &'a ClientIp,
    pub owner: &'a Owner,
    pub out: Subscriber,
    pub tasks: &'a TaskTracker,
    pub shutdown: &'a CancellationToken,
}

impl Links {
    /// Whether this connection has an open link for the session: its
    /// messages go there without asking the fleet where the session is.
    pub fn open_for(&self, session_id: &str) -> bool {
        self.links
            .lock()
            .unwrap()
            .get(session_id)
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Sends one client message (`text`, for `session_id`) to the gateway
    /// at `url`, opening the link first if there is none. `Unreachable`:
    /// nothing answers at `url` (the holder stopped or died).
    pub async fn send(
        &self,
        fleet: &Fleet,
        url: &str,
        session_id: &str,
        text: &str,
        client: Client<'_>,
    ) -> Result<(), SendError> {
        let text = name_session(text, session_id).map_err(SendError::Refused)?;
        let existing = self.links.lock().unwrap().get(session_id).cloned();
        let tx = match existing.filter(|tx| !tx.is_closed()) {
            Some(tx) => tx,
            None => {
                let tx = open(fleet, url, client)
                    .await
                    .map_err(SendError::Unreachable)?;
                self.links
                    .lock()
                    .unwrap()
                    .insert(session_id.to_string(), tx.clone());
                tx
            }
        };
        tx.try_send(text).map_err(|e| SendError::Refused(match e {
            mpsc::error::TrySendError::Full(_) => ApiError::RateLimit(format!(
                "Messages for session '{session_id}' are still waiting to be relayed; slow down and try again"
            )),
            mpsc::error::TrySendError::Closed(_) => ApiError::DockerDaemon(
                "The gateway holding this session went away; reconnect and attach again".into(),
            ),
        }))
    }
}

/// The message with its session named (a message may rely on the
/// connection's current session, which the holder's side does not know).
fn name_session(text: &str, session_id: &str) -> Result<String, ApiError> {
    let mut v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ApiError::validation(format!("Invalid message: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("sessionId".into(), session_id.into());
    }
    Ok(v.to_string())
}

/// Opens a link to the holder and starts its task.
async fn open(
    fleet: &Fleet,
    url: &str,
    client: Client<'_>,
) -> Result<mpsc::Sender<String>, ApiError> {
    let gone = |e: &dyn std::fmt::Display| {
        // Retried while a dead holder's lease runs out: not worth a warning
        // each time (the relay's end is logged, and a client that finally
        // gets the error sees it).
        tracing::debug!(gateway = %url, error = %e, "could not reach the session's gateway");
        ApiError::DockerDaemon(
            "The gateway holding this session did not answer; try again shortly".into(),
        )
    };
    let mut req = format!("ws://{}/ws", super::http::authority(url))
        .into_client_request()
        .map_err(|e| gone(&e))?;
    super::stamp(
        fleet,
        "GET",
        "/ws",
        req.headers_mut(),
        client.ip,
        Some(client.owner),
    );
    let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| gone(&"connect timed out"))?
        .map_err(|e| gone(&e))?;
    let _ = match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.set_nodelay(true),
        _ => Ok(()),
    };
    let (tx, rx) = mpsc::channel(LINK_QUEUE);
    client
        .tasks
        .spawn(run(ws, rx, client.out, client.shutdown.clone()));
    Ok(tx)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn run(ws: Ws, mut rx: mpsc::Receiver<String>, out: Subscriber, shutdown: CancellationToken) {
    let (mut sink, mut stream) = ws.split();
    // A holder that vanished without closing (power, network) is noticed
    // by its silence: pinged every HEARTBEAT, gone after SILENCE.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut heard = tokio::time::Instant::now();
    let reason = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break None,
            _ = heartbeat.tick() => {
                if heard.elapsed() > SILENCE {
                    tracing::warn!("the session's gateway went silent; the relay ends");
                    break Some(GATEWAY_GONE);
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break Some(GATEWAY_GONE);
                }
            }
            m = rx.recv() => match m {
                Some(text) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break Some(GATEWAY_GONE);
                    }
                }
                // The client connection is gone: so is the link.
                None => break None,
            },
            m = stream.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    heard = tokio::time::Instant::now();
                    if let Some(r) = reconnect_reason(t.as_str()) {
                        break Some(r);
                    }
                    if out.tx.send(Utf8Bytes::from(t.as_str())).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break Some(GATEWAY_GONE),
                // Pings (answered by the library), pongs: the holder is there.
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
            },
        }
    };
    let _ = sink.close().await;
    if let Some(r) = reason {
        out.kick.kick(r);
    }
}

/// A holder's `reconnect` becomes the client's own (the same reason), so
/// the client gets one `reconnect`, not the relay's and then this
/// gateway's.
fn reconnect_reason(text: &str) -> Option<&'static str> {
    if !text.starts_with(r#"{"type":"reconnect""#) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(
        match v.get("reason").and_then(|r| r.as_str()).unwrap_or("") {
            "Server restarting" => "Server restarting",
            "Client too slow" => "Client too slow",
            "Session expired" => "Session expired",
            crate::session::MOVED => crate::session::MOVED,
            _ => GATEWAY_GONE,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_message_names_its_session() {
        let t = name_session(r#"{"type":"input","data":"ls\n"}"#, "session-abc").unwrap();
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["sessionId"], "session-abc");
        assert_eq!(v["data"], "ls\n");
    }

    #[test]
    fn a_holders_reconnect_keeps_its_reason() {
        assert_eq!(
            reconnect_reason(r#"{"type":"reconnect","reason":"Client too slow","delay":1000}"#),
            Some("Client too slow")
        );
        assert_eq!(
            reconnect_reason(r#"{"type":"reconnect","reason":"odd","delay":1000}"#),
            Some(GATEWAY_GONE)
        );
        assert_eq!(reconnect_reason(r#"{"type":"output","data":"x"}"#), None);
    }
}
