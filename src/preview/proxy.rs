//! Forwarding one request to the container and its response back: bodies
//! stream both ways untouched except HTML (see `inject`); headers are
//! rewritten by `headers`; a WebSocket upgrade becomes a byte tunnel.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::RngCore;
use tokio::sync::OwnedSemaphorePermit;

use super::decode::Decoder;
use super::headers::{self as h, Forwarded};
use super::inject::{Collected, Page};
use super::request_body::Watched;
use super::sniff::{looks_like_html, not_ascii_compatible, Peeked};
use super::upstream::{self, Connections, SendError};
use super::{csp, inject, plain_head, Preview, Target};
use crate::error::ApiError;
use crate::session::PREVIEW_TUNNELS;

const CSP_HEADERS: [&str; 2] = [
    "content-security-policy",
    "content-security-policy-report-only",
];

pub async fn forward(p: &Preview, conns: &Connections, t: &Target, mut req: Request) -> Response {
    let upgrade = h::wants_upgrade(req.headers());
    // A tunnel's places are taken before the app is asked, and held until
    // it closes.
    let browser_end = if upgrade {
        match tunnel_places(p, t) {
            Ok(places) => Some((hyper::upgrade::on(&mut req), places)),
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    let (mut parts, body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    // Only for the error page: whether the caller is a browser.
    let accept = parts.headers.get(header::ACCEPT).cloned();

    // Origin form: the connection already names the container and port.
    let target = h::upstream_target(&t.rest, parts.uri.query());
    let Ok(uri) = Uri::try_from(target) else {
        return ApiError::validation("Malformed preview path").into_response();
    };
    let host = crate::hosts::request_host(&parts.uri, &parts.headers).map(str::to_string);
    h::strip_hop_by_hop(&mut parts.headers, upgrade);
    // The app behind the preview never sees the API token or our cookie.
    crate::auth::strip_credentials(&p.app.access, &mut parts.headers);
    let prefix = (!t.prefix.is_empty()).then_some(t.prefix.as_str());
    let fwd = Forwarded {
        client_ip: &conns.client_ip,
        trust_proxy: p.app.settings.trust_proxy,
        host: host.as_deref(),
        prefix,
    };
    h::set_forwarded(&mut parts.headers, &fwd);
    h::filter_accept_encoding(&mut parts.headers);
    // The app sees itself as http://localhost:PORT, as it does from inside
    // the container; the browser's host goes in X-Forwarded-Host.
    parts.headers.insert(header::HOST, app_host(t.port));
    parts.uri = uri;
    parts.version = Version::HTTP_11;

    let (body, watch) = Watched::new(body);
    let req = Request::from_parts(parts, Body::new(body));
    let send = async {
        if upgrade {
            // Boxed: see `http::Front::dispatch`.
            Box::pin(upstream::send_upgrade(
                &p.upstreams,
                &p.app,
                &t.session,
                t.port,
                req,
            ))
            .await
        } else {
            conns
                .send(&p.upstreams, &p.app, &t.session, t.port, req)
                .await
        }
    };
    // The app has `--preview-timeout` to answer once it has the whole
    // request (a slow upload is the request body's limits' to judge).
    let timeout = p.app.settings.preview_timeout;
    let sent = tokio::select! {
        // In order: no random draw per request, and an answer that is
        // there wins over a timeout that is too.
        biased;
        sent = send => Some(sent),
        _ = async { watch.sent().await; tokio::time::sleep(timeout).await } => None,
    };
    let asked = accept.as_ref();
    let Some(sent) = sent else {
        return unavailable_for(
            asked,
            ApiError::PreviewTimeout(format!(
                "The app on port {} of session '{}' did not answer within {}",
                t.port,
                t.session.id,
                humantime::format_duration(timeout)
            )),
        );
    };
    let (mut resp, address) = match sent {
        Ok(s) => (s.response, s.address),
        // The browser's own body broke off or was malformed: its fault,
        // not the app's.
        Err(_) if watch.failure().is_some() => {
            return ApiError::validation(format!(
                "The request body could not be read: {}",
                watch.failure().unwrap_or_default()
            ))
            .into_response();
        }
        Err(e) => {
            tracing::debug!(session = %t.session.id, port = t.port, error = %e, "preview upstream failed");
            let err = match e {
                SendError::Unavailable(e) => e,
                SendError::Connect(_) => ApiError::PreviewUnavailable(format!(
                    "Nothing answers on port {} of session '{}' yet",
                    t.port, t.session.id
                )),
                SendError::Http(e) => invalid_response(t, &e),
            };
            return unavailable_for(asked, err);
        }
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // Switching protocols without having been asked to is no answer a
        // browser can use.
        let Some((client, places)) = browser_end else {
            return unavailable_for(
                asked,
                ApiError::PreviewUnavailable(format!(
                    "The app on port {} of session '{}' switched protocols unasked",
                    t.port, t.session.id
                )),
            );
        };
        tunnel(p, t, places, client, hyper::upgrade::on(&mut resp));
        let (mut parts, _) = resp.into_parts();
        h::strip_hop_by_hop(&mut parts.headers, true);
        return Response::from_parts(parts, Body::empty());
    }
    respond(t, address, resp, head).await
}

/// `localhost:PORT`, the `Host` the app is asked for: made once per port
/// and thread, not per request (a clone shares the bytes).
fn app_host(port: u16) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u16, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((p, v)) if *p == port => v.clone(),
        _ => {
            let v = HeaderValue::from_str(&format!("localhost:{port}"))
                .expect("a host and port is a header value");
            *last = Some((port, v.clone()));
            v
        }
    })
}

/// The app answered, but not with HTTP a browser can be given.
fn invalid_response(t: &Target, e: &hyper::Error) -> ApiError {
    ApiError::PreviewUnavailable(format!(
        "The app on port {} of session '{}' sent an invalid response: {e}",
        t.port, t.session.id
    ))
}

/// The largest rewritten page sent with a `Content-Length`; a larger one
/// streams (chunked) rather than wait in memory.
const BUFFERED_PAGE_LIMIT: usize = 8 * 1024 * 1024;

/// Rewrites the upstream's response for the browser.
async fn respond(
    t: &Target,
    address: Option<IpAddr>,
    resp: Response<Incoming>,
    head: bool,
) -> Response {
    let (mut parts, body) = resp.into_parts();
    h::strip_hop_by_hop(&mut parts.headers, false);
    rewrite_location_and_cookies(&mut parts.headers, &t.prefix, address, t.port);

    // A partial response (206) is a slice of a page: rewriting it would
    // corrupt the whole the browser reassembles.
    let has_body = !(parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
        || parts.status == StatusCode::PARTIAL_CONTENT);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // A page that says nothing of its type is shown by the browser as what
    // its first bytes look like: so the preview looks too (only then).
    let sniff = content_type.is_none()
        && has_body
        && !head
        && !parts.headers.contains_key(header::CONTENT_ENCODING);
    let (html, body) = if sniff {
        match Peeked::read(body).await {
            Ok(b) => (looks_like_html(b.head()), b),
            Err(e) => return unavailable_for(None, invalid_response(t, &e)),
        }
    } else {
        let html = is_html(&parts.headers) && !not_ascii_compatible(content_type, b"");
        (html, Peeked::unread(body))
    };
    let decoder = if html && has_body {
        Decoder::for_headers(&parts.headers)
    } else {
        None
    };
    let Some(decoder) = decoder else {
        return Response::from_parts(parts, Body::new(body));
    };

    let nonce = new_nonce();
    for name in CSP_HEADERS {
        let amended: Vec<HeaderValue> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| HeaderValue::from_str(&csp::amend(v, &nonce)).ok())
            .collect();
        if !amended.is_empty() {
            parts.headers.remove(name);
            for v in amended {
                parts.headers.append(name, v);
            }
        }
    }
    // The body changes: its length is known only once rewritten, it is no
    // longer compressed, and a strong validator would be a lie.
    let length = parts
        .headers
        .remove(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|n| n.parse::<u64>().ok()));
    parts.headers.remove(header::CONTENT_ENCODING);
    if let Some(etag) = parts
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
    {
        if !etag.starts_with("W/") {
            if let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}")) {
                parts.headers.insert(header::ETAG, weak);
            }
        }
    }
    if head {
        return Response::from_parts(parts, Body::empty());
    }
    let tag = inject::script_tag(&t.prefix, &nonce);
    // A page the app sent with a length goes out with its new length (read
    // whole, up to a bound); one it streamed (server-side rendering) keeps
    // streaming, chunked.
    match length {
        // Boxed: see `http::Front::dispatch`.
        Some(length) => Box::pin(rewrite_whole(t, parts, body, decoder, tag, nonce, length)).await,
        None => Response::from_parts(parts, inject::inject(body, decoder, tag, nonce)),
    }
}

/// A page the app sent with a `Content-Length` (`length`, if it could be
/// read), rewritten and sent with its new one: read whole, unless it turns
/// out larger than [`BUFFERED_PAGE_LIMIT`], which then streams. A plain
/// page (see `plain_head`) gets the script without the rewriter.
async fn rewrite_whole(
    t: &Target,
    mut parts: axum::http::response::Parts,
    body: Peeked<Incoming>,
    decoder: Decoder,
    tag: String,
    nonce: String,
    length: Option<u64>,
) -> Response {
    // Nothing is sent yet when reading or rewriting fails: a clear 502
    // rather than a cut connection.
    let failed = |e: &dyn std::fmt::Display| {
        ApiError::PreviewUnavailable(format!(
            "The page from port {} of session '{}' could not be rewritten: {e}",
            t.port, t.session.id
        ))
        .into_response()
    };
    let small = length.is_some_and(|n| n <= plain_head::MAX_PLAIN_PAGE as u64);
    let body = if small && decoder.is_identity() {
        // At most MAX_PLAIN_PAGE: the length bounds what hyper reads.
        let page = match body.collect().await {
            Ok(page) => page.to_bytes(),
            Err(e) => return failed(&e),
        };
        if let Some(at) = plain_head::insertion_point(&page) {
            let page = Page::spliced(page, at, Bytes::from(tag));
            parts.headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(page.content_length()),
            );
            return Response::from_parts(parts, Body::new(page));
        }
        inject::inject(Full::new(page), decoder, tag, nonce)
    } else {
        inject::inject(body, decoder, tag, nonce)
    };
    match inject::collect_within(body, BUFFERED_PAGE_LIMIT).await {
        Collected::Whole(page) => {
            parts.headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(page.content_length()),
            );
            Response::from_parts(parts, Body::new(page))
        }
        Collected::Streaming(body) => Response::from_parts(parts, body),
        Collected::Failed(e) => failed(&e),
    }
}

fn rewrite_location_and_cookies(
    headers: &mut HeaderMap,
    prefix: &str,
    address: Option<IpAddr>,
    port: u16,
) {
    if let Some(loc) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) {
        let names = upstream::self_names(address, port);
        if let Some(new) = h::rewrite_location(loc, prefix, &names) {
            if let Ok(v) = HeaderValue::from_str(&new) {
                headers.insert(header::LOCATION, v);
            }
        }
    }
    if headers.contains_key(header::SET_COOKIE) {
        let cookies: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            // The server's own cookie names never pass from the app: it must
            // not be able to replace or shadow the preview's credentials.
            .filter(|v| !crate::auth::preview_gate::is_reserved_cookie(h::cookie_name(v)))
            .filter_map(|v| HeaderValue::from_str(&h::rewrite_set_cookie(v, prefix)).ok())
            .collect();
        headers.remove(header::SET_COOKIE);
        for c in cookies {
            headers.append(header::SET_COOKIE, c);
        }
    }
}

fn is_html(headers: &HeaderMap) -> bool {
    crate::mime::has_media_type(headers, "text/html")
}

fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A place for one more WebSocket tunnel: one of the session's
/// [`PREVIEW_TUNNELS`] and one of the server's. Past either, `429`.
fn tunnel_places(p: &Preview, t: &Target) -> Result<[OwnedSemaphorePermit; 2], ApiError> {
    let session = Arc::clone(&t.session.preview_tunnels)
        .try_acquire_owned()
        .map_err(|_| ApiError::AtCapacity {
            message: format!(
                "Session '{}' has {PREVIEW_TUNNELS} preview WebSockets open, the most it may; close one first",
                t.session.id
            ),
            limit: PREVIEW_TUNNELS as u32,
            retry_after_secs: 1,
        })?;
    let server = Arc::clone(&p.tunnels)
        .try_acquire_owned()
        .map_err(|_| ApiError::AtCapacity {
            message: "The server has as many preview WebSockets open as it takes; try again later"
                .into(),
            limit: u32::try_from(p.app.settings.max_connections).unwrap_or(u32::MAX),
            retry_after_secs: 1,
        })?;
    Ok([session, server])
}

/// Joins the browser's and the upstream's upgraded connections; the task
/// ends when either side closes, the session ends, or the server shuts
/// down, and gives its places back then.
fn tunnel(
    p: &Preview,
    t: &Target,
    places: [OwnedSemaphorePermit; 2],
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
) {
    let shutdown = p.app.shutdown.clone();
    let session = Arc::clone(&t.session);
    p.app.tasks.spawn(async move {
        let _places = places;
        if let (Ok(c), Ok(u)) = tokio::join!(client, upstream) {
            let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut c, &mut u) => {}
                _ = session.ended.cancelled() => {}
                _ = shutdown.cancelled() => {}
            }
        }
        // While open, the tunnel kept the session from expiring (the sweep
        // counts it as use); from its close, the inactivity clock runs.
        session.touch();
    });
}

/// 502 when nothing answers: JSON, or for a browser a page that retries.
pub fn unavailable(request_headers: &HeaderMap, err: ApiError) -> Response {
    unavailable_for(request_headers.get(header::ACCEPT), err)
}

/// [`unavailable`] for a request whose `Accept` was `accept`.
fn unavailable_for(accept: Option<&HeaderValue>, err: ApiError) -> Response {
    let wants_html = accept
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("text/html"));
    if !wants_html
        || !matches!(
            err,
            ApiError::PreviewUnavailable(_) | ApiError::PreviewTimeout(_)
        )
    {
        return err.into_response();
    }
    let msg = err
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>Preview starting…</title></head><body style=\"font-family:sans-serif;padding:2em\">\
         <h1>Preview not available yet</h1><p>{msg}</p><p>This page retries every 2 seconds.</p></body></html>"
    );
    let mut r = (err.status(), page).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    r
}
