//! Every previewed page runs on an origin of its own, never on the
//! server's, where the studio page and the API live.
//!
//! A host-based preview (`PORT-SESSION.DOMAIN`) is such an origin. A
//! path-based one (`/preview/SESSION/…`) is on the server's origin, so:
//!
//! - a browser opening it as a page (a navigation, as fetch metadata says)
//!   is redirected to the host-based origin of the same session, port, path
//!   and query (with a fresh link token when tokens are on), where the app
//!   works in full: its own cookies, storage and `fetch`;
//! - every path-based response carries `Content-Security-Policy: sandbox`
//!   without `allow-same-origin`, so a page rendered from it anyway (a
//!   browser without fetch metadata, a server whose host names cannot
//!   reach the preview domain) runs in an opaque origin: it cannot read the
//!   studio's storage, and its requests carry `Origin: null`, which the API
//!   and the terminal refuse.
//!
//! Non-browser clients (no fetch metadata) keep the path-based preview as it
//! is: it is how an agent or a script reads the app without a browser.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Preview;

/// What a sandboxed path-based page may still do: run its scripts, submit
/// forms, open popups and dialogs, download.
const SANDBOX: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads allow-pointer-lock";

/// A constant name: looked up without parsing the name for every request.
const SEC_FETCH_MODE: header::HeaderName = header::HeaderName::from_static("sec-fetch-mode");

/// Adds the sandbox to a path-based preview's response (beside any policy
/// of the app's own: browsers enforce both).
pub fn sandboxed(mut resp: Response) -> Response {
    resp.headers_mut().append(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX),
    );
    resp
}

/// For a browser navigation to a path-based preview that the caller may
/// open: the redirect to its own origin. `None` to serve it here (not a
/// navigation, not allowed, or no preview host this browser can reach).
pub fn own_origin_for(p: &Preview, req: &Request, label: &str, rest: &str) -> Option<Response> {
    let navigation = req
        .headers()
        .get(SEC_FETCH_MODE)
        .is_some_and(|m| m.as_bytes().eq_ignore_ascii_case(b"navigate"));
    if !navigation || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let app = &p.app;
    let domain = &app.settings.preview_domain;
    let host = crate::hosts::request_host(req.uri(), req.headers())?;
    let (name, listen_port) = crate::hosts::split_port(host);
    // `*.localhost` resolves to this machine only for a browser on it: one
    // that reached the server by a loopback name.
    let reachable = if domain == "localhost" {
        matches!(name, "localhost" | "127.0.0.1" | "[::1]") || name.starts_with("127.")
    } else {
        true
    };
    if !reachable {
        return None;
    }
    let session = app.sessions.find(label)?;
    let port = session.preview_port()?;
    // Allowed as it would be here (link token, bearer, or the cookie of a
    // navigation); anything else is left to the usual 404.
    let gate = app.access.preview_gate();
    let verdict = gate.check(
        &session.id,
        &session.owner,
        req.headers(),
        req.uri(),
        &format!("/preview/{label}"),
        host,
    );
    if matches!(verdict, crate::auth::PreviewAccess::Denied) {
        return None;
    }
    let scheme = if app.settings.trust_proxy
        && req
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
    {
        "https"
    } else {
        "http"
    };
    let rest = if rest.is_empty() { "/" } else { rest };
    let query: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
        .collect();
    let base = crate::hosts::host_url(scheme, port, &session.id, domain, listen_port, rest);
    let with_query = if query.is_empty() {
        base
    } else {
        format!("{base}?{}", query.join("&"))
    };
    // A link for the new origin, which gets its own cookie from it.
    let location = gate.preview_url(&with_query, &session.id, &session.owner);
    let mut r = StatusCode::TEMPORARY_REDIRECT.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    session.touch();
    Some(r)
}
