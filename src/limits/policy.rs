//! Which limits an HTTP request counts against, and the headers it gets.
//!
//! | request                                   | limits                    |
//! |-------------------------------------------|---------------------------|
//! | `/api/health`                             | none                      |
//! | any other `/api/*`                        | general                   |
//! | `POST /api/containers`                    | general + container (IP)  |
//! | `DELETE /api/containers/:id`              | general + container (IP + session) |
//! | `POST /api/preview/configure`             | general + preview         |
//! | WebSocket upgrade on `/` or `/ws`         | WebSocket connections     |
//!
//! The general limit is counted first; a request it refuses costs nothing
//! from the others.

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;

use super::{ClientIp, Outcome, RateInfo};
use crate::app::App;

enum Specific<'a> {
    None,
    Container(Option<&'a str>),
    Preview,
}

pub fn is_websocket_upgrade(req: &Request) -> bool {
    req.headers()
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Counts the request against the limits that apply to it. `Ok` carries
/// the tightest limit's headers for the response; `Err` is the 429.
#[allow(clippy::result_large_err)]
pub fn check(app: &App, req: &Request, ip: ClientIp) -> Result<Option<RateInfo>, Response> {
    let path = req.uri().path();
    let limits = &app.limits;
    let mut checks: Vec<Outcome> = Vec::with_capacity(2);
    if path == "/api/health" {
        // Never limited.
    } else if path == "/api" || path.starts_with("/api/") {
        let specific = match (req.method(), path) {
            (&Method::POST, "/api/containers") => Specific::Container(None),
            (&Method::DELETE, p) => match p.strip_prefix("/api/containers/") {
                Some(id) => Specific::Container(Some(id)),
                None => Specific::None,
            },
            (&Method::POST, "/api/preview/configure") => Specific::Preview,
            _ => Specific::None,
        };
        let general = limits.general(ip);
        let refused = general.is_err();
        checks.push(general);
        if !refused {
            match specific {
                Specific::Container(id) => checks.push(limits.container(ip, id)),
                Specific::Preview => checks.push(limits.preview(ip)),
                Specific::None => {}
            }
        }
    } else if (path == "/" || path == "/ws") && is_websocket_upgrade(req) {
        checks.push(limits.ws(ip));
    }

    let mut tightest = None;
    for outcome in checks {
        match outcome {
            Ok(info) => tightest = RateInfo::tightest(tightest, info),
            Err(refused) => return Err(refused.too_many()),
        }
    }
    Ok(tightest)
}
