//! Where a preview request goes: the session's container, by its address on
//! the Docker network (never a published port, never a client-named host),
//! through one pooled HTTP/1.1 client that keeps upstream connections alive.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::app::App;
use crate::error::ApiError;
use crate::session::Session;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_IDLE: Duration = Duration::from_secs(30);
const POOL_PER_HOST: usize = 64;

pub type HttpClient = Client<HttpConnector, Body>;

pub struct Upstreams {
    pub client: HttpClient,
    /// Session id → (container id, address). Entries exist only for live
    /// sessions (pruned against the session table), so it stays bounded.
    ips: Mutex<HashMap<String, (String, IpAddr)>>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self::new()
    }
}

impl Upstreams {
    pub fn new() -> Upstreams {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // Only IP literals are ever dialled; never resolve a name.
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_PER_HOST)
            .pool_timer(TokioTimer::new());
        let client = builder.build(connector);
        Upstreams {
            client,
            ips: Mutex::new(HashMap::new()),
        }
    }

    /// The container's address for `port`, from the cache or the engine.
    pub async fn addr(
        &self,
        app: &App,
        session: &Session,
        port: u16,
    ) -> Result<SocketAddr, ApiError> {
        let cached = self
            .ips
            .lock()
            .unwrap()
            .get(&session.id)
            .filter(|(c, _)| *c == session.container_id)
            .map(|e| e.1);
        if let Some(ip) = cached {
            return Ok(SocketAddr::new(ip, port));
        }
        let state = app
            .runtime
            .container_state(&session.container_id)
            .await
            .map_err(ApiError::engine)?;
        let ip = state
            .filter(|s| s.running)
            .and_then(|s| s.ip)
            .ok_or_else(|| {
                ApiError::PreviewUnavailable(format!(
                    "The container of session '{}' is not running",
                    session.id
                ))
            })?;
        let mut ips = self.ips.lock().unwrap();
        if ips.len() >= app.sessions.count() + 16 {
            let live: std::collections::HashSet<String> =
                app.sessions.all().iter().map(|s| s.id.clone()).collect();
            ips.retain(|id, _| live.contains(id));
        }
        ips.insert(session.id.clone(), (session.container_id.clone(), ip));
        Ok(SocketAddr::new(ip, port))
    }

    /// Drops a cached address after a failed connect, in case it changed.
    pub fn forget(&self, session_id: &str) {
        self.ips.lock().unwrap().remove(session_id);
    }
}

/// The names an app may use for itself in absolute redirects.
pub fn self_names(addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut v: Vec<String> = [
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        addr.ip().to_string(),
    ]
    .into_iter()
    .map(|h| format!("{h}:{port}"))
    .collect();
    if port == 80 {
        v.extend([
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            addr.ip().to_string(),
        ]);
    }
    v
}
