//! A command's pump: reads its output until it ends, watches its process,
//! its timeout and the session; then reports how it ended.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::output::Pieces;
use super::{Command, Commands, Ended, Sink};
use crate::protocol::ServerMessage;
use crate::runtime::exit::signal_name;
use crate::runtime::{OutputChunk, OutputStream};
use crate::terminal::SLOW_CLIENT_TIMEOUT;

/// After a command's own process ended, how long output still in flight
/// (or held open by a process it left running in the background) is read.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(250);

/// Feeds stdin pieces to the command; `None` (or the queue's end) closes it.
pub async fn feed(
    mut stdin: Pin<Box<dyn AsyncWrite + Send>>,
    mut rx: mpsc::Receiver<Option<Bytes>>,
) {
    while let Some(Some(data)) = rx.recv().await {
        if stdin.write_all(&data).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
    let _ = stdin.shutdown().await;
}

impl Commands {
    pub(super) async fn run(
        self: Arc<Self>,
        command: Arc<Command>,
        mut output: Pin<Box<dyn Stream<Item = OutputChunk> + Send>>,
        mut sink: Option<Sink>,
        timeout: Option<Duration>,
    ) {
        let mut stdout = Pieces::default();
        let mut stderr = Pieces::default();
        let wait = || {
            let runtime = Arc::clone(&self.runtime);
            let container = Arc::clone(&self.container_id);
            let handle = command.handle.clone();
            async move { runtime.wait_command(&container, &handle).await }.boxed()
        };
        let mut exited = wait();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut timed_out = false;
        let mut code: Option<i64> = None;
        let mut drain_until: Option<tokio::time::Instant> = None;
        let far = tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let mut stream_done = false;
        loop {
            if stream_done && code.is_some() {
                break;
            }
            tokio::select! {
                chunk = output.next(), if !stream_done => match chunk {
                    Some(Ok((stream, bytes))) => {
                        command.keep(stream, &bytes);
                        let pieces = match stream {
                            OutputStream::Stdout => &mut stdout,
                            OutputStream::Stderr => &mut stderr,
                        };
                        if let Some(piece) = pieces.push(&bytes) {
                            self.deliver(&mut sink, &command.id, stream, &piece).await;
                        }
                    }
                    Some(Err(_)) | None => {
                        stream_done = true;
                        // Most commands end with their output: ask now
                        // rather than at the waiter's next look.
                        if code.is_none() {
                            exited = wait();
                        }
                    }
                },
                result = &mut exited, if code.is_none() => {
                    match result {
                        Ok(c) => code = Some(c),
                        Err(e) => {
                            tracing::debug!(session = %self.session_id, exec = %command.id, error = %e, "could not learn how a command ended");
                            code = Some(-1);
                        }
                    }
                    drain_until = Some(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                }
                _ = tokio::time::sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() && !stream_done => {
                    // Its process ended; something it left behind holds the
                    // output open. The command is over all the same.
                    stream_done = true;
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() && !timed_out && code.is_none() => {
                    timed_out = true;
                    self.kill_group(&command).await;
                }
                _ = self.stop.cancelled(), if code.is_none() => {
                    // The session ends: its container goes, and the command with it.
                    self.kill_group(&command).await;
                    code = Some(-1);
                    stream_done = true;
                }
            }
        }
        drop(output);
        for (stream, pieces) in [
            (OutputStream::Stdout, &mut stdout),
            (OutputStream::Stderr, &mut stderr),
        ] {
            if let Some(piece) = pieces.finish() {
                self.deliver(&mut sink, &command.id, stream, &piece).await;
            }
        }
        let code = command
            .handle
            .failed_start
            .get()
            .copied()
            .or(code.filter(|c| *c >= 0));
        let ended = Ended {
            exit_code: code,
            signal: code.and_then(signal_name),
            duration_ms: command.started.elapsed().as_millis() as u64,
            timed_out,
        };
        command.input.lock().unwrap().take();
        self.retire(&command);
        let exit = ServerMessage::ExecExit {
            session_id: &self.session_id,
            exec_id: &command.id,
            code: ended.exit_code,
            signal: ended.signal,
            duration_ms: ended.duration_ms,
            timed_out,
        };
        // Into the session's events (every attached client gets it); the
        // starter gets it directly when it is not one of them.
        let text = self.terminal.publish(&exit).await;
        if let Some(sink) = sink {
            let attached = match sink.conn_id {
                Some(conn) => self.terminal.is_attached(conn).await,
                None => false,
            };
            if !attached {
                let _ = sink.tx.send(Utf8Bytes::from(text.to_string())).await;
            }
        }
        command.ended.send_replace(Some(ended));
    }

    /// Hands one piece of output to the command's client, waiting while its
    /// queue is full; a client that stays full too long is let go.
    async fn deliver(
        &self,
        sink: &mut Option<Sink>,
        exec_id: &str,
        stream: OutputStream,
        piece: &super::Piece,
    ) {
        let Some(s) = sink.as_ref() else { return };
        let (data, encoding) = piece.wire();
        let msg: Utf8Bytes = ServerMessage::ExecOutput {
            session_id: &self.session_id,
            exec_id,
            stream: stream.name(),
            data: &data,
            encoding,
        }
        .to_text()
        .into();
        match tokio::time::timeout(SLOW_CLIENT_TIMEOUT, s.tx.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => *sink = None,
            Err(_) => {
                if let Some(k) = &s.kick {
                    k.kick("Client too slow");
                }
                *sink = None;
            }
        }
    }

    async fn kill_group(&self, command: &Command) {
        if let Err(e) = self
            .runtime
            .signal_command(&self.container_id, &command.handle, libc::SIGKILL)
            .await
        {
            tracing::debug!(session = %self.session_id, exec = %command.id, error = %e, "could not kill a command");
        }
    }
}
