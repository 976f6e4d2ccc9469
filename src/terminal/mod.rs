//! A session's terminal: one TTY shell at a time inside the container, its
//! recent output, and the clients attached to it.
//!
//! Data flow: a pump task reads the shell's raw bytes, decodes them into text
//! without splitting characters (`utf8`), appends them to the replay buffer
//! (`replay`) and hands one pre-serialized `output` frame to every attached
//! client's bounded queue. When a queue is full the pump waits, so the shell
//! is read more slowly instead of output piling up; a client that stays full
//! for [`SLOW_CLIENT_TIMEOUT`] is kicked with `reconnect` and can attach again.

mod coalesce;
mod fanout;
mod input;
mod pump;
mod replay;
pub mod utf8;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::now_millis;
use crate::error::ApiError;
use crate::events::{EventLog, Since};
use crate::protocol::ServerMessage;
use crate::runtime::{ContainerRuntime, RuntimeError, ShellSpec};
use coalesce::InputPending;
use fanout::{send_with_timeout, Subscribers};
pub use fanout::{Kick, Subscriber, SLOW_CLIENT_TIMEOUT};
use input::InputQueue;
use replay::Replay;

/// At least this much recent output is replayed on attach.
pub const REPLAY_BYTES: usize = 64 * 1024;
/// Largest read from the shell, and so the largest `output` message's payload.
pub const READ_CHUNK: usize = 32 * 1024;
/// Read size while the shell is quiet.
const SMALL_READ: usize = 4 * 1024;
pub const RECONNECT_DELAY_MS: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// The session's creator: output so far (a pre-started shell's prompt)
    /// arrives as ordinary `output`.
    Creator,
    /// `attach` or first `input`: `attached`, then the replay marked `replay: true`.
    Reattach,
}

struct Shell {
    exec_id: String,
    /// Feeds the shell's stdin through its own task, so that a shell that is
    /// not reading (a long command, a big paste) never blocks a connection.
    input: InputQueue,
    done: CancellationToken,
}

struct Shared {
    replay: Replay,
    subscribers: Subscribers,
    /// The session's events: recorded and sent under the same lock as
    /// attaching, so an `attach` with `since` gets each event exactly once.
    events: EventLog,
}

pub struct Terminal {
    session_id: Arc<str>,
    container_id: Arc<str>,
    runtime: Arc<dyn ContainerRuntime>,
    shell_cmd: Vec<String>,
    /// The client's `env`, for shells in containers made before it was known (warm pool).
    shell_env: Vec<String>,
    shared: Mutex<Shared>,
    shell: Mutex<Option<Shell>>,
    size: std::sync::Mutex<(u16, u16)>,
    attached: AtomicUsize,
    /// Input went to the shell: the output that answers it is never held back.
    input_pending: InputPending,
    /// Cancelled when the session ends; stops the pump.
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Terminal {
    pub fn new(
        session_id: &str,
        container_id: &str,
        runtime: Arc<dyn ContainerRuntime>,
        shell: &str,
        shell_env: Vec<String>,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Arc<Terminal> {
        Arc::new(Terminal {
            session_id: session_id.into(),
            container_id: container_id.into(),
            runtime,
            shell_cmd: vec![shell.to_string()],
            shell_env,
            shared: Mutex::new(Shared {
                replay: Replay::new(REPLAY_BYTES),
                subscribers: Subscribers::default(),
                events: EventLog::new(now_millis()),
            }),
            shell: Mutex::new(None),
            size: std::sync::Mutex::new((80, 24)),
            attached: AtomicUsize::new(0),
            input_pending: InputPending::default(),
            stop,
            tasks,
        })
    }

    /// Starts the replay with output from before this terminal (a session
    /// taken over from another gateway), if it has none of its own yet.
    pub async fn seed_replay(&self, past: &str) {
        let mut shared = self.shared.lock().await;
        if shared.replay.version() == 0 {
            shared.replay.push(past);
        }
    }

    /// The replay's tail and version, if it changed since version `seen`.
    pub async fn replay_since(&self, seen: u64) -> Option<(u64, String)> {
        let shared = self.shared.lock().await;
        let v = shared.replay.version();
        (v != seen).then(|| (v, shared.replay.snapshot().to_string()))
    }

    /// Number of live attached connections.
    pub fn attached(&self) -> usize {
        self.attached.load(Ordering::Relaxed)
    }

    pub fn set_size(&self, cols: u16, rows: u16) {
        *self.size.lock().unwrap() = (cols, rows);
    }

    /// Attaches a connection: first what `mode` says of the past, then the
    /// events after `since` (when given), then all live output and events,
    /// with nothing lost or repeated between the two.
    pub async fn attach(
        self: &Arc<Self>,
        sub: Subscriber,
        mode: AttachMode,
        since: Option<u64>,
    ) -> Result<(), ApiError> {
        {
            let mut shared = self.shared.lock().await;
            let mut preamble = Vec::with_capacity(2);
            if mode == AttachMode::Reattach {
                let attached = ServerMessage::Attached {
                    session_id: &self.session_id,
                    container_id: &self.container_id,
                    status: "running",
                };
                preamble.push(attached.to_text());
            }
            let past = shared.replay.snapshot();
            if mode == AttachMode::Reattach || !past.is_empty() {
                let replay = ServerMessage::Output {
                    session_id: &self.session_id,
                    data: past,
                    replay: (mode == AttachMode::Reattach).then_some(true),
                };
                preamble.push(replay.to_text());
            }
            let missed = since
                .map(|s| shared.events.since(s).events)
                .unwrap_or_default();
            let missed = missed.iter().map(|e| Utf8Bytes::from(e.to_string()));
            for msg in preamble.into_iter().map(Utf8Bytes::from).chain(missed) {
                if !send_with_timeout(&sub, msg).await {
                    return Ok(());
                }
            }
            shared.subscribers.add(sub);
            self.count_attached(&shared);
        }
        self.ensure_shell().await
    }

    /// Drops subscribers whose connection has gone (one can slip in while
    /// its connection closes) and returns how many remain.
    pub async fn prune(&self) -> usize {
        let mut shared = self.shared.lock().await;
        shared.subscribers.prune();
        self.count_attached(&shared);
        shared.subscribers.len()
    }

    pub async fn detach(&self, conn_id: u64) -> bool {
        let mut shared = self.shared.lock().await;
        let removed = shared.subscribers.remove(conn_id);
        self.count_attached(&shared);
        removed
    }

    pub async fn is_attached(&self, conn_id: u64) -> bool {
        self.shared.lock().await.subscribers.contains(conn_id)
    }

    pub async fn input(self: &Arc<Self>, data: &[u8]) -> Result<(), ApiError> {
        self.ensure_shell().await?;
        let Some(tx) = self.shell.lock().await.as_ref().map(|s| s.input.clone()) else {
            return Ok(());
        };
        // Never wait for room: the connection must stay responsive. A full
        // queue means the shell has not read megabytes; the client may retry.
        // Marked first, so that the pump cannot read the echo before it.
        self.input_pending.mark();
        if tx.push(data) {
            Ok(())
        } else {
            Err(ApiError::RateLimit(
                "The terminal is not reading its input; input was dropped, try again later".into(),
            ))
        }
    }

    pub async fn resize(&self, cols: u16, rows: u16) -> Result<(), ApiError> {
        self.set_size(cols, rows);
        let exec_id = self.shell.lock().await.as_ref().map(|s| s.exec_id.clone());
        if let Some(id) = exec_id {
            self.runtime
                .resize_shell(&id, cols, rows)
                .await
                .map_err(ApiError::engine)?;
        }
        Ok(())
    }

    /// Starts the shell ahead of any client (warm pool): its first output
    /// waits in the replay buffer for the session's creator.
    pub async fn warm_up(self: &Arc<Self>) -> Result<(), ApiError> {
        self.ensure_shell().await
    }

    /// Starts a shell unless one is running.
    async fn ensure_shell(self: &Arc<Self>) -> Result<(), ApiError> {
        let mut slot = self.shell.lock().await;
        if slot.as_ref().is_some_and(|s| !s.done.is_cancelled()) {
            return Ok(());
        }
        let (cols, rows) = *self.size.lock().unwrap();
        let spec = ShellSpec {
            cmd: self.shell_cmd.clone(),
            env: self.shell_env.clone(),
            cols,
            rows,
        };
        let io = match self.runtime.start_shell(&self.container_id, &spec).await {
            // The workspace container was stopped (an engine restart, a
            // `docker stop`): start it again rather than lose the session.
            Err(RuntimeError::NotRunning(_)) => {
                tracing::info!(session = %self.session_id, "container was stopped; starting it again");
                self.runtime
                    .start_container(&self.container_id)
                    .await
                    .map_err(ApiError::engine)?;
                self.restarted().await;
                self.runtime.start_shell(&self.container_id, &spec).await
            }
            other => other,
        }
        .map_err(ApiError::engine)?;
        let done = CancellationToken::new();
        let (input_tx, input_rx) = InputQueue::new();
        *slot = Some(Shell {
            exec_id: io.exec_id.clone(),
            input: input_tx,
            done: done.clone(),
        });
        self.tasks
            .spawn(input::feed(io.input, input_rx, done.clone()));
        let this = Arc::clone(self);
        let exec_id = io.exec_id.clone();
        self.tasks
            .spawn(async move { this.pump(io.exec_id, io.output, done).await });
        // Only now: the engine answers a resize once the shell runs, and the
        // first output must not wait for that. The slot stays locked so that
        // no input reaches the shell before its size is right.
        if let Err(e) = self.runtime.resize_shell(&exec_id, cols, rows).await {
            tracing::debug!(session = %self.session_id, error = %e, "initial resize failed");
        }
        drop(slot);
        Ok(())
    }

    /// Records an event in the session's log and sends it (with its `seq`)
    /// to every attached connection, with the same flow control as output.
    /// Returns the event's text as sent.
    pub async fn publish(&self, message: &ServerMessage<'_>) -> Arc<str> {
        let mut shared = self.shared.lock().await;
        let text = shared.events.record(&message.to_text());
        shared
            .subscribers
            .send(Utf8Bytes::from(text.to_string()))
            .await;
        self.count_attached(&shared);
        text
    }

    /// Records that the session's container had stopped and was started again.
    pub async fn restarted(&self) {
        self.publish(&ServerMessage::Lifecycle {
            session_id: &self.session_id,
            state: "restarted",
            reason: "The session's container had stopped; it was started again",
        })
        .await;
    }

    /// The session's events after `since`.
    pub async fn events_since(&self, since: u64) -> Since {
        self.shared.lock().await.events.since(since)
    }

    /// Changes whenever an event is recorded (its value: the latest `seq`).
    pub async fn watch_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.lock().await.events.subscribe()
    }

    fn count_attached(&self, shared: &Shared) {
        self.attached
            .store(shared.subscribers.len(), Ordering::Relaxed);
    }

    /// Ends the terminal: subscribers get `reconnect` with `reason`, the
    /// shell's input is closed and the pump stops.
    pub async fn close(&self, reason: &'static str) {
        self.stop.cancel();
        let mut shared = self.shared.lock().await;
        let msg: Utf8Bytes = ServerMessage::Reconnect {
            reason,
            delay: RECONNECT_DELAY_MS,
            session_id: Some(&self.session_id),
        }
        .to_text()
        .into();
        for s in shared.subscribers.drain() {
            let _ = s.tx.try_send(msg.clone());
        }
        self.attached.store(0, Ordering::Relaxed);
        drop(shared);
        // Dropping the shell closes its input queue; the feeder then closes stdin.
        self.shell.lock().await.take();
    }
}
