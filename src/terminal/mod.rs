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
mod replay;
pub mod utf8;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::protocol::ServerMessage;
use crate::runtime::{ContainerRuntime, RuntimeError, ShellSpec};
use coalesce::{Burst, InputPending};
use replay::Replay;
use utf8::Utf8Decoder;

/// At least this much recent output is replayed on attach.
pub const REPLAY_BYTES: usize = 64 * 1024;
/// Largest read from the shell, and so the largest `output` message's payload.
pub const READ_CHUNK: usize = 32 * 1024;
/// Read size while the shell is quiet.
const SMALL_READ: usize = 4 * 1024;
pub const SLOW_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
pub const RECONNECT_DELAY_MS: u64 = 1000;
/// Input bytes queued for a shell that is not reading (two of the largest
/// messages). Each message also counts [`INPUT_OVERHEAD`], so that a flood of
/// one-keystroke messages is bounded too; a burst of keystrokes is queued,
/// not refused.
const INPUT_BUDGET: usize = 2 * 1024 * 1024;
const INPUT_OVERHEAD: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// The session's creator: output so far (a pre-started shell's prompt)
    /// arrives as ordinary `output`.
    Creator,
    /// `attach` or first `input`: `attached`, then the replay marked `replay: true`.
    Reattach,
}

/// One attached WebSocket connection, as the terminal sees it.
#[derive(Clone, Debug)]
pub struct Subscriber {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Utf8Bytes>,
    /// Cancelled (with a reason set) to make the connection send `reconnect` and close.
    pub kick: Kick,
}

/// Tells a connection to leave with a `reconnect` reason.
#[derive(Clone, Debug, Default)]
pub struct Kick {
    token: CancellationToken,
    reason: Arc<std::sync::OnceLock<&'static str>>,
}

impl Kick {
    pub fn kick(&self, reason: &'static str) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }
    pub async fn kicked(&self) -> &'static str {
        self.token.cancelled().await;
        self.reason.get().copied().unwrap_or("Server restarting")
    }
}

struct Shell {
    exec_id: String,
    /// Feeds the shell's stdin through its own task, so that a shell that is
    /// not reading (a long command, a big paste) never blocks a connection.
    input: InputQueue,
    done: CancellationToken,
}

/// The shell's input queue, bounded by bytes: a queued chunk holds its share
/// of the budget until it is written to the shell.
#[derive(Clone)]
struct InputQueue {
    tx: mpsc::UnboundedSender<(Bytes, OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
}

impl InputQueue {
    fn new() -> (Self, mpsc::UnboundedReceiver<(Bytes, OwnedSemaphorePermit)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(INPUT_BUDGET));
        (Self { tx, budget }, rx)
    }

    /// Queues `data` without waiting; `false` when the budget is spent.
    fn push(&self, data: &[u8]) -> bool {
        let cost = (data.len() + INPUT_OVERHEAD).min(INPUT_BUDGET) as u32;
        let Ok(permit) = Arc::clone(&self.budget).try_acquire_many_owned(cost) else {
            return false;
        };
        // A closed queue means the shell just ended; its `exit` tells the client.
        let _ = self.tx.send((Bytes::copy_from_slice(data), permit));
        true
    }
}

struct Shared {
    replay: Replay,
    subscribers: Vec<Subscriber>,
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
                subscribers: Vec::new(),
            }),
            shell: Mutex::new(None),
            size: std::sync::Mutex::new((80, 24)),
            attached: AtomicUsize::new(0),
            input_pending: InputPending::default(),
            stop,
            tasks,
        })
    }

    /// Number of live attached connections.
    pub fn attached(&self) -> usize {
        self.attached.load(Ordering::Relaxed)
    }

    pub fn set_size(&self, cols: u16, rows: u16) {
        *self.size.lock().unwrap() = (cols, rows);
    }

    /// Attaches a connection: first what `mode` says of the past, then all
    /// live output, with nothing lost or repeated between the two.
    pub async fn attach(
        self: &Arc<Self>,
        sub: Subscriber,
        mode: AttachMode,
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
            for msg in preamble {
                if !send_with_timeout(&sub, msg.into()).await {
                    return Ok(());
                }
            }
            if !shared.subscribers.iter().any(|s| s.conn_id == sub.conn_id) && !sub.tx.is_closed() {
                shared.subscribers.push(sub);
                self.attached
                    .store(shared.subscribers.len(), Ordering::Relaxed);
            }
        }
        self.ensure_shell().await
    }

    /// Drops subscribers whose connection has gone (one can slip in while
    /// its connection closes) and returns how many remain.
    pub async fn prune(&self) -> usize {
        let mut shared = self.shared.lock().await;
        shared.subscribers.retain(|s| !s.tx.is_closed());
        self.attached
            .store(shared.subscribers.len(), Ordering::Relaxed);
        shared.subscribers.len()
    }

    pub async fn detach(&self, conn_id: u64) -> bool {
        let mut shared = self.shared.lock().await;
        let before = shared.subscribers.len();
        shared.subscribers.retain(|s| s.conn_id != conn_id);
        self.attached
            .store(shared.subscribers.len(), Ordering::Relaxed);
        before != shared.subscribers.len()
    }

    pub async fn is_attached(&self, conn_id: u64) -> bool {
        self.shared
            .lock()
            .await
            .subscribers
            .iter()
            .any(|s| s.conn_id == conn_id)
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
            .spawn(feed_input(io.input, input_rx, done.clone()));
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

    async fn pump(
        self: Arc<Self>,
        exec_id: String,
        mut output: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
        done: CancellationToken,
    ) {
        let mut decoder = Utf8Decoder::new();
        let mut burst = Burst::new(Instant::now());
        // An idle shell holds only a small buffer; a busy one reads in large
        // chunks (fewer, bigger messages) until it quiets down again.
        let mut small = [0u8; SMALL_READ];
        let mut big: Option<Vec<u8>> = None;
        loop {
            let buf: &mut [u8] = match big.as_mut() {
                Some(b) => b,
                None => &mut small,
            };
            let cap = buf.len();
            let n = tokio::select! {
                _ = self.stop.cancelled() => { done.cancel(); return; }
                n = output.read(buf) => n,
            };
            let mut n = match n {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let first_read = Instant::now();
            let flowing = burst.linger(first_read);
            let busy = flowing.is_some();
            // Output that answers input goes out as it comes.
            let answers_input = self.input_pending.take();
            let linger = flowing.filter(|_| !answers_input);
            burst.record(n, first_read);
            // Take whatever else has already arrived, without waiting, so a
            // flood goes out in few large messages rather than many small ones;
            // while output flows fast, also wait a little for more (see
            // `coalesce`).
            let mut ended = false;
            while n < cap {
                let more = match (output.read(&mut buf[n..]).now_or_never(), linger) {
                    (Some(result), _) => result,
                    (None, Some(wait)) => {
                        match tokio::time::timeout_at(
                            (first_read + wait).into(),
                            output.read(&mut buf[n..]),
                        )
                        .await
                        {
                            Ok(result) => result,
                            Err(_) => break,
                        }
                    }
                    (None, None) => break,
                };
                match more {
                    Ok(0) | Err(_) => {
                        ended = true;
                        break;
                    }
                    Ok(m) => {
                        burst.record(m, Instant::now());
                        n += m;
                    }
                }
            }
            let text = decoder.decode(&buf[..n]);
            if (n == cap || busy) && big.is_none() {
                big = Some(vec![0u8; READ_CHUNK]);
            } else if n < SMALL_READ && !busy && big.is_some() {
                big = None;
            }
            if !text.is_empty() {
                self.publish(&text).await;
            }
            if ended {
                break;
            }
        }
        let tail = decoder.finish();
        if !tail.is_empty() {
            self.publish(&tail).await;
        }
        done.cancel();
        let code = self.exit_code(&exec_id).await;
        let msg = ServerMessage::Exit {
            session_id: &self.session_id,
            code,
            signal: code.and_then(signal_of),
        }
        .to_text();
        self.broadcast(msg.into()).await;
    }

    /// The engine may report the exec as running for a moment after its
    /// stream ends; ask a few times.
    async fn exit_code(&self, exec_id: &str) -> Option<i64> {
        for _ in 0..50 {
            match self.runtime.shell_exit_code(exec_id).await {
                Ok(Some(code)) => return Some(code),
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => return None,
            }
        }
        None
    }

    async fn publish(&self, text: &str) {
        let frame: Utf8Bytes = ServerMessage::Output {
            session_id: &self.session_id,
            data: text,
            replay: None,
        }
        .to_text()
        .into();
        let mut shared = self.shared.lock().await;
        shared.replay.push(text);
        self.fan_out(&mut shared, frame).await;
    }

    /// Sends one pre-serialized message (a preview `console` entry, say) to
    /// every attached connection, with the same flow control as output.
    pub async fn broadcast_text(&self, frame: String) {
        self.broadcast(frame.into()).await;
    }

    async fn broadcast(&self, frame: Utf8Bytes) {
        let mut shared = self.shared.lock().await;
        self.fan_out(&mut shared, frame).await;
    }

    /// Hands `frame` to every subscriber; drops the closed ones and kicks the
    /// ones that stay full too long.
    async fn fan_out(&self, shared: &mut Shared, frame: Utf8Bytes) {
        let mut pending = Vec::new();
        shared
            .subscribers
            .retain(|s| match s.tx.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    pending.push(s.clone());
                    true
                }
            });
        if !pending.is_empty() {
            let results =
                join_all(pending.iter().map(|s| send_with_timeout(s, frame.clone()))).await;
            let gone: Vec<u64> = pending
                .iter()
                .zip(results)
                .filter(|(_, ok)| !ok)
                .map(|(s, _)| s.conn_id)
                .collect();
            shared.subscribers.retain(|s| !gone.contains(&s.conn_id));
        }
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
        }
        .to_text()
        .into();
        for s in shared.subscribers.drain(..) {
            let _ = s.tx.try_send(msg.clone());
        }
        self.attached.store(0, Ordering::Relaxed);
        drop(shared);
        // Dropping the shell closes its input queue; the feeder then closes stdin.
        self.shell.lock().await.take();
    }
}

/// Writes queued input to the shell's stdin until the queue closes or the
/// shell ends, then closes stdin.
async fn feed_input(
    mut stdin: std::pin::Pin<Box<dyn AsyncWrite + Send>>,
    mut queue: mpsc::UnboundedReceiver<(Bytes, OwnedSemaphorePermit)>,
    done: CancellationToken,
) {
    let mut batch = Vec::new();
    'feed: loop {
        // Whatever has queued up goes out in one flush.
        let n = tokio::select! {
            _ = done.cancelled() => break,
            n = queue.recv_many(&mut batch, 256) => n,
        };
        if n == 0 {
            break;
        }
        for (chunk, _permit) in batch.drain(..) {
            if stdin.write_all(&chunk).await.is_err() {
                break 'feed;
            }
        }
        if stdin.flush().await.is_err() {
            break;
        }
    }
    let _ = stdin.shutdown().await;
}

/// Sends within [`SLOW_CLIENT_TIMEOUT`]; a client that cannot take it is kicked.
async fn send_with_timeout(sub: &Subscriber, frame: Utf8Bytes) -> bool {
    match tokio::time::timeout(SLOW_CLIENT_TIMEOUT, sub.tx.send(frame)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            sub.kick.kick("Client too slow");
            false
        }
    }
}

/// The signal an exit code stands for. The engine reports only a code, and
/// a process killed by signal N exits with 128 + N there (as in a shell's
/// `$?`), so that is what `signal` names; a shell that says `exit 137`
/// itself is reported the same way, as any shell would read it.
fn signal_of(code: i64) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let n = usize::try_from(code.checked_sub(129)?).ok()?;
    NAMES.get(n).copied()
}

#[cfg(test)]
mod tests {
    use super::signal_of;

    #[test]
    fn exit_codes_over_128_name_their_signal() {
        assert_eq!(signal_of(0), None);
        assert_eq!(signal_of(1), None);
        assert_eq!(signal_of(128), None);
        assert_eq!(signal_of(129), Some("SIGHUP"));
        assert_eq!(signal_of(130), Some("SIGINT"));
        assert_eq!(signal_of(137), Some("SIGKILL"));
        assert_eq!(signal_of(143), Some("SIGTERM"));
        assert_eq!(signal_of(159), Some("SIGSYS"));
        assert_eq!(signal_of(160), None);
        assert_eq!(signal_of(-1), None);
        assert_eq!(signal_of(255), None);
    }
}
