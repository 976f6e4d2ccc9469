//! Passes a whole HTTP request to the gateway holding its session and
//! streams the answer back; a WebSocket upgrade (a preview's hot reload)
//! becomes a byte tunnel between the client and that gateway.

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

/// A connection to another gateway, ready for one request.
pub struct Connected {
    sender: http1::SendRequest<Body>,
    conn_task: tokio::task::JoinHandle<()>,
}

/// Connects to the gateway at `url`; `Err` when nothing answers there (it
/// stopped or died: its sessions move to another gateway shortly).
pub async fn connect(
    url: &str,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<Connected, String> {
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
    Ok(Connected { sender, conn_task })
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
            conn_task.abort();
            return unavailable(url, e);
        }
    };
    if resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
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
    }
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, Body::new(body))
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
