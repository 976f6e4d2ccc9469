//! One session's commands: processes run apart from the terminal, without
//! a TTY, with their exit codes and their stdout and stderr kept apart.
//!
//! Each command has a pump task (`run`) that reads its output, hands each
//! piece to the client that started it (if it streams) and keeps it for
//! later readers within a cap, and watches for its end, its timeout and the
//! session's end. A client that reads slowly slows the command (the pump
//! waits for room in its queue) instead of output piling up; a client gone
//! for good is dropped and the command goes on.
//!
//! Bounds: [`MAX_RUNNING`] commands at once per session, [`MAX_KEPT`] bytes
//! of output kept per command and [`MAX_SESSION_KEPT`] per session (beyond
//! them output is still streamed, and the command reports `truncated`),
//! [`MAX_FINISHED`] finished commands remembered.

mod output;
mod run;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::now_millis;
use crate::error::ApiError;
use crate::protocol::ServerMessage;
use crate::runtime::{CommandHandle, CommandSpec, ContainerRuntime, RuntimeError};
use crate::terminal::{Kick, Terminal};
use output::Kept;
pub use output::Piece;

/// Commands running at once in one session.
pub const MAX_RUNNING: usize = 16;
/// Output kept per command (stdout and stderr together).
pub const MAX_KEPT: usize = 16 * 1024 * 1024;
/// Output kept per session, over all its commands.
pub const MAX_SESSION_KEPT: usize = 64 * 1024 * 1024;
/// Finished commands remembered per session (their result and output).
pub const MAX_FINISHED: usize = 32;
/// Longest timeout a command may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Stdin pieces waiting for a command that does not read.
const INPUT_QUEUE: usize = 64;

/// What to run, checked.
#[derive(Debug, Clone)]
pub struct Start {
    /// The client's id for it; one is made when absent.
    pub id: Option<String>,
    pub spec: CommandSpec,
    /// Written to stdin, which is then closed; `None` leaves stdin open.
    pub stdin: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
}

/// Where a command's live messages go: the connection that started it (a
/// WebSocket), or a streamed REST response.
#[derive(Clone)]
pub struct Sink {
    pub tx: mpsc::Sender<Utf8Bytes>,
    /// The WebSocket connection's, to make it leave when it stays too slow.
    pub kick: Option<Kick>,
    /// The WebSocket connection's id (it gets `exec_exit` directly unless
    /// it is attached to the session, where every event goes).
    pub conn_id: Option<u64>,
}

/// How a command ended.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    pub exit_code: Option<i64>,
    pub signal: Option<&'static str>,
    pub duration_ms: u64,
    pub timed_out: bool,
}

struct Output {
    stdout: Kept,
    stderr: Kept,
    truncated: bool,
}

pub struct Command {
    pub id: String,
    pub cmd: Vec<String>,
    /// Unix milliseconds.
    pub started_at: u64,
    started: Instant,
    handle: CommandHandle,
    output: Mutex<Output>,
    ended: watch::Sender<Option<Ended>>,
    /// Stdin pieces for the feeder; `None` closes stdin. Taken when closed.
    input: Mutex<Option<mpsc::Sender<Option<Bytes>>>>,
    /// The session's kept-output account.
    kept_total: Arc<AtomicUsize>,
}

/// A command as listed.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub exec_id: String,
    pub cmd: Vec<String>,
    pub started_at: u64,
    pub running: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
}

/// A command's result with its kept output, as REST answers it.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub exec_id: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub signal: Option<&'static str>,
    pub stdout: String,
    pub stderr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_encoding: Option<&'static str>,
    pub truncated: bool,
    pub duration_ms: u64,
    pub timed_out: bool,
}

impl Command {
    /// Waits for the command to end.
    pub async fn finished(&self) -> Ended {
        let mut rx = self.ended.subscribe();
        let ended = rx
            .wait_for(Option::is_some)
            .await
            .map(|e| e.clone())
            .ok()
            .flatten();
        ended.unwrap_or(Ended {
            exit_code: None,
            signal: None,
            duration_ms: self.started.elapsed().as_millis() as u64,
            timed_out: false,
        })
    }

    pub fn is_running(&self) -> bool {
        self.ended.borrow().is_none()
    }

    pub fn summary(&self) -> Summary {
        let ended = self.ended.borrow().clone();
        Summary {
            exec_id: self.id.clone(),
            cmd: self.cmd.clone(),
            started_at: self.started_at,
            running: ended.is_none(),
            ended,
        }
    }

    /// The result so far (the output kept until now, for a running one).
    pub fn outcome(&self) -> Outcome {
        let ended = self.ended.borrow().clone();
        let out = self.output.lock().unwrap();
        let (stdout, stdout_encoding) = out.stdout.render(out.truncated);
        let (stderr, stderr_encoding) = out.stderr.render(out.truncated);
        Outcome {
            exec_id: self.id.clone(),
            running: ended.is_none(),
            exit_code: ended.as_ref().and_then(|e| e.exit_code),
            signal: ended.as_ref().and_then(|e| e.signal),
            stdout,
            stderr,
            stdout_encoding,
            stderr_encoding,
            truncated: out.truncated,
            duration_ms: ended
                .as_ref()
                .map_or(self.started.elapsed().as_millis() as u64, |e| e.duration_ms),
            timed_out: ended.as_ref().is_some_and(|e| e.timed_out),
        }
    }

    /// Keeps `bytes` of output within the command's and the session's caps.
    fn keep(&self, stream: crate::runtime::OutputStream, bytes: &[u8]) {
        let mut out = self.output.lock().unwrap();
        let mine = out.stdout.size() + out.stderr.size();
        let session_room = MAX_SESSION_KEPT.saturating_sub(self.kept_total.load(Ordering::Relaxed));
        let room = MAX_KEPT.saturating_sub(mine).min(session_room);
        let take = bytes.len().min(room);
        if take < bytes.len() {
            out.truncated = true;
        }
        if take == 0 {
            return;
        }
        self.kept_total.fetch_add(take, Ordering::Relaxed);
        match stream {
            crate::runtime::OutputStream::Stdout => out.stdout.extend(&bytes[..take]),
            crate::runtime::OutputStream::Stderr => out.stderr.extend(&bytes[..take]),
        }
    }

    fn kept_bytes(&self) -> usize {
        let out = self.output.lock().unwrap();
        out.stdout.size() + out.stderr.size()
    }
}

#[derive(Default)]
struct Table {
    running: HashMap<String, Arc<Command>>,
    finished: VecDeque<Arc<Command>>,
}

impl Table {
    fn get(&self, id: &str) -> Option<&Arc<Command>> {
        self.running
            .get(id)
            .or_else(|| self.finished.iter().find(|c| c.id == id))
    }
}

/// One session's commands.
pub struct Commands {
    session_id: Arc<str>,
    container_id: Arc<str>,
    runtime: Arc<dyn ContainerRuntime>,
    terminal: Arc<Terminal>,
    table: Mutex<Table>,
    kept_total: Arc<AtomicUsize>,
    /// Starts under way, counted against [`MAX_RUNNING`] with the running.
    starting: AtomicUsize,
    tasks: TaskTracker,
    /// Cancelled when the session ends: every command is killed.
    stop: CancellationToken,
}

fn not_found(session_id: &str, id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::CommandNotFound(format!(
        "No command '{shown}' in session '{session_id}' (finished ones are kept for a while: the latest {MAX_FINISHED})"
    ))
}

fn new_id() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    format!("exec-{}", URL_SAFE_NO_PAD.encode(bytes))
}

impl Commands {
    pub fn new(
        session_id: &str,
        container_id: &str,
        runtime: Arc<dyn ContainerRuntime>,
        terminal: Arc<Terminal>,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Arc<Commands> {
        Arc::new(Commands {
            session_id: session_id.into(),
            container_id: container_id.into(),
            runtime,
            terminal,
            table: Mutex::default(),
            kept_total: Arc::default(),
            starting: AtomicUsize::new(0),
            tasks,
            stop,
        })
    }

    /// Starts a command. `exec_started` goes to `sink` before any output.
    pub async fn start(
        self: &Arc<Self>,
        start: Start,
        sink: Option<Sink>,
    ) -> Result<Arc<Command>, ApiError> {
        let id = match start.id {
            Some(id) => {
                crate::protocol::client::check_exec_id(&id)?;
                id
            }
            None => new_id(),
        };
        let _slot = self.reserve(&id)?;
        let io = match self
            .runtime
            .start_command(&self.container_id, &start.spec)
            .await
        {
            // The container was stopped (an engine restart, `docker stop`):
            // start it again rather than fail the session.
            Err(RuntimeError::NotRunning(_)) => {
                self.runtime
                    .start_container(&self.container_id)
                    .await
                    .map_err(ApiError::engine)?;
                self.terminal.restarted().await;
                self.runtime
                    .start_command(&self.container_id, &start.spec)
                    .await
            }
            other => other,
        }
        .map_err(ApiError::engine)?;
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let command = Arc::new(Command {
            id: id.clone(),
            cmd: start.spec.cmd.clone(),
            started_at: now_millis(),
            started: Instant::now(),
            handle: io.handle.clone(),
            output: Mutex::new(Output {
                stdout: Kept::default(),
                stderr: Kept::default(),
                truncated: false,
            }),
            ended: watch::channel(None).0,
            input: Mutex::new(Some(input_tx.clone())),
            kept_total: Arc::clone(&self.kept_total),
        });
        self.table
            .lock()
            .unwrap()
            .running
            .insert(id.clone(), Arc::clone(&command));
        if let Some(sink) = &sink {
            let started = ServerMessage::ExecStarted {
                session_id: &self.session_id,
                exec_id: &id,
            }
            .to_text();
            let _ = sink.tx.send(started.into()).await;
        }
        self.tasks.spawn(run::feed(io.input, input_rx));
        if let Some(data) = start.stdin {
            let _ = input_tx.send(Some(Bytes::from(data))).await;
            let _ = input_tx.send(None).await;
            command.input.lock().unwrap().take();
        }
        drop(input_tx);
        let this = Arc::clone(self);
        let c = Arc::clone(&command);
        self.tasks
            .spawn(async move { this.run(c, io.output, sink, start.timeout).await });
        Ok(command)
    }

    /// Holds a place among the running commands for `id`, or says why not.
    fn reserve(&self, id: &str) -> Result<Reserved<'_>, ApiError> {
        let table = self.table.lock().unwrap();
        if table.get(id).is_some() {
            return Err(ApiError::Conflict(format!(
                "execId '{id}' is in use in this session; choose another or leave it out"
            )));
        }
        let busy = table.running.len() + self.starting.fetch_add(1, Ordering::Relaxed);
        if busy >= MAX_RUNNING {
            self.starting.fetch_sub(1, Ordering::Relaxed);
            return Err(ApiError::AtCapacity {
                message: format!(
                    "Session '{}' runs {MAX_RUNNING} commands already; wait for one to end",
                    self.session_id
                ),
                limit: MAX_RUNNING as u32,
                retry_after_secs: 1,
            });
        }
        Ok(Reserved(&self.starting))
    }

    pub fn get(&self, id: &str) -> Result<Arc<Command>, ApiError> {
        self.table
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(&self.session_id, id))
    }

    /// The running commands, oldest first.
    pub fn running(&self) -> Vec<Arc<Command>> {
        let mut v: Vec<_> = self
            .table
            .lock()
            .unwrap()
            .running
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|c| c.started_at);
        v
    }

    /// Sends `data` to a command's stdin, then closes it when `eof`.
    pub async fn input(&self, id: &str, data: Vec<u8>, eof: bool) -> Result<(), ApiError> {
        let command = self.get(id)?;
        let tx = command.input.lock().unwrap().clone();
        let Some(tx) = tx.filter(|_| command.is_running()) else {
            return Err(ApiError::Conflict(format!(
                "Command '{id}' does not take input any more (its stdin is closed, or it ended)"
            )));
        };
        if !data.is_empty() {
            tx.try_send(Some(Bytes::from(data))).map_err(|_| {
                ApiError::RateLimit(format!(
                    "Command '{id}' is not reading its input; input was dropped, try again later"
                ))
            })?;
        }
        if eof {
            command.input.lock().unwrap().take();
            let _ = tx.send(None).await;
        }
        Ok(())
    }

    /// Sends `signal` to a running command's process group.
    pub async fn signal(&self, id: &str, signal: i32) -> Result<(), ApiError> {
        let command = self.get(id)?;
        if !command.is_running() {
            return Err(ApiError::Conflict(format!(
                "Command '{id}' has ended already"
            )));
        }
        self.runtime
            .signal_command(&self.container_id, &command.handle, signal)
            .await
            .map_err(ApiError::engine)?;
        Ok(())
    }

    /// Moves an ended command to the finished ones, forgetting the oldest
    /// beyond [`MAX_FINISHED`] or the session's output cap.
    fn retire(&self, command: &Arc<Command>) {
        let mut table = self.table.lock().unwrap();
        table.running.remove(&command.id);
        table.finished.push_back(Arc::clone(command));
        while table.finished.len() > MAX_FINISHED
            || (self.kept_total.load(Ordering::Relaxed) > MAX_SESSION_KEPT / 2
                && table.finished.len() > 1)
        {
            if let Some(old) = table.finished.pop_front() {
                self.kept_total
                    .fetch_sub(old.kept_bytes(), Ordering::Relaxed);
            }
        }
    }
}

/// A place held among the running commands while one starts.
struct Reserved<'a>(&'a AtomicUsize);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
