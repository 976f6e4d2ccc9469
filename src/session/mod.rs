//! Sessions: one container, its terminal, its preview port and its owner.
//!
//! - `manager`: the session table (look up by owner, insert, forget).
//! - `create`: the create pipeline (checks, warm pool, pull, container).
//! - `maintenance`: re-adoption after a restart and the periodic sweep.
//! - `pool`: the warm pool's containers and the demand for them.
//! - `refill`: the task that keeps the pool following demand.
//! - `slot`: how a warm container gets its `workspaceDir` at hand-out.
//! - `id`: session ids.
//!
//! What a session must keep across a restart (its owner, its preview port)
//! lives in the state store (`crate::store`), never in the engine: a
//! container's labels cannot change, and a pod cannot be renamed.

mod create;
mod fleet;
pub mod id;
mod maintenance;
mod manager;
mod pool;
mod ports;
mod refill;
mod slot;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::auth::Owner;
use crate::clock::now_millis;
use crate::exec::Commands;
use crate::runtime::ContainerStatus;
use crate::store::SessionRecord;
use crate::terminal::Terminal;

pub use fleet::{Located, MOVED};
pub use manager::SessionManager;

pub struct Session {
    pub id: String,
    pub container_id: String,
    pub image: String,
    pub owner: Owner,
    /// Unix seconds.
    pub created: i64,
    pub terminal: Arc<Terminal>,
    /// Commands run apart from the terminal.
    pub commands: Arc<Commands>,
    last_activity_ms: AtomicU64,
    preview_port: Mutex<Option<u16>>,
    /// Set (and recorded) while the session is being removed.
    removing: std::sync::atomic::AtomicBool,
    /// Held while the session's record is written, so that of two writes
    /// the later one holds the latest state.
    record_lock: tokio::sync::Mutex<()>,
    /// Cancelled when the session is removed or expires: what still runs
    /// for it (preview WebSocket tunnels) ends with it.
    pub ended: CancellationToken,
    /// Places for open preview WebSocket tunnels ([`PREVIEW_TUNNELS`]).
    pub preview_tunnels: Arc<Semaphore>,
    /// The TCP ports something in the container listened on at the last look.
    ports: Mutex<BTreeSet<u16>>,
    /// In a fleet: the engine the container lives on (`SessionRecord::engine`).
    engine: Option<String>,
}

/// Preview WebSockets one session may hold open at once (a browser tab's
/// hot reload needs one or two).
pub const PREVIEW_TUNNELS: usize = 32;

/// The REST view of a session.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: String,
    pub container_id: String,
    pub status: &'static str,
    pub image: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_port: Option<u16>,
    /// The TCP ports something in the container listens on.
    pub ports: Vec<u16>,
}

/// A container's state in the API's words, whatever the engine calls it:
/// `running`, `stopped`, `paused`, `restarting`, `starting`, or `removed`
/// (the container is gone).
pub fn status_word(status: Option<ContainerStatus>) -> &'static str {
    match status {
        Some(ContainerStatus::Running) => "running",
        Some(ContainerStatus::Paused) => "paused",
        Some(ContainerStatus::Restarting) => "restarting",
        Some(ContainerStatus::Created) => "starting",
        Some(ContainerStatus::Stopped) => "stopped",
        Some(ContainerStatus::Removing) | None => "removed",
    }
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

    /// What the state store keeps of this session.
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            session_id: self.id.clone(),
            container_id: self.container_id.clone(),
            owner: self.owner.0.clone(),
            image: self.image.clone(),
            created: self.created,
            preview_port: self.preview_port(),
            removing: self.removing.load(Ordering::Relaxed),
            engine: self.engine.clone(),
        }
    }

    pub fn info(&self, status: Option<ContainerStatus>) -> SessionInfo {
        SessionInfo {
            session_id: self.id.clone(),
            container_id: self.container_id.clone(),
            status: status_word(status),
            image: self.image.clone(),
            created_at: self.created,
            preview_port: self.preview_port(),
            ports: self.ports(),
        }
    }

    pub fn ports(&self) -> Vec<u16> {
        self.ports.lock().unwrap().iter().copied().collect()
    }
}
