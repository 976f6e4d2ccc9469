//! The state store: what a session must keep across a server restart (its
//! owner, its preview port), apart from the engine. The engine knows only
//! containers and their fixed labels; everything that changes after a
//! container is made is recorded here.
//!
//! - `file`: the embedded default, one small JSON file per session in a
//!   state directory, each written whole and atomically.
//!
//! Another backend (Redis, for several gateways) implements the same trait.

mod file;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use file::FileStore;

/// One session as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    pub session_id: String,
    pub container_id: String,
    /// The owner's fingerprint; `None` when auth is off.
    pub owner: Option<String>,
    pub image: String,
    /// Unix seconds.
    pub created: i64,
    pub preview_port: Option<u16>,
    /// Its removal has begun: a restart that finds this finishes it rather
    /// than re-adopting a session whose client was told it is going.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removing: bool,
    /// In a fleet: the id of the engine the container lives on, so that
    /// only a gateway that reaches that engine takes the session over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Writes the record whole; a reader (or a restart) sees either the old
    /// record or the new one, never a mix.
    async fn put(&self, record: &SessionRecord) -> Result<(), StoreError>;
    /// Forgets a session; a missing one is success.
    async fn remove(&self, session_id: &str) -> Result<(), StoreError>;
    /// Every recorded session of this server's instance.
    async fn list(&self) -> Result<Vec<SessionRecord>, StoreError>;
}
