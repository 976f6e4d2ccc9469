//! Console reports from preview pages: the injected script POSTs each
//! console call, uncaught error and unhandled rejection here, and every
//! WebSocket attached to the session gets it as a `console` message.
//! What a page can send is bounded: size per report, length of each value,
//! and a rate per session.

use std::num::NonZeroU32;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::Value;

use crate::clock::now_millis;
use crate::error::ApiError;
use crate::protocol::validate::fields;
use crate::protocol::ServerMessage;
use crate::session::Session;

/// Largest report body.
pub const MAX_REPORT_BYTES: usize = 64 * 1024;
/// Most values in one report; longer lists are cut.
const MAX_ARGS: usize = 64;
/// Longest string value or URL kept; longer ones are cut.
const MAX_STRING: usize = 8 * 1024;
/// Reports per second per session, and the burst allowed.
const RATE_PER_SECOND: u32 = 100;

const LEVELS: [&str; 5] = ["log", "info", "warn", "error", "debug"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    level: String,
    args: Vec<Value>,
    url: String,
    /// Set on an uncaught error or an unhandled rejection.
    kind: Option<String>,
}

pub struct Limiter(DefaultKeyedRateLimiter<String>);

impl Default for Limiter {
    fn default() -> Self {
        let per = NonZeroU32::new(RATE_PER_SECOND).expect("non-zero rate");
        Limiter(RateLimiter::keyed(Quota::per_second(per)))
    }
}

impl Limiter {
    /// `Err(seconds to wait)` when the session is over its rate.
    fn check(&self, session_id: &str, live_sessions: usize) -> Result<(), u64> {
        // Keys are ids of live sessions only; forget the quiet ones now and then.
        if self.0.len() > live_sessions + 64 {
            self.0.retain_recent();
        }
        self.0.check_key(&session_id.to_string()).map_err(|_| 1)
    }
}

/// Handles one report for `session`.
pub async fn report(
    limiter: &Limiter,
    live_sessions: usize,
    session: &Session,
    req: Request,
) -> Response {
    if let Err(wait) = limiter.check(&session.id, live_sessions) {
        let mut r = ApiError::RateLimit(format!(
            "Too many console reports for session '{}' (limit {RATE_PER_SECOND}/s)",
            session.id
        ))
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return r;
    }
    match accept(session, req).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn accept(session: &Session, req: Request) -> Result<(), ApiError> {
    // Requiring JSON keeps other sites from posting here with a plain form:
    // a cross-origin JSON POST needs a preflight, which is never granted.
    if !crate::mime::has_media_type(req.headers(), "application/json") {
        return Err(ApiError::validation(
            "Console reports must be sent as application/json",
        ));
    }
    let bytes = axum::body::to_bytes(Body::new(req.into_body()), MAX_REPORT_BYTES)
        .await
        .map_err(|_| {
            ApiError::MessageTooLarge(format!("Console report exceeds {MAX_REPORT_BYTES} bytes"))
        })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::validation(format!("Malformed JSON: {e}")))?;
    let report: Report = fields("console report", value)?;
    if !LEVELS.contains(&report.level.as_str()) {
        let shown: String = report.level.chars().take(32).collect();
        return Err(ApiError::validation(format!(
            "Unknown console level '{shown}'; expected one of log, info, warn, error, debug"
        )));
    }
    let kind = match report.kind.as_deref() {
        None => None,
        Some(k @ ("uncaught" | "unhandledrejection")) => Some(k),
        Some(other) => {
            let shown: String = other.chars().take(32).collect();
            return Err(ApiError::validation(format!(
                "Unknown console report kind '{shown}'; expected uncaught or unhandledrejection"
            )));
        }
    };
    let args: Vec<Value> = report.args.into_iter().take(MAX_ARGS).map(bound).collect();
    session
        .terminal
        .publish(&ServerMessage::Console {
            session_id: &session.id,
            level: &report.level,
            args: &args,
            url: &truncate(report.url),
            timestamp: now_millis(),
            kind,
        })
        .await;
    Ok(())
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_STRING {
        let mut end = MAX_STRING;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Cuts long strings anywhere in a value.
fn bound(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(truncate(s)),
        Value::Array(a) => Value::Array(a.into_iter().map(bound).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (truncate(k), bound(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_are_cut_on_a_char_boundary() {
        let s = "é".repeat(MAX_STRING);
        let t = truncate(s);
        assert!(t.len() <= MAX_STRING + '…'.len_utf8());
        assert!(t.ends_with('…'));
        let v = bound(serde_json::json!({"a": ["x".repeat(MAX_STRING + 10)]}));
        assert!(v["a"][0].as_str().unwrap().len() <= MAX_STRING + 3);
    }

    #[test]
    fn limiter_allows_a_burst_then_refuses() {
        let l = Limiter::default();
        for _ in 0..RATE_PER_SECOND {
            assert!(l.check("session-a", 1).is_ok());
        }
        assert!(l.check("session-a", 1).is_err());
        // Another session has its own budget.
        assert!(l.check("session-b", 2).is_ok());
    }
}
