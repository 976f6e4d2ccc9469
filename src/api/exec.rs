//! `/api/containers/:sessionId/exec`: commands over REST.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::body;
use crate::app::App;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::exec::Sink;
use crate::ops;
use crate::protocol::client::{Exec, ExecInput};

/// Largest `exec` or `input` body (its `stdin` or `data` inside).
pub const MAX_EXEC_BODY: usize = 1024 * 1024;
/// Lines a streamed command may have waiting for its client.
const STREAM_QUEUE: usize = 64;

/// Whether the client asked for the events as JSON lines.
fn wants_lines(req: &Request) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-ndjson"))
        })
}

/// Over REST the path names the session (and the command); the body may
/// repeat them, but not name others.
fn same(what: &str, given: Option<&str>, path: &str) -> Result<(), ApiError> {
    match given {
        Some(g) if g != path => Err(ApiError::validation(format!(
            "{what} in the body ('{}') differs from the one in the path",
            g.chars().take(64).collect::<String>()
        ))),
        _ => Ok(()),
    }
}

/// `POST`: starts a command. Waits for it and answers its result, or with
/// `Accept: application/x-ndjson` streams `exec_started`, `exec_output`…
/// and `exec_exit` as JSON lines.
pub async fn start(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let lines = wants_lines(&req);
    // Whose session it is comes before what the body says.
    app.sessions.get(session_id, owner)?;
    let exec: Exec = body::json_within(req, MAX_EXEC_BODY).await?;
    same("sessionId", exec.session_id.as_deref(), session_id)?;
    if lines {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
        let sink = Sink {
            tx,
            kick: None,
            conn_id: None,
        };
        ops::exec::start(app, owner, session_id, exec, Some(sink)).await?;
        let body = tokio_stream_of(rx).map(|line| {
            let mut b = Vec::with_capacity(line.len() + 1);
            b.extend_from_slice(line.as_bytes());
            b.push(b'\n');
            Ok::<_, std::convert::Infallible>(Bytes::from(b))
        });
        let mut resp = Response::new(Body::from_stream(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(resp);
    }
    let command = ops::exec::start(app, owner, session_id, exec, None).await?;
    command.finished().await;
    Ok(Json(command.outcome()).into_response())
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `GET`: the running commands.
pub async fn list(app: &App, owner: &Owner, session_id: &str) -> Result<Json<Value>, ApiError> {
    let commands = ops::exec::list(app, owner, session_id)?;
    Ok(Json(json!({ "commands": commands })))
}

/// `GET …/exec/:execId`: a command's state and the output kept of it.
pub async fn get(
    app: &App,
    owner: &Owner,
    session_id: &str,
    exec_id: &str,
) -> Result<Json<Value>, ApiError> {
    let outcome = ops::exec::outcome(app, owner, session_id, exec_id)?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KillQuery {
    signal: Option<String>,
}

/// `DELETE …/exec/:execId[?signal=SIGTERM]`: signals the command's process
/// group (`SIGKILL` when no signal is named).
pub async fn kill(
    app: &App,
    owner: &Owner,
    session_id: &str,
    exec_id: &str,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let q: KillQuery = body::query(req.uri())?;
    let signal = q.signal.map(Value::from);
    ops::exec::signal(app, owner, session_id, exec_id, signal.as_ref()).await?;
    Ok(Json(
        json!({ "execId": exec_id, "signal": signal.unwrap_or("SIGKILL".into()) }),
    ))
}

/// `POST …/exec/:execId/input` with `{"data", "encoding"?, "eof"?}`.
pub async fn input(
    app: &App,
    owner: &Owner,
    session_id: &str,
    exec_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    app.sessions.get(session_id, owner)?;
    let m: ExecInput = body::json_within(req, MAX_EXEC_BODY).await?;
    same("sessionId", m.session_id.as_deref(), session_id)?;
    same("execId", m.exec_id.as_deref(), exec_id)?;
    let data = m.bytes()?;
    ops::exec::input(app, owner, session_id, exec_id, data, m.eof).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
