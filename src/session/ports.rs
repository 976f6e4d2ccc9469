//! Noticing ports: a task per session reads which TCP ports something in its
//! container listens on (from the engine's machine, so nothing runs inside
//! the container and clients never poll) and tells the session's clients
//! when one opens or closes, as events (`port_opened`, `port_closed`).
//!
//! It looks every [`ACTIVE_POLL`] while the session is in use (a client
//! attached, or a request in the last minute) and every [`IDLE_POLL`]
//! otherwise. A session with no preview port yet takes the first port that
//! opens, so its path-based preview works without a `configure_preview`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{Session, SessionManager};
use crate::clock::now_millis;
use crate::protocol::ServerMessage;
use crate::runtime::RuntimeError;

pub const ACTIVE_POLL: Duration = Duration::from_millis(100);
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// Without a client attached, a session counts as in use this long after
/// its last request.
const IN_USE_MS: u64 = 60_000;

impl SessionManager {
    /// Starts watching the session's ports; the watch ends with the session.
    pub(super) fn watch_ports(&self, session: &Arc<Session>) {
        let session = Arc::clone(session);
        let runtime = Arc::clone(&self.runtime);
        let store = Arc::clone(&self.store);
        let names = Arc::clone(&self.names);
        let domain = self.settings.preview_domain.clone();
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let mut known: BTreeSet<u16> = BTreeSet::new();
            loop {
                let in_use = session.terminal.attached() > 0
                    || session.idle_millis(now_millis()) < IN_USE_MS;
                let pause = if in_use { ACTIVE_POLL } else { IDLE_POLL };
                tokio::select! {
                    _ = session.ended.cancelled() => return,
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                let now = match runtime.listening_ports(&session.container_id).await {
                    Ok(now) => now,
                    // Stopped: nothing listens.
                    Err(RuntimeError::NotRunning(_)) | Err(RuntimeError::NotFound(_)) => {
                        BTreeSet::new()
                    }
                    Err(e) => {
                        tracing::debug!(session = %session.id, error = %e, "could not read the session's ports");
                        continue;
                    }
                };
                if now == known {
                    continue;
                }
                *session.ports.lock().unwrap() = now.clone();
                for &port in now.difference(&known) {
                    if session.preview_port().is_none() {
                        if let Err(e) = super::manager::record_preview_port(&*store, &session, port).await {
                            tracing::debug!(session = %session.id, error = %e, "could not take the first port for the preview");
                        }
                    }
                    let url = crate::hosts::host_url(
                        "http",
                        port,
                        &session.id,
                        &domain,
                        Some(&names.port().to_string()),
                        "/",
                    );
                    session
                        .terminal
                        .publish(&ServerMessage::PortOpened {
                            session_id: &session.id,
                            port,
                            preview_url: &url,
                        })
                        .await;
                }
                for &port in known.difference(&now) {
                    session
                        .terminal
                        .publish(&ServerMessage::PortClosed {
                            session_id: &session.id,
                            port,
                        })
                        .await;
                }
                known = now;
            }
        });
    }
}
