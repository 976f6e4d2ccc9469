//! The checks in front of every route (see `api::front`), in this order:
//!
//! 1. the request head's size (431 `MessageTooLarge`);
//! 2. `Host` must be there and name this server (400 `ValidationError`: DNS
//!    rebinding);
//! 3. the client IP is resolved once (`--trust-proxy` decides whether
//!    `X-Forwarded-For` counts) and kept for the limits;
//! 4. a WebSocket upgrade or a state-changing `/api` call that carries a
//!    foreign `Origin` is refused (403, error `ValidationError`), and so is
//!    any `/api` call or terminal upgrade a page on this server's own origin
//!    makes (`Sec-Fetch-Site: same-origin`): those pages are previews;
//! 5. with tokens configured, the token (`Authorization: Bearer`, or
//!    `?token=` on an upgrade) is checked, wrong tokens counted against the
//!    authentication limit (401, then 429; a missing one is a 401 that
//!    counts nothing), and the caller's [`Owner`] stored for the handlers.
//!
//! Public without a token: `/api/health`, `/api/openapi.json`, a plain
//! `GET /` or `/ws` (the service banner), and preview traffic
//! (`/preview/…` and preview host names), which the preview proxy checks
//! itself against the session's owner (`auth::preview_gate`); a bearer
//! token sent with preview traffic must still be valid, and a wrong one
//! counts against the authentication limit like anywhere else (else a
//! preview URL would be an unlimited token oracle). Requests for a preview
//! host skip the `Origin` check: that origin is the app's own.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::tokens::bearer;
use crate::app::App;
use crate::error::ApiError;
use crate::limits::policy::is_websocket_upgrade;
use crate::limits::size::check_head;
use crate::limits::ClientIp;
use crate::preview::host::HostTarget;
use crate::session::Owner;

fn forbidden_origin(origin: &str) -> Response {
    let shown: String = origin.chars().take(200).collect();
    let err = ApiError::validation(format!(
        "Origin '{shown}' is not allowed to use this server; add it with --allowed-origin"
    ));
    let mut body = err.to_json();
    body["statusCode"] = 403.into();
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

fn same_origin_fetch(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin"))
}

fn own_page_socket(names: &super::origin::Names, headers: &axum::http::HeaderMap) -> bool {
    let browser = headers
        .get(header::USER_AGENT)
        .is_some_and(|ua| ua.as_bytes().starts_with(b"Mozilla/"));
    browser
        && headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| names.is_own_origin(o))
}

fn refused_from_preview() -> Response {
    let err = ApiError::validation(
        "Pages served by this server (previews) cannot use its API or terminals; \
         call it from your own origin (--allowed-origin) or a client that is not a browser page",
    );
    let mut body = err.to_json();
    body["statusCode"] = 403.into();
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

/// Whether the path is served without a token (before any preview routing).
fn public(method: &Method, path: &str, upgrade: bool) -> bool {
    match path {
        "/api/health" | "/api/openapi.json" => true,
        "/" | "/ws" => !upgrade && method == Method::GET,
        _ => false,
    }
}

fn query_token(req: &Request) -> Option<String> {
    let q: Query<HashMap<String, String>> = Query::try_from_uri(req.uri()).ok()?;
    q.0.get("token").cloned().filter(|t| !t.is_empty())
}

/// What the guard learned about an admitted request.
pub struct Admission {
    pub ip: ClientIp,
    /// Set when the `Origin` is a `--cors-origin`: the response gets CORS headers.
    pub cors_origin: Option<HeaderValue>,
    /// The preview the request's host name names, if it names one.
    pub preview_host: Option<HostTarget>,
}

impl Admission {
    /// Adds what the response needs from the guard (CORS headers).
    pub fn finish(self, app: &App, resp: &mut Response) {
        app.access.cors.decorate(self.cors_origin, resp);
    }
}

/// Checks one request; `Err` is the refusal to send instead. On success
/// the request carries its [`ClientIp`] and, where a token decides, the
/// caller's [`Owner`].
#[allow(clippy::result_large_err)]
pub fn admit(app: &App, req: &mut Request) -> Result<Admission, Response> {
    if let Err(resp) = check_head(req) {
        return Err(*resp);
    }
    let access = &app.access;
    // Both the `Host` header and an absolute-form request's authority (which
    // routing prefers) must name this server.
    let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
    let host = req.headers().get(header::HOST).map(|h| h.as_bytes());
    if authority.is_none() && host.is_none() {
        return Err(ApiError::validation(
            "Missing Host header: say which server the request is for",
        )
        .into_response());
    }
    // Two `Host` headers are a request two parsers may read differently
    // (RFC 9112 says: answer 400).
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return Err(
            ApiError::validation("More than one Host header: send exactly one").into_response(),
        );
    }
    let named = [authority, host];
    for host in named.into_iter().flatten() {
        let allowed = std::str::from_utf8(host).is_ok_and(|h| access.names.host_allowed(h));
        if !allowed {
            let shown: String = String::from_utf8_lossy(host).chars().take(200).collect();
            return Err(ApiError::validation(format!(
                "Host '{shown}' is not a name this server answers to; add it with --allowed-host"
            ))
            .into_response());
        }
    }
    if let Some(preflight) = access.cors.preflight(req.method(), req.headers()) {
        return Err(preflight);
    }
    let cors_origin = access.cors.allowed(req.headers()).cloned();
    let (ip, preview_host) = checked(app, req, cors_origin.is_some())?;
    Ok(Admission {
        ip,
        cors_origin,
        preview_host,
    })
}

/// Steps 3 to 5; `cors_listed`: the `Origin` is a `--cors-origin`.
#[allow(clippy::result_large_err)]
fn checked(
    app: &App,
    req: &mut Request,
    cors_listed: bool,
) -> Result<(ClientIp, Option<HostTarget>), Response> {
    let access = &app.access;
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = ClientIp::resolve(peer, req.headers(), access.trust_proxy);
    req.extensions_mut().insert(ip);

    let path = req.uri().path();
    let upgrade = is_websocket_upgrade(req);
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // A preview host is the previewed app's own origin: its paths are the
    // app's, not the API's (hot-reload sockets on `/`, the app's `/api`).
    let preview_host = crate::preview::host::request_host(req.uri(), req.headers())
        .and_then(|h| crate::preview::host::parse(h, &app.settings.preview_domain));
    // The only pages this server serves on its own origin are path-based
    // previews: the previewed app's, which must never act with the API's
    // authority (type into terminals, list or delete sessions). A page's
    // requests to its own origin say so: `Sec-Fetch-Site: same-origin` on
    // fetches (the address bar and clients other than browsers send none),
    // and on a WebSocket handshake, which carries no `Sec-Fetch-*`, a
    // browser's own `User-Agent` with the server's own `Origin`. Page script
    // can set neither.
    let api = path == "/api" || path.starts_with("/api/");
    let terminal = upgrade && (path == "/" || path == "/ws");
    if preview_host.is_none()
        && ((api && same_origin_fetch(req.headers()))
            || (terminal && own_page_socket(&access.names, req.headers())))
    {
        return Err(refused_from_preview());
    }
    let checks_origin =
        preview_host.is_none() && (terminal || (path.starts_with("/api/") && !safe));
    if checks_origin {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let o = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            if !cors_listed && !access.names.origin_allowed(&o) {
                return Err(forbidden_origin(&o));
            }
        }
    }

    if !access.tokens.enabled() {
        req.extensions_mut().insert(Owner::default());
        return Ok((ip, preview_host));
    }
    // Preview traffic (either form) is checked by the preview itself
    // against the session's owner: `auth::preview_gate`. A bearer token it
    // carries must still be a valid one: otherwise a preview URL would tell
    // a good token from a bad one without the authentication limit.
    let preview = preview_host.is_some() || path.starts_with("/preview/");
    if preview {
        if let Some(t) = bearer(req.headers()) {
            if let Some(locked) = app.limits.auth.blocked(ip.key()) {
                return Err(locked.too_many());
            }
            if access.tokens.verify(t).is_none() {
                return Err(invalid_token(app, &ip, ""));
            }
        }
        return Ok((ip, preview_host));
    }
    if public(req.method(), path, upgrade) {
        return Ok((ip, preview_host));
    }
    if let Some(locked) = app.limits.auth.blocked(ip.key()) {
        return Err(locked.too_many());
    }
    let presented = bearer(req.headers()).map(String::from).or_else(|| {
        if upgrade {
            query_token(req)
        } else {
            None
        }
    });
    let hint = if upgrade {
        " or '?token=TOKEN' on the upgrade"
    } else {
        ""
    };
    match presented.as_deref().map(|t| access.tokens.verify(t)) {
        Some(Some(owner)) => {
            req.extensions_mut().insert(owner);
            Ok((ip, None))
        }
        // No token at all is not a guess: 401 without using up the failure
        // budget (a client that forgot its token must not lock itself out).
        None => Err(ApiError::Authentication(format!(
            "Missing API token: send 'Authorization: Bearer TOKEN'{hint}"
        ))
        .into_response()),
        Some(None) => Err(invalid_token(app, &ip, hint)),
    }
}

/// A presented token that is not valid: counted against the
/// authentication limit; `401`, or `429` once the budget is spent.
fn invalid_token(app: &App, ip: &ClientIp, hint: &str) -> Response {
    match app.limits.auth.failed(ip.key()) {
        Some(Err(refused)) => refused.too_many(),
        outcome => {
            let mut resp = ApiError::Authentication(format!(
                "Invalid API token: send 'Authorization: Bearer TOKEN'{hint}"
            ))
            .into_response();
            if let Some(Ok(info)) = outcome {
                info.apply(resp.headers_mut());
            }
            resp
        }
    }
}
