//! The live preview: a reverse proxy from `/preview/ID/…` (and from the
//! host-based origin `PORT-ID.PREVIEW_DOMAIN`) to a port of that session's
//! own container.
//!
//! - `host`: which host names are preview origins, and what they name.
//! - `upstream`: how to reach the container, and the kept-alive upstream
//!   connections of each browser connection.
//! - `proxy`: one request forwarded, its response rewritten; WebSocket tunnels.
//! - `headers`: hop-by-hop, `X-Forwarded-*`, path, `Location` and cookie rewriting.
//! - `decode`, `inject`, `csp`: HTML decoded, the console script injected as it
//!   streams, and a Content-Security-Policy amended just enough for it;
//!   `plain_head`: the common page, injected without the rewriter.
//! - `console`: the reports the script sends, fanned out to the session's sockets.

mod console;
mod csp;
mod decode;
mod headers;
mod inject;
mod origin;
mod plain_head;
mod proxy;
mod request_body;
mod sniff;
mod upstream;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;
use crate::hosts::HostTarget;
use crate::session::Session;

pub use inject::REPORT_PATH;
pub use upstream::Connections;

/// The preview's pure parts, for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::csp::amend as amend_csp;
    pub use super::decode::{Decoder, MAX_DECODED};
    pub use super::headers::{
        cookie_name, filter_accept_encoding, rewrite_location, rewrite_set_cookie, set_forwarded,
        strip_hop_by_hop, upstream_target, wants_upgrade, Forwarded,
    };
    pub use super::inject::{inject, script_tag};
    pub use super::sniff::{looks_like_html, not_ascii_compatible};
}

pub struct Preview {
    pub app: AppState,
    upstreams: upstream::Upstreams,
    limiter: console::Limiter,
    /// Places for open WebSocket tunnels, server-wide (`--max-connections`;
    /// an upgraded connection no longer counts as an HTTP connection).
    tunnels: Arc<tokio::sync::Semaphore>,
}

pub type PreviewState = Arc<Preview>;

/// One preview request, resolved.
pub struct Target {
    pub session: Arc<Session>,
    pub port: u16,
    /// `/preview/ID` on a path preview, empty on a host-based one.
    pub prefix: String,
    /// The raw path after the prefix, starting with `/`.
    pub rest: String,
}

impl Preview {
    pub fn new(app: AppState) -> PreviewState {
        Arc::new(Preview {
            upstreams: upstream::Upstreams::default(),
            limiter: console::Limiter::default(),
            tunnels: Arc::new(tokio::sync::Semaphore::new(app.settings.max_connections)),
            app,
        })
    }

    async fn serve(&self, conns: &Connections, t: Target, req: Request) -> Response {
        if req.method() == Method::POST && t.rest == REPORT_PATH {
            // Boxed, as every path but the proxy's own: the future every
            // request moves around stays the size the proxy needs.
            return Box::pin(console::report(
                &self.limiter,
                self.app.sessions.count(),
                &t.session,
                req,
            ))
            .await;
        }
        // Boxed once here, so that the layers above (hyper's own included)
        // move a pointer rather than the whole proxy's future.
        Box::pin(proxy::forward(self, conns, &t, req)).await
    }
}

/// The session a preview request names, if the caller may open it: with
/// auth on, the owner's bearer token, preview cookie or link token (see
/// `auth::preview_gate`); anyone else gets the unknown-session 404.
/// `cookie_path` scopes the preview cookie: the prefix, or `/` on a preview host.
#[allow(clippy::result_large_err)]
fn authorize(
    p: &Preview,
    label: &str,
    req: &Request,
    cookie_path: &str,
) -> Result<Arc<Session>, Response> {
    let Some(s) = p.app.sessions.find(label) else {
        return Err(ApiError::session_not_found(label).into_response());
    };
    let gate = p.app.access.preview_gate();
    let own_host = crate::hosts::request_host(req.uri(), req.headers()).unwrap_or_default();
    let verdict = gate.check(
        &s.id,
        &s.owner,
        req.headers(),
        req.uri(),
        cookie_path,
        own_host,
    );
    if let Some(refusal) = verdict.refusal(label) {
        return Err(refusal);
    }
    // Preview traffic counts as session activity. (The session was found
    // just now: looking it up again by its own id and owner, as `get`
    // would, only repeats the lookup.)
    s.touch();
    Ok(s)
}

/// The session a `/preview/ID/…` path names.
pub fn path_session(path: &str) -> Option<&str> {
    let after = path.strip_prefix("/preview/")?;
    let id = after.split('/').next().unwrap_or(after);
    (!id.is_empty()).then_some(id)
}

/// A request under `/preview/ID/`.
pub async fn serve_path(p: &Preview, conns: &Connections, req: Request) -> Response {
    // The raw path, not a decoded one: what follows the id goes to the app
    // exactly as the browser sent it.
    let after = req
        .uri()
        .path()
        .strip_prefix("/preview/")
        .unwrap_or_default();
    let (id, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let prefix = format!("/preview/{id}");
    // A browser opening a path preview as a page is sent to the preview's
    // own origin: no previewed page ever runs on the server's (see
    // `origin`).
    if let Some(to) = origin::own_origin_for(p, &req, id, rest) {
        return to;
    }
    let session = match authorize(p, id, &req, &prefix) {
        Ok(s) => s,
        Err(refusal) => return origin::sandboxed(refusal),
    };
    if rest.is_empty() {
        // Relative URLs in the page only resolve under the prefix with a slash.
        let q = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let loc = format!("/preview/{}/{q}", session.id);
        let mut r = StatusCode::PERMANENT_REDIRECT.into_response();
        if let Ok(v) = HeaderValue::from_str(&loc) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    let Some(port) = session.preview_port() else {
        let e = ApiError::PreviewUnavailable(format!(
            "No preview port configured for session '{}'; send configure_preview first",
            session.id
        ));
        return origin::sandboxed(proxy::unavailable(req.headers(), e));
    };
    let t = Target {
        // The session's own id (the path may differ from it in case).
        prefix: if id == session.id {
            prefix
        } else {
            format!("/preview/{}", session.id)
        },
        rest: rest.to_string(),
        session,
        port,
    };
    origin::sandboxed(p.serve(conns, t, req).await)
}

/// A request for a preview host name (`PORT-ID.DOMAIN`): it never reaches
/// the API, whatever its path.
pub async fn serve_host(
    p: &Preview,
    conns: &Connections,
    found: HostTarget,
    req: Request,
) -> Response {
    let session = match authorize(p, &found.session_label, &req, "/") {
        Ok(s) => s,
        Err(refusal) => return refusal,
    };
    let t = Target {
        session,
        port: found.port,
        prefix: String::new(),
        rest: req.uri().path().to_string(),
    };
    p.serve(conns, t, req).await
}
