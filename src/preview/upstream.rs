//! Where a preview request goes: a port of the session's own container,
//! reached through the runtime's [`PortDialer`] (never a client-named host),
//! over one pooled HTTP/1.1 client that keeps upstream connections alive.
//!
//! The pooled client's URIs name a container, not a network address:
//! `http://c-<container id prefix>:PORT`. The connector maps that name back
//! to the container's dialer, so a pooled connection is never handed to
//! another container, even one that later gets the same address.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::app::App;
use crate::error::ApiError;
use crate::runtime::PortDialer;
use crate::session::Session;

const POOL_IDLE: Duration = Duration::from_secs(30);
const POOL_PER_HOST: usize = 64;

/// Container name in the pool's URIs → how to reach that container.
type Dialers = Arc<Mutex<HashMap<String, Arc<dyn PortDialer>>>>;

pub type HttpClient = Client<Connector, Body>;

pub struct Upstreams {
    pub client: HttpClient,
    /// Entries exist only for live sessions' containers (pruned against the
    /// session table), so it stays bounded.
    dialers: Dialers,
}

/// A session's container, as the pooled client names it.
pub struct Upstream {
    /// The authority's host part: `c-<container id prefix>`.
    pub host: String,
    /// The container's address on its network, if any.
    pub address: Option<IpAddr>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self::new()
    }
}

fn host_for(container_id: &str) -> String {
    let prefix: String = container_id.chars().take(32).collect();
    format!("c-{prefix}")
}

impl Upstreams {
    pub fn new() -> Upstreams {
        let dialers: Dialers = Arc::default();
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_PER_HOST)
            .pool_timer(TokioTimer::new());
        let client = builder.build(Connector {
            dialers: Arc::clone(&dialers),
        });
        Upstreams { client, dialers }
    }

    /// The session's container, from the cache or the engine.
    pub async fn resolve(&self, app: &App, session: &Session) -> Result<Upstream, ApiError> {
        let host = host_for(&session.container_id);
        let cached = self.dialers.lock().unwrap().get(&host).cloned();
        if let Some(d) = cached {
            return Ok(Upstream {
                host,
                address: d.address(),
            });
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
        let address = dialer.address();
        let mut dialers = self.dialers.lock().unwrap();
        if dialers.len() >= app.sessions.count() + 16 {
            let live: HashSet<String> = app
                .sessions
                .all()
                .iter()
                .map(|s| host_for(&s.container_id))
                .collect();
            dialers.retain(|h, _| live.contains(h));
        }
        dialers.insert(host.clone(), dialer);
        Ok(Upstream { host, address })
    }

    /// Drops a container's dialer after a failed request, so the next one
    /// asks the engine again (the container may have been restarted).
    pub fn forget(&self, session: &Session) {
        self.dialers
            .lock()
            .unwrap()
            .remove(&host_for(&session.container_id));
    }
}

/// The pooled client's connector: `c-…:PORT` → that container's port.
#[derive(Clone)]
pub struct Connector {
    dialers: Dialers,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<TcpStream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dialer = uri
            .host()
            .and_then(|h| self.dialers.lock().unwrap().get(h).cloned());
        let port = uri.port_u16().unwrap_or(80);
        Box::pin(async move {
            let dialer = dialer.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "no such preview container")
            })?;
            dialer.dial(port).await.map(TokioIo::new)
        })
    }
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
