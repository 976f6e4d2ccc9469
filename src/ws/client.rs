//! What the message handlers know of their connection: who it is, where its
//! outgoing messages go, and which session it uses by default.

use std::sync::Mutex;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;

use crate::app::AppState;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::limits::ClientIp;
use crate::protocol::ServerMessage;
use crate::terminal::{Kick, Subscriber};

/// What the message handlers know of their connection.
pub struct Connection {
    pub app: AppState,
    pub id: u64,
    pub owner: Owner,
    /// What the per-IP limits on `create` and `configure_preview` count against.
    pub ip: ClientIp,
    /// The `Host` the client reached the server by (for preview URLs).
    pub host: Option<String>,
    pub(super) tx: mpsc::Sender<Utf8Bytes>,
    pub(super) kick: Kick,
    /// The session `input`/`resize` use when they name none: the one this
    /// connection created or attached to last.
    pub(super) current: Mutex<Option<String>>,
    /// In a fleet: links to the gateways holding this connection's other
    /// sessions (`crate::relay::link`).
    pub(super) links: crate::relay::link::Links,
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

    /// An error about one thing of a session (a command, a watched path),
    /// which it names so the client can tell which.
    pub async fn send_error_about(
        &self,
        err: &ApiError,
        session_id: Option<&str>,
        key: &str,
        value: &str,
    ) {
        let mut v = err.to_ws_json(session_id);
        v[key] = serde_json::Value::from(value);
        let _ = self.tx.send(v.to_string().into()).await;
    }

    /// An error about a message that could not be read as one: it names the
    /// session, command or path the message named, when it named them as
    /// strings, so the client can tell which request failed.
    pub async fn send_refusal(&self, err: &ApiError, text: &str) {
        let named: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let pick = |k: &str| {
            named
                .get(k)
                .and_then(|v| v.as_str())
                .filter(|s| s.len() <= 256)
                .map(String::from)
        };
        let mut v = err.to_ws_json(pick("sessionId").as_deref());
        for key in ["execId", "path"] {
            if let Some(x) = pick(key) {
                v[key] = serde_json::Value::from(x);
            }
        }
        let _ = self.tx.send(v.to_string().into()).await;
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
