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
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::error::ApiError;
use crate::runtime::PortDialer;
use crate::session::Session;

/// Targets one browser connection keeps upstream connections to; a page
/// rarely mixes more than one or two previews on one connection.
const TARGETS_PER_CONNECTION: usize = 4;

/// How to reach each live session's container.
#[derive(Default)]
pub struct Upstreams {
    /// Container id → its dialer, kept only for dialers confined to their
    /// container (see [`PortDialer::confined`]); one that dials an address
    /// from the host is asked of the engine afresh for every new connection,
    /// since the address may have passed to another container. Entries exist
    /// only for live sessions' containers (pruned against the session
    /// table), so it stays bounded.
    dialers: Mutex<std::collections::HashMap<String, Arc<dyn PortDialer>>>,
}

/// A new connection to a port of a session's container.
pub struct Dialed {
    pub stream: TcpStream,
    /// The container's address on its network, a name the app may use for
    /// itself in absolute URLs.
    pub address: Option<IpAddr>,
}

impl Upstreams {
    /// Connects to `port` of the session's container. A kept dialer that no
    /// longer connects (the container was restarted, or nothing listens) is
    /// dropped and the engine asked again, once.
    pub async fn connect(
        &self,
        app: &App,
        session: &Session,
        port: u16,
    ) -> Result<Dialed, SendError> {
        let kept = self
            .dialers
            .lock()
            .unwrap()
            .get(&session.container_id)
            .cloned();
        if let Some(d) = kept {
            match d.dial(port).await {
                Ok(stream) => {
                    return Ok(Dialed {
                        stream,
                        address: d.address(),
                    })
                }
                Err(_) => self.forget(session),
            }
        }
        let d = app
            .runtime
            .port_dialer(&session.container_id)
            .await
            .map_err(|e| SendError::Unavailable(ApiError::engine(e)))?
            .ok_or_else(|| {
                SendError::Unavailable(ApiError::PreviewUnavailable(format!(
                    "The container of session '{}' is not running",
                    session.id
                )))
            })?;
        let stream = d.dial(port).await.map_err(SendError::Connect)?;
        if d.confined() {
            self.keep(app, session, Arc::clone(&d));
        }
        Ok(Dialed {
            stream,
            address: d.address(),
        })
    }

    fn keep(&self, app: &App, session: &Session, dialer: Arc<dyn PortDialer>) {
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
        dialers.insert(session.container_id.clone(), dialer);
    }

    fn forget(&self, session: &Session) {
        self.dialers.lock().unwrap().remove(&session.container_id);
    }
}

/// Where one upstream connection goes.
struct Key {
    container: String,
    port: u16,
}

/// A kept-alive upstream connection, ready for the next request.
struct Idle {
    key: Key,
    sender: SendRequest<Body>,
    address: Option<IpAddr>,
}

/// The idle upstream connections of one browser-side connection. Dropped
/// with it, which closes them.
pub struct Connections {
    idle: Mutex<Vec<Idle>>,
    /// Where the connections' driving tasks are tracked.
    tasks: TaskTracker,
    /// The browser's address, as `X-Real-IP`/`X-Forwarded-For` carry it:
    /// made once per connection, not per request.
    pub client_ip: HeaderValue,
}

pub enum SendError {
    /// The container cannot be reached at all (stopped, engine down).
    Unavailable(ApiError),
    /// Nothing listens on the port.
    Connect(io::Error),
    /// The app broke off the exchange or answered with something that is
    /// not HTTP.
    Http(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unavailable(e) => write!(f, "{e}"),
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Http(e) => write!(f, "{e}"),
        }
    }
}

/// An upstream response and the container's address (for the names the
/// app may use for itself).
pub struct Sent {
    pub response: Response<Incoming>,
    pub address: Option<IpAddr>,
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

    /// Sends `req` to `port` of the session's container over this browser
    /// connection's kept-alive upstream connection, or a new one. A request
    /// that a stale connection (closed by the app while idle) could not take
    /// is sent again on a fresh one; one that was sent is never repeated.
    pub async fn send(
        &self,
        upstreams: &Upstreams,
        app: &App,
        session: &Session,
        port: u16,
        mut req: Request,
    ) -> Result<Sent, SendError> {
        let container = session.container_id.as_str();
        let key = match self.take_ready(container, port) {
            Some(mut idle) => match idle.sender.try_send_request(req).await {
                Ok(response) => {
                    let address = idle.address;
                    self.put(idle);
                    return Ok(Sent { response, address });
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) => {
                        req = unsent;
                        idle.key
                    }
                    None => return Err(SendError::Http(e.into_error())),
                },
            },
            None => Key {
                container: container.to_string(),
                port,
            },
        };
        // Boxed, being rare: the future of every request stays small (see
        // `http::Front::dispatch`).
        Box::pin(self.send_on_new(upstreams, app, session, key, req)).await
    }

    /// Sends `req` on a new connection to the key's port, kept afterwards.
    async fn send_on_new(
        &self,
        upstreams: &Upstreams,
        app: &App,
        session: &Session,
        key: Key,
        req: Request,
    ) -> Result<Sent, SendError> {
        let dialed = upstreams.connect(app, session, key.port).await?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(dialed.stream))
            .await
            .map_err(SendError::Http)?;
        // The connection's task ends when its sender is dropped (with this
        // browser connection, or when replaced) and it is idle.
        self.tasks.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "preview upstream connection ended");
            }
        });
        let response = sender.send_request(req).await.map_err(SendError::Http)?;
        self.put(Idle {
            key,
            sender,
            address: dialed.address,
        });
        Ok(Sent {
            response,
            address: dialed.address,
        })
    }

    /// A kept connection to `container`'s `port` that can take a request
    /// right now. One that is closed, or still busy with an earlier
    /// exchange, is dropped.
    fn take_ready(&self, container: &str, port: u16) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap();
        let i = idle
            .iter()
            .position(|c| c.key.port == port && c.key.container == container)?;
        let mut found = idle.swap_remove(i);
        let waker = std::task::Waker::noop();
        match found
            .sender
            .poll_ready(&mut std::task::Context::from_waker(waker))
        {
            Poll::Ready(Ok(())) => Some(found),
            _ => None,
        }
    }

    fn put(&self, conn: Idle) {
        let mut idle = self.idle.lock().unwrap();
        if idle.len() >= TARGETS_PER_CONNECTION {
            idle.remove(0);
        }
        idle.push(conn);
    }
}

/// Sends an upgrade request (a WebSocket handshake) on a connection of its
/// own, which becomes the tunnel's upstream side if the app agrees.
pub async fn send_upgrade(
    upstreams: &Upstreams,
    app: &App,
    session: &Session,
    port: u16,
    req: Request,
) -> Result<Sent, SendError> {
    let dialed = upstreams.connect(app, session, port).await?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(dialed.stream))
        .await
        .map_err(SendError::Http)?;
    app.tasks.spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "preview upgrade connection ended");
        }
    });
    let response = sender.send_request(req).await.map_err(SendError::Http)?;
    Ok(Sent {
        response,
        address: dialed.address,
    })
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
