//! `GET /api/containers/:sessionId/events?since=SEQ[&wait=SECONDS]`: the
//! session's events after `since`, as `{"events": […], "next": SEQ}`.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::body;
use crate::app::App;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::ops;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    #[serde(default)]
    since: u64,
    /// Seconds to wait for an event when there is none yet (at most 60).
    wait: Option<f64>,
}

pub async fn list(
    app: &App,
    owner: &Owner,
    session_id: &str,
    req: Request,
) -> Result<Response, ApiError> {
    let q: Query = body::query(req.uri())?;
    let wait = match q.wait {
        None => None,
        Some(w) if w.is_finite() && w >= 0.0 => Some(std::time::Duration::from_secs_f64(
            w.min(ops::events::MAX_WAIT.as_secs_f64()),
        )),
        Some(w) => {
            return Err(ApiError::validation(format!(
                "wait must be a number of seconds, 0 or more (more than 60 waits 60), got {w}"
            )))
        }
    };
    let found = ops::events::since(app, owner, session_id, q.since, wait).await?;
    // The events are kept as the JSON text they were sent as: joined, not
    // parsed again.
    let mut out =
        String::with_capacity(found.events.iter().map(|e| e.len() + 1).sum::<usize>() + 64);
    out.push_str("{\"events\":[");
    for (i, e) in found.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push_str("],\"next\":");
    out.push_str(&found.next.to_string());
    if found.missed {
        out.push_str(",\"missed\":true");
    }
    out.push('}');
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
