//! Commands, for both doors: start one, feed its stdin, signal it, list
//! them, read one's result.

use std::sync::Arc;

use crate::app::App;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::exec::{Command, Outcome, Sink, Start, Summary};
use crate::protocol::client::{parse_signal, Exec};
use crate::protocol::validate::env_pairs;
use crate::runtime::CommandSpec;

/// Starts a command in the caller's session; `exec_started` (then its
/// output and `exec_exit`) go to `sink` when given.
pub async fn start(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Exec,
    sink: Option<Sink>,
) -> Result<Arc<Command>, ApiError> {
    let cmd = req.argv()?;
    let cwd = req.cwd()?;
    let timeout = req.timeout()?;
    let env = match &req.env {
        Some(env) => env_pairs(env)?,
        None => Vec::new(),
    };
    let session = app.sessions.get(session_id, owner)?;
    session
        .commands
        .start(
            Start {
                id: req.exec_id,
                spec: CommandSpec { cmd, env, cwd },
                stdin: req.stdin.map(String::into_bytes),
                timeout,
            },
            sink,
        )
        .await
}

pub async fn input(
    app: &App,
    owner: &Owner,
    session_id: &str,
    exec_id: &str,
    data: Vec<u8>,
    eof: bool,
) -> Result<(), ApiError> {
    let session = app.sessions.get(session_id, owner)?;
    session.commands.input(exec_id, data, eof).await
}

/// Signals a running command (`signal` as a client names it; `SIGKILL`
/// when absent).
pub async fn signal(
    app: &App,
    owner: &Owner,
    session_id: &str,
    exec_id: &str,
    signal: Option<&serde_json::Value>,
) -> Result<(), ApiError> {
    let signal = parse_signal(signal)?;
    let session = app.sessions.get(session_id, owner)?;
    session.commands.signal(exec_id, signal).await
}

/// The session's running commands.
pub fn list(app: &App, owner: &Owner, session_id: &str) -> Result<Vec<Summary>, ApiError> {
    let session = app.sessions.get(session_id, owner)?;
    Ok(session
        .commands
        .running()
        .iter()
        .map(|c| c.summary())
        .collect())
}

/// One command's result and output so far (a running one's too).
pub fn outcome(
    app: &App,
    owner: &Owner,
    session_id: &str,
    exec_id: &str,
) -> Result<Outcome, ApiError> {
    let session = app.sessions.get(session_id, owner)?;
    Ok(session.commands.get(exec_id)?.outcome())
}
