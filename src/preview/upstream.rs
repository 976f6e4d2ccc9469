//! Where a preview request goes: a port of the session's own container,
//! reached through the runtime's [`PortDialer`] (never a client-named host),
//! over HTTP/1.1 connections that are kept alive between requests.
//!
//! Upstream connections belong to the browser-side connection that opened
//! them ([`Connections`]), not to a shared pool: HTTP/1 carries one request
//! at a time, so a browser connection never needs more than one upstream
//! connection per target, and it takes it without a pool's locking, checkout
//! and hand-off between tasks (the largest cost of a pooled client on small
//! responses). A cached connection is only reused for the same container
//! and port, so it is never handed to another container, even one that
//! later gets the same address, and it closes with the browser's connection.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::error::ApiError;
use crate::runtime::PortDialer;
use crate::session::Session;

/// Targets one browser connection keeps upstream connections to; a page
/// rarely mixes more than one or two previews on one connection.
const TARGETS_PER_CONNECTION: usize = 4;

/// How to reach each live session's container, asked of the engine once.
#[derive(Default)]
pub struct Upstreams {
    /// Container id → its dialer. Entries exist only for live sessions'
    /// containers (pruned against the session table), so it stays bounded.
    dialers: Mutex<std::collections::HashMap<String, Arc<dyn PortDialer>>>,
}

impl Upstreams {
    /// The session's container, from the cache or the engine.
    pub async fn resolve(
        &self,
        app: &App,
        session: &Session,
    ) -> Result<Arc<dyn PortDialer>, ApiError> {
        let cached = self
            .dialers
            .lock()
            .unwrap()
            .get(&session.container_id)
            .cloned();
        if let Some(d) = cached {
            return Ok(d);
        }
        let dialer = app
            .runtime
            .port_dialer(&session.container_id)
            .await
            .map_err(ApiError::engine)?
            .ok_or_else(|| {
                ApiError::PreviewUnavailable(format!(
                    "The container of session '{}' is not running",
                    session.id
                ))
            })?;
        let mut dialers = self.dialers.lock().unwrap();
        if dialers.len() >= app.sessions.count() + 16 {
            let live: HashSet<String> = app
                .sessions
                .all()
                .iter()
                .map(|s| s.container_id.clone())
                .collect();
            dialers.retain(|id, _| live.contains(id));
        }
        dialers.insert(session.container_id.clone(), Arc::clone(&dialer));
        Ok(dialer)
    }

    /// Drops a container's dialer after a failed request, so the next one
    /// asks the engine again (the container may have been restarted).
    pub fn forget(&self, session: &Session) {
        self.dialers.lock().unwrap().remove(&session.container_id);
    }
}

/// Where one upstream connection goes.
struct Key {
    container: String,
    port: u16,
}

/// The idle upstream connections of one browser-side connection. Dropped
/// with it, which closes them.
pub struct Connections {
    idle: Mutex<Vec<(Key, SendRequest<Body>)>>,
    /// Where the connections' driving tasks are tracked.
    tasks: TaskTracker,
    /// The browser's address, as `X-Real-IP`/`X-Forwarded-For` carry it:
    /// made once per connection, not per request.
    pub client_ip: HeaderValue,
}

pub enum SendError {
    /// Nothing could be connected to.
    Connect(io::Error),
    /// The upstream broke off the exchange.
    Http(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl Connections {
    pub fn new(tasks: TaskTracker, client: Option<IpAddr>) -> Connections {
        let ip = client.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        Connections {
            idle: Mutex::default(),
            tasks,
            client_ip: HeaderValue::from_str(&ip.to_string()).expect("an IP is a header value"),
        }
    }

    /// Sends `req` to `port` of the container over this browser connection's
    /// kept-alive upstream connection, or a new one. A request that a stale
    /// connection (closed by the app while idle) could not take is sent
    /// again on a fresh one; one that was sent is never repeated.
    pub async fn send(
        &self,
        container: &str,
        dialer: &dyn PortDialer,
        port: u16,
        mut req: Request,
    ) -> Result<Response<Incoming>, SendError> {
        let cached = self.take_ready(container, port);
        let key = match cached {
            Some((key, mut sender)) => match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.put(key, sender);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) => {
                        req = unsent;
                        key
                    }
                    None => return Err(SendError::Http(e.into_error())),
                },
            },
            None => Key {
                container: container.to_string(),
                port,
            },
        };
        let (mut sender, conn) = connect(dialer, port).await?;
        // The connection's task ends when its sender is dropped (with this
        // browser connection, or when replaced) and it is idle.
        self.tasks.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "preview upstream connection ended");
            }
        });
        let resp = sender.send_request(req).await.map_err(SendError::Http)?;
        self.put(key, sender);
        Ok(resp)
    }

    /// A cached connection to `key` that can take a request right now. One
    /// that is closed, or still busy with an earlier exchange, is dropped.
    fn take_ready(&self, container: &str, port: u16) -> Option<(Key, SendRequest<Body>)> {
        let mut idle = self.idle.lock().unwrap();
        let i = idle
            .iter()
            .position(|(k, _)| k.port == port && k.container == container)?;
        let (key, mut sender) = idle.swap_remove(i);
        let waker = std::task::Waker::noop();
        match sender.poll_ready(&mut std::task::Context::from_waker(waker)) {
            Poll::Ready(Ok(())) => Some((key, sender)),
            _ => None,
        }
    }

    fn put(&self, key: Key, sender: SendRequest<Body>) {
        let mut idle = self.idle.lock().unwrap();
        if idle.len() >= TARGETS_PER_CONNECTION {
            idle.remove(0);
        }
        idle.push((key, sender));
    }
}

async fn connect(
    dialer: &dyn PortDialer,
    port: u16,
) -> Result<
    (
        SendRequest<Body>,
        http1::Connection<TokioIo<tokio::net::TcpStream>, Body>,
    ),
    SendError,
> {
    let stream = dialer.dial(port).await.map_err(SendError::Connect)?;
    http1::handshake(TokioIo::new(stream))
        .await
        .map_err(SendError::Http)
}

/// Sends an upgrade request (a WebSocket handshake) on a connection of its
/// own, which becomes the tunnel's upstream side if the app agrees.
pub async fn send_upgrade(
    tasks: &TaskTracker,
    dialer: &dyn PortDialer,
    port: u16,
    req: Request,
) -> Result<Response<Incoming>, SendError> {
    let (mut sender, conn) = connect(dialer, port).await?;
    tasks.spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "preview upgrade connection ended");
        }
    });
    sender.send_request(req).await.map_err(SendError::Http)
}

/// The names an app may use for itself in absolute redirects.
pub fn self_names(address: Option<IpAddr>, port: u16) -> Vec<String> {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    hosts.extend(address.map(|a| a.to_string()));
    let mut v: Vec<String> = hosts.iter().map(|h| format!("{h}:{port}")).collect();
    if port == 80 {
        v.extend(hosts);
    }
    v
}
