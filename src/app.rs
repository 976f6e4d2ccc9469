//! The shared state every handler gets through axum's `State`: settings,
//! the session table, the runtime, and the server's shutdown signal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Access;
use crate::config::Settings;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::runtime::ContainerRuntime;
use crate::session::SessionManager;
use crate::store::SessionStore;

pub struct App {
    pub settings: Arc<Settings>,
    pub sessions: Arc<SessionManager>,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub started: Instant,
    /// Cancelled on SIGTERM/SIGINT: connections send `reconnect` and close.
    pub shutdown: CancellationToken,
    /// Every task the server spawns, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Tokens, allowed names and origins, preview signing.
    pub access: Access,
    /// The rate limits.
    pub limits: Arc<Limits>,
    pub metrics: Metrics,
    /// File watches (`watch` over the WebSocket).
    pub watches: Arc<crate::watch::Hub>,
    next_conn: AtomicU64,
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(
        settings: Arc<Settings>,
        runtime: Arc<dyn ContainerRuntime>,
        store: Arc<dyn SessionStore>,
        fleet: Option<Arc<crate::fleet::Fleet>>,
    ) -> Result<AppState, String> {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let access = Access::new(&settings, fleet.as_ref().map(|f| f.secret()));
        let fleet_limits = fleet
            .as_ref()
            .map(|f| (f.connection(), format!("{}rl", f.prefix())));
        let watches = crate::watch::Hub::new(tasks.clone(), shutdown.clone());
        let sessions = Arc::new(SessionManager::new(
            Arc::clone(&settings),
            Arc::clone(&runtime),
            store,
            fleet,
            Arc::clone(&access.names),
            tasks.clone(),
            shutdown.clone(),
        )?);
        Ok(Arc::new(App {
            access,
            // In a fleet the limits are counted in Redis, once for all
            // gateways.
            limits: Arc::new(match &fleet_limits {
                Some((conn, prefix)) => {
                    Limits::shared(&settings.rate_limits(), conn.clone(), prefix.clone())
                }
                None => Limits::new(&settings.rate_limits()),
            }),
            settings,
            sessions,
            runtime,
            started: Instant::now(),
            shutdown,
            tasks,
            metrics: Metrics::default(),
            watches,
            next_conn: AtomicU64::new(1),
        }))
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}
