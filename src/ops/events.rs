//! A session's event log, for REST (`GET .../events`); the WebSocket reads
//! it through `attach` with `since`.

use std::time::Duration;

use crate::app::App;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::events::Since;

/// Longest long-poll (`wait`).
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The session's events after `since`; with `wait`, when there are none
/// yet, waits up to that long for the next one.
pub async fn since(
    app: &App,
    owner: &Owner,
    session_id: &str,
    since: u64,
    wait: Option<Duration>,
) -> Result<Since, ApiError> {
    let session = app.sessions.get(session_id, owner)?;
    let mut changes = session.terminal.watch_events().await;
    let found = session.terminal.events_since(since).await;
    let Some(wait) = wait.filter(|_| found.events.is_empty()) else {
        return Ok(found);
    };
    let wait = wait.min(MAX_WAIT);
    tokio::select! {
        _ = changes.wait_for(|latest| *latest > since) => {}
        _ = tokio::time::sleep(wait) => {}
        _ = session.ended.cancelled() => {}
        _ = app.shutdown.cancelled() => {}
    }
    session.touch();
    Ok(session.terminal.events_since(since).await)
}
