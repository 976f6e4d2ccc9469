//! Noticing ports: a task per session reads which TCP ports something in its
//! container listens on (from the engine's machine, so nothing runs inside
//! the container and clients never poll) and tells the session's clients
//! when one opens or closes, as events (`port_opened`, `port_closed`).
//!
//! It looks every [`ACTIVE_POLL`] while the session is in use (a client
//! attached, or a request in the last minute) and every [`IDLE_POLL`]
//! otherwise, as long as the machine's budget allows: all watches together
//! look at most [`ACTIVE_BUDGET`] + [`IDLE_BUDGET`] times a second, so with
//! many sessions each looks less often (each look reads the container's
//! socket tables in /proc: at 10 a second for each of 670 new sessions it
//! took a whole core of system time, and every terminal's echo with it). A session with no preview port yet takes the first port that
//! opens, so its path-based preview works without a `configure_preview`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// Looks per second at most, over all sessions in use (10 sessions at
/// [`ACTIVE_POLL`]; 1,000 look every 10 s). A look costs 2 to 9 ms of
/// system time here: the kernel walks the whole machine's table of
/// established TCP connections to list one namespace's (a dump of only the
/// listening sockets over `sock_diag` would not; not done yet).
pub const ACTIVE_BUDGET: f64 = 100.0;
/// Looks per second at most, over all idle sessions (20 at [`IDLE_POLL`];
/// 1,000 look every 50 s).
pub const IDLE_BUDGET: f64 = 20.0;

/// How long a watch waits before its next look, `watching` sessions being
/// watched in all.
pub fn poll_pause(in_use: bool, watching: usize) -> Duration {
    let (floor, budget) = if in_use {
        (ACTIVE_POLL, ACTIVE_BUDGET)
    } else {
        (IDLE_POLL, IDLE_BUDGET)
    };
    floor.max(Duration::from_secs_f64(watching as f64 / budget))
}

/// Counts a watch while it runs.
struct Watching(Arc<AtomicUsize>);

impl Watching {
    fn start(count: &Arc<AtomicUsize>) -> Watching {
        count.fetch_add(1, Ordering::Relaxed);
        Watching(Arc::clone(count))
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionManager {
    /// Starts watching the session's ports; the watch ends with the session.
    pub(super) fn watch_ports(&self, session: &Arc<Session>) {
        let session = Arc::clone(session);
        let runtime = Arc::clone(&self.runtime);
        let store = Arc::clone(&self.store);
        let names = Arc::clone(&self.names);
        let domain = self.settings.preview_domain.clone();
        let shutdown = self.shutdown.clone();
        let watching = Watching::start(&self.port_watches);
        self.tasks.spawn(async move {
            let watching = watching;
            let mut known: BTreeSet<u16> = BTreeSet::new();
            loop {
                let in_use = session.terminal.attached() > 0
                    || session.idle_millis(now_millis()) < IN_USE_MS;
                let pause = poll_pause(in_use, watching.0.load(Ordering::Relaxed));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_sessions_look_at_full_speed_many_share_a_budget() {
        assert_eq!(poll_pause(true, 1), ACTIVE_POLL);
        assert_eq!(poll_pause(true, 10), ACTIVE_POLL);
        assert_eq!(poll_pause(false, 20), IDLE_POLL);
        assert_eq!(poll_pause(true, 50), Duration::from_millis(500));
        assert_eq!(poll_pause(true, 1000), Duration::from_secs(10));
        assert_eq!(poll_pause(false, 1000), Duration::from_secs(50));
        // Looks per second over all watches stay within the budgets.
        for n in [1usize, 10, 100, 500, 1000, 5000] {
            let active = n as f64 / poll_pause(true, n).as_secs_f64();
            let idle = n as f64 / poll_pause(false, n).as_secs_f64();
            assert!(active <= ACTIVE_BUDGET + 1e-6, "{n}: {active}");
            assert!(idle <= IDLE_BUDGET + 1e-6, "{n}: {idle}");
        }
    }

    #[test]
    fn a_watch_counts_while_it_runs() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = Watching::start(&count);
        let b = Watching::start(&count);
        assert_eq!(count.load(Ordering::Relaxed), 2);
        drop(a);
        assert_eq!(count.load(Ordering::Relaxed), 1);
        drop(b);
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }
}
