//! Sessions: one container, its terminal, its preview port and its owner.
//! `manager` keeps the table and owns their life cycle (create, look up,
//! remove, expire, re-adopt after a restart); `id` makes the ids.

pub mod id;
mod maintenance;
mod manager;
mod pool;
mod record;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::terminal::Terminal;

pub use manager::{CreateRequest, SessionManager};

/// Who a session belongs to: the fingerprint of the API token that created
/// it, or nobody when the server runs without tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Owner(pub Option<String>);

impl Owner {
    pub fn label(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }
    pub fn from_label(s: &str) -> Owner {
        Owner((!s.is_empty()).then(|| s.to_string()))
    }
}

pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct Session {
    pub id: String,
    pub container_id: String,
    pub image: String,
    pub owner: Owner,
    /// Unix seconds.
    pub created: i64,
    pub terminal: Arc<Terminal>,
    last_activity_ms: AtomicU64,
    preview_port: Mutex<Option<u16>>,
    /// Held while the container's name is being rewritten (see `record`),
    /// so that of two renames the later one writes the latest state.
    record_lock: tokio::sync::Mutex<()>,
    /// Cancelled when the session is removed or expires: what still runs
    /// for it (preview WebSocket tunnels) ends with it.
    pub ended: CancellationToken,
    /// Places for open preview WebSocket tunnels ([`PREVIEW_TUNNELS`]).
    pub preview_tunnels: Arc<Semaphore>,
}

/// Preview WebSockets one session may hold open at once (a browser tab's
/// hot reload needs one or two).
pub const PREVIEW_TUNNELS: usize = 32;

/// The REST view of a session.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: String,
    pub container_id: String,
    pub status: String,
    pub image: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_port: Option<u16>,
}

impl Session {
    pub fn touch(&self) {
        self.last_activity_ms.store(now_millis(), Ordering::Relaxed);
    }

    pub fn idle_millis(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_activity_ms.load(Ordering::Relaxed))
    }

    /// Whether a preview WebSocket of this session is open.
    pub fn has_open_preview_sockets(&self) -> bool {
        self.preview_tunnels.available_permits() < PREVIEW_TUNNELS
    }

    pub fn preview_port(&self) -> Option<u16> {
        *self.preview_port.lock().unwrap()
    }

    fn set_preview_port(&self, port: u16) {
        *self.preview_port.lock().unwrap() = Some(port);
    }

    pub fn info(&self, status: &str) -> SessionInfo {
        SessionInfo {
            session_id: self.id.clone(),
            container_id: self.container_id.clone(),
            status: status.to_string(),
            image: self.image.clone(),
            created_at: self.created,
            preview_port: self.preview_port(),
        }
    }
}
