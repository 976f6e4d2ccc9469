//! The checks in front of every route, in this order:
//!
//! 1. the request head's size (431 `MessageTooLarge`);
//! 2. `Host` must be there and name this server (400 `ValidationError`: DNS
//!    rebinding);
//! 3. the client IP is resolved once (`--trust-proxy` decides whether
//!    `X-Forwarded-For` counts) and kept for the limits;
//! 4. a WebSocket upgrade or a state-changing `/api` call that carries a
//!    foreign `Origin` is refused (403, error `ValidationError`); `null`,
//!    the origin of a sandboxed page (a path-based preview rendered
//!    anyway, see `preview::origin`), is foreign. The only pages on the
//!    server's own origin are the studio's, so its requests pass;
//! 5. the route's authentication rule ([`Auth`]): with tokens configured, a
//!    token (`Authorization: Bearer`, or `?token=` on an upgrade) is
//!    checked, wrong tokens counted against the authentication limit (401,
//!    then 429; a missing one is a 401 that counts nothing), and the caller's
//!    [`Owner`] handed to the handlers.
//!
//! Preview traffic is checked by the preview itself against the session's
//! owner (`auth::preview_gate`); a bearer token sent with it must still be
//! valid, and a wrong one counts against the authentication limit like
//! anywhere else (else a preview URL would be an unlimited token oracle).
//! Requests for a preview host skip the `Origin` check: that origin is the
//! app's own.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{Query, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::route::{Auth, Route};
use crate::app::App;
use crate::auth::tokens::bearer;
use crate::auth::{Names, Owner};
use crate::error::ApiError;
use crate::limits::size::{head_bytes, MAX_HEAD_BYTES};
use crate::limits::ClientIp;

/// A refusal with a status the error names do not carry (403, 431): the
/// documented body with that status.
fn with_status(err: ApiError, status: StatusCode) -> Response {
    let mut body = err.to_json();
    body["statusCode"] = status.as_u16().into();
    (status, axum::Json(body)).into_response()
}

fn forbidden_origin(origin: &str) -> Response {
    let shown: String = origin.chars().take(200).collect();
    with_status(
        ApiError::validation(format!(
            "Origin '{shown}' is not allowed to use this server; add it with --allowed-origin"
        )),
        StatusCode::FORBIDDEN,
    )
}

fn query_token(req: &Request) -> Option<String> {
    let q: Query<HashMap<String, String>> = Query::try_from_uri(req.uri()).ok()?;
    q.0.get("token").cloned().filter(|t| !t.is_empty())
}

/// The subprotocol a browser page passes its token in (its WebSocket API
/// sets no headers, and a token in the URL would end up in logs and
/// history): `claude-studio.bearer.` and the token in base64url.
pub const TOKEN_PROTOCOL_PREFIX: &str = "claude-studio.bearer.";

fn protocol_token(req: &Request) -> Option<String> {
    use base64::Engine;
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(TOKEN_PROTOCOL_PREFIX))
        .and_then(|b64| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|t| !t.is_empty())
}

/// Checks the request's head before it is classified: its size, and that
/// its `Host` names this server. `Err` is the refusal to send.
#[allow(clippy::result_large_err)]
pub fn check_head(app: &App, req: &Request) -> Result<(), Response> {
    check_head_for(&app.access.names, req)
}

/// [`check_head`] against the names the server answers to (what it reads
/// of the app): the entry of the `preview_headers` fuzz target.
#[doc(hidden)]
#[allow(clippy::result_large_err)]
pub fn check_head_for(names: &Names, req: &Request) -> Result<(), Response> {
    let n = head_bytes(req);
    if n > MAX_HEAD_BYTES {
        return Err(with_status(
            ApiError::MessageTooLarge(format!(
                "Request line and headers total {n} bytes; the limit is {MAX_HEAD_BYTES} bytes"
            )),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ));
    }
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
    for host in [authority, host].into_iter().flatten() {
        let allowed = std::str::from_utf8(host).is_ok_and(|h| names.host_allowed(h));
        if !allowed {
            let shown: String = String::from_utf8_lossy(host).chars().take(200).collect();
            return Err(ApiError::validation(format!(
                "Host '{shown}' is not a name this server answers to; add it with --allowed-host"
            ))
            .into_response());
        }
    }
    Ok(())
}

/// What the guard learned about an admitted request.
pub struct Admission {
    pub ip: ClientIp,
    /// The caller, on routes whose rule is [`Auth::Token`].
    pub owner: Option<Owner>,
    /// Set when the `Origin` is a `--cors-origin`: the response gets CORS headers.
    pub cors_origin: Option<HeaderValue>,
}

impl Admission {
    /// Adds what the response needs from the guard (CORS headers).
    pub fn finish(self, app: &App, resp: &mut Response) {
        app.access.cors.decorate(self.cors_origin, resp);
    }
}

/// What step 5 needs of the request, read before anything is awaited (a
/// request's body is not `Sync`, so the request itself cannot be held
/// across the authentication limit's `await`).
enum TokenCheck {
    /// Admitted as is: no tokens configured, or a public route.
    None,
    /// A preview request, and the bearer token it carries, if any.
    Preview(Option<String>),
    /// The token presented, and how else the route would have taken one.
    Token {
        presented: Option<String>,
        hint: &'static str,
    },
}

/// Steps 3 to 5 for a request classified as `route`; `Err` is the refusal.
/// The request is read at once; the future holds only what step 5 needs.
pub fn admit<'a>(
    app: &'a App,
    req: &Request,
    route: &Route,
    peer: Option<SocketAddr>,
) -> impl std::future::Future<Output = Result<Admission, Response>> + Send + 'a {
    let read = read(app, req, route, peer);
    async move {
        let (mut admitted, check) = read?;
        let ip = admitted.ip;
        match check {
            TokenCheck::None | TokenCheck::Preview(None) => Ok(admitted),
            TokenCheck::Preview(Some(t)) => {
                if let Some(locked) = app.limits.auth.blocked(ip.key()).await {
                    return Err(ApiError::Limited(locked).into_response());
                }
                if app.access.tokens.verify(&t).is_none() {
                    return Err(invalid_token(app, &ip, "").await);
                }
                Ok(admitted)
            }
            TokenCheck::Token { presented, hint } => {
                if let Some(locked) = app.limits.auth.blocked(ip.key()).await {
                    return Err(ApiError::Limited(locked).into_response());
                }
                match presented.as_deref().map(|t| app.access.tokens.verify(t)) {
                    Some(Some(owner)) => {
                        admitted.owner = Some(owner);
                        Ok(admitted)
                    }
                    // No token at all is not a guess: 401 without using up the
                    // failure budget (a client that forgot its token must not
                    // lock itself out).
                    None => Err(ApiError::Authentication(format!(
                        "Missing API token: send 'Authorization: Bearer TOKEN'{hint}"
                    ))
                    .into_response()),
                    Some(None) => Err(invalid_token(app, &ip, hint).await),
                }
            }
        }
    }
}

/// Steps 3 and 4, and what step 5 will check.
#[allow(clippy::result_large_err)]
fn read(
    app: &App,
    req: &Request,
    route: &Route,
    peer: Option<SocketAddr>,
) -> Result<(Admission, TokenCheck), Response> {
    let access = &app.access;
    let cors_origin = access.cors.allowed(req.headers()).cloned();
    let ip = ClientIp::resolve(peer, req.headers(), access.trust_proxy);
    let admitted = |owner| Admission {
        ip,
        owner,
        cors_origin: cors_origin.clone(),
    };
    let path = req.uri().path();
    let method = req.method();
    let safe = matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let host_preview = matches!(route, Route::HostPreview(_));
    let terminal = route.is_terminal();
    let checks_origin = !host_preview && (terminal || (path.starts_with("/api/") && !safe));
    if checks_origin {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let o = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            if cors_origin.is_none() && !access.names.origin_allowed(&o) {
                return Err(forbidden_origin(&o));
            }
        }
    }

    if !access.tokens.enabled() {
        return Ok((admitted(Some(Owner::default())), TokenCheck::None));
    }
    let check = match route.auth() {
        Auth::Public => TokenCheck::None,
        Auth::Preview => TokenCheck::Preview(bearer(req.headers()).map(String::from)),
        Auth::Token => TokenCheck::Token {
            presented: bearer(req.headers()).map(String::from).or_else(|| {
                if terminal {
                    protocol_token(req).or_else(|| query_token(req))
                } else {
                    None
                }
            }),
            hint: if terminal {
                " (or, on the upgrade, '?token=TOKEN' or the subprotocol 'claude-studio.bearer.' + base64url(TOKEN))"
            } else {
                ""
            },
        },
    };
    Ok((admitted(None), check))
}

/// A presented token that is not valid: counted against the
/// authentication limit; `401`, or `429` once the budget is spent.
async fn invalid_token(app: &App, ip: &ClientIp, hint: &str) -> Response {
    match app.limits.auth.failed(ip.key()).await {
        Some(Err(refused)) => ApiError::Limited(refused).into_response(),
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
