//! Passes a whole HTTP request to the gateway holding its session and
//! streams the answer back; a WebSocket upgrade (a preview's hot reload)
//! becomes a byte tunnel between the client and that gateway.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::uri::PathAndQuery;
use axum::response::{IntoResponse, Response};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Owner;
use crate::error::ApiError;
use crate::fleet::Fleet;
use crate::limits::ClientIp;

/// Connecting to another gateway of the fleet may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The host and port of a gateway's URL (`http://HOST:PORT`).
pub fn authority(url: &str) -> &str {
    url.strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/')
}

pub fn unavailable(url: &str, e: impl std::fmt::Display) -> Response {
    tracing::warn!(gateway = %url, error = %e, "relay to the session's gateway failed");
    ApiError::DockerDaemon(
        "The gateway holding this session did not answer; try again shortly (another takes \
         the session over if it is gone)"
            .into(),
    )
    .into_response()
}

/// Idle connections kept per gateway of the fleet.
const IDLE_PER_GATEWAY: usize = 32;

/// Kept-alive connections to the other gateways, by URL: a relayed request
/// (a page's every asset, through a gateway that does not hold the
/// session) reuses one rather than paying for a connection each.
static IDLE: LazyLock<Mutex<HashMap<String, Vec<http1::SendRequest<Body>>>>> =
    LazyLock::new(Default::default);

fn take_idle(url: &str) -> Option<http1::SendRequest<Body>> {
    let mut idle = IDLE.lock().unwrap();
    let list = idle.get_mut(url)?;
    while let Some(s) = list.pop() {
        if s.is_ready() && !s.is_closed() {
            return Some(s);
        }
    }
    None
}

/// Puts a connection back once it can take the next request (its answer
/// was read to the end; one cut short is closed instead, never reused).
fn give_back(url: String, mut sender: http1::SendRequest<Body>) {
    tokio::spawn(async move {
        let ready = tokio::time::timeout(Duration::from_secs(5), sender.ready()).await;
        if matches!(ready, Ok(Ok(()))) {
            let mut idle = IDLE.lock().unwrap();
            let list = idle.entry(url).or_default();
            if list.len() < IDLE_PER_GATEWAY {
                list.push(sender);
            }
        }
    });
}

/// A connection to another gateway, ready for one request.
pub struct Connected {
    sender: http1::SendRequest<Body>,
    /// A fresh connection's task (`None` for a kept-alive one).
    conn_task: Option<tokio::task::JoinHandle<()>>,
}

/// A connection to the gateway at `url`: a kept-alive one, else a new one;
/// `Err` when nothing answers there (it stopped or died: its sessions move
/// to another gateway shortly).
pub async fn connect(
    url: &str,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<Connected, String> {
    if let Some(sender) = take_idle(url) {
        return Ok(Connected {
            sender,
            conn_task: None,
        });
    }
    let stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(authority(url)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("connect timed out".into()),
    };
    let _ = stream.set_nodelay(true);
    // A holder that vanishes without closing (power, a partition) ends its
    // connections within about 25 s rather than leaving a kept-alive one,
    // and a request on it, waiting forever.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let conn_task = tasks.spawn({
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = conn.with_upgrades() => {}
                _ = shutdown.cancelled() => {}
            }
        }
    });
    Ok(Connected {
        sender,
        conn_task: Some(conn_task),
    })
}

/// Sends `req` on `connected` (to the gateway at `url`) and returns its
/// answer.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    fleet: &Fleet,
    url: &str,
    connected: Connected,
    mut req: Request,
    ip: &ClientIp,
    owner: Option<&Owner>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Response {
    let Connected {
        mut sender,
        conn_task,
    } = connected;
    let upgrade = req
        .headers()
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = path.clone().into();
    let method = parts.method.clone();
    crate::relay::stamp(
        fleet,
        method.as_str(),
        path.as_str(),
        &mut parts.headers,
        ip,
        owner,
    );
    let mut resp = match sender
        .send_request(hyper::Request::from_parts(parts, body))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            if let Some(t) = conn_task {
                t.abort();
            }
            return unavailable(url, e);
        }
    };
    if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        let body = Returning {
            inner: body,
            back: Some((url.to_string(), sender)),
        };
        return Response::from_parts(parts, Body::new(body));
    }
    // A WebSocket: the connection is the tunnel now, never kept.
    if let Some(client) = client_upgrade {
        let upstream = hyper::upgrade::on(&mut resp);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let (c, u) = match tokio::join!(client, upstream) {
                (Ok(c), Ok(u)) => (c, u),
                _ => return,
            };
            let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut c, &mut u) => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, Body::new(body))
}

/// An answer's body that gives its connection back when it is dropped
/// (read to the end, or not: `give_back` tells).
struct Returning {
    inner: hyper::body::Incoming,
    back: Option<(String, http1::SendRequest<Body>)>,
}

impl http_body::Body for Returning {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let Some((url, sender)) = self.back.take() {
            give_back(url, sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_is_host_and_port() {
        assert_eq!(authority("http://127.0.0.1:4000"), "127.0.0.1:4000");
        assert_eq!(authority("http://10.0.0.2:80/"), "10.0.0.2:80");
    }
}
