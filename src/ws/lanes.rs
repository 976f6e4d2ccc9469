//! Keeps one slow session from stalling a connection: messages that name a
//! session are applied by a worker of that session's own ("a lane"), in the
//! order they came, while the reader goes on to the next message. A hung
//! engine call (starting a shell, a resize) holds up only its session's
//! lane; pings, creates and other sessions' messages are answered meanwhile.
//!
//! Bounded: a connection has at most [`MAX_LANES`] lanes (one per session
//! it talks to), each queues at most [`LANE_BUDGET`] bytes of messages
//! (each message also counts [`MESSAGE_OVERHEAD`], so a burst of
//! keystrokes is queued and a flood of them is still bounded), and a lane
//! that has been idle for [`LANE_IDLE`] ends (it is made again on demand).
//! A message that finds its lane full is refused with a retryable error;
//! the reader never waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::client::Connection;
use super::handlers;
use crate::error::ApiError;
use crate::protocol::ClientMessage;

pub const MAX_LANES: usize = 64;
/// Bytes of messages one lane may hold: four of the largest messages.
pub const LANE_BUDGET: usize = 4 * crate::protocol::MAX_MESSAGE_BYTES;
pub const MESSAGE_OVERHEAD: usize = 64;
const LANE_IDLE: Duration = Duration::from_secs(30);

/// A queued message, as parsed and as sent (for a relay to the session's
/// gateway), and its share of the lane's budget.
type Queued = (ClientMessage, Utf8Bytes, OwnedSemaphorePermit);

struct LaneHandle {
    tx: mpsc::UnboundedSender<Queued>,
    budget: Arc<Semaphore>,
}

#[derive(Default)]
pub struct Lanes {
    lanes: Mutex<HashMap<String, LaneHandle>>,
}

impl Lanes {
    /// Queues `msg` (`size` bytes as sent) on `session`'s lane, starting
    /// the lane if needed. `Err` is the error to send the client instead.
    pub fn send(
        self: &Arc<Self>,
        conn: &Arc<Connection>,
        stop: &CancellationToken,
        session: &str,
        msg: ClientMessage,
        raw: Utf8Bytes,
    ) -> Result<(), ApiError> {
        let cost = (raw.len() + MESSAGE_OVERHEAD).min(LANE_BUDGET) as u32;
        let full = || {
            ApiError::RateLimit(format!(
                "Messages for session '{session}' are still waiting to be applied; slow down and try again"
            ))
        };
        let mut lanes = self.lanes.lock().unwrap();
        let msg = match lanes.get(session) {
            Some(lane) => {
                let permit = Arc::clone(&lane.budget)
                    .try_acquire_many_owned(cost)
                    .map_err(|_| full())?;
                match lane.tx.send((msg, raw, permit)) {
                    Ok(()) => return Ok(()),
                    // The lane ended (idle) after this message was routed to it.
                    Err(mpsc::error::SendError((m, r, _))) => (m, r),
                }
            }
            None => (msg, raw),
        };
        lanes.retain(|_, lane| !lane.tx.is_closed());
        if lanes.len() >= MAX_LANES {
            return Err(ApiError::RateLimit(format!(
                "This connection is busy with {MAX_LANES} sessions; wait for their messages to be applied"
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(LANE_BUDGET));
        let permit = Arc::clone(&budget)
            .try_acquire_many_owned(cost)
            .map_err(|_| full())?;
        let _ = tx.send((msg.0, msg.1, permit));
        lanes.insert(session.to_string(), LaneHandle { tx, budget });
        drop(lanes);
        let lane = Lane {
            lanes: Arc::clone(self),
            session: session.to_string(),
            conn: Arc::clone(conn),
            stop: stop.clone(),
        };
        conn.app.tasks.spawn(lane.run(rx));
        Ok(())
    }
}

struct Lane {
    lanes: Arc<Lanes>,
    session: String,
    conn: Arc<Connection>,
    /// The connection is closing: what is queued is dropped.
    stop: CancellationToken,
}

impl Lane {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Queued>) {
        loop {
            let next = tokio::select! {
                _ = self.stop.cancelled() => return,
                m = tokio::time::timeout(LANE_IDLE, rx.recv()) => m,
            };
            match next {
                Ok(Some((msg, raw, _permit))) => {
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = handlers::handle_for(&self.conn, &self.session, msg, &raw) => {}
                    }
                }
                Ok(None) => return,
                Err(_) => {
                    // Idle: end, unless a message slipped in meanwhile (the
                    // map's lock orders this against `send`).
                    let mut lanes = self.lanes.lanes.lock().unwrap();
                    if rx.is_empty() {
                        lanes.remove(&self.session);
                        return;
                    }
                }
            }
        }
    }
}
