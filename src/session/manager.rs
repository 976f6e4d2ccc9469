//! The session table and every change to it.
//!
//! A session enters the table only once its container runs and its record
//! is in the state store, and leaves it only once its container is gone
//! (or, for expiry, once removal has been tried; a failed removal is
//! remembered and retried by the sweep). So a client never sees a session
//! without a container, and no container outlives its session for longer
//! than one sweep.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pool::WarmPool;
use super::Session;
use crate::auth::{Names, Owner};
use crate::clock::{now_millis, now_secs};
use crate::config::Settings;
use crate::error::ApiError;
use crate::exec::Commands;
use crate::image::ImagePolicy;
use crate::protocol::ServerMessage;
use crate::runtime::ContainerRuntime;
use crate::store::{SessionRecord, SessionStore};
use crate::terminal::Terminal;
use crate::workspace::WorkspaceRoots;

pub struct SessionManager {
    pub(super) settings: Arc<Settings>,
    pub(super) runtime: Arc<dyn ContainerRuntime>,
    pub(super) store: Arc<dyn SessionStore>,
    pub(super) images: ImagePolicy,
    pub(super) roots: WorkspaceRoots,
    pub(super) sessions: RwLock<HashMap<String, Arc<Session>>>,
    /// Containers whose removal failed; the sweep tries again.
    pub(super) orphans: Mutex<HashSet<String>>,
    /// Running labelled containers that belonged to no session at the last
    /// sweep; still so at the next one, they are orphans (see `sweep`).
    pub(super) suspects: Mutex<HashSet<String>>,
    /// Creates in flight per owner (see `reserve_slot`).
    pub(super) creating: Mutex<HashMap<Owner, usize>>,
    /// Unix seconds at start-up: labelled containers older than this that we
    /// did not adopt are leftovers, not another server's live sessions.
    pub(super) started: i64,
    /// This process's mark on the containers it makes ([`LABEL_PROCESS`]).
    pub(super) process: String,
    pub(super) tasks: TaskTracker,
    pub(super) pool: WarmPool,
    /// Workspace slots for warm workspace sessions, when this server can
    /// make them (see `slot`).
    pub(super) slots: Option<Arc<super::slot::Slots>>,
    /// The warm pool's bounds on this machine.
    pub(super) plan: crate::config::pool::PoolPlan,
    /// Creates on the cold path in flight: the pool does not start
    /// refilling while any run, so it never slows a burst's cold creates.
    pub(super) cold_creates: std::sync::atomic::AtomicUsize,
    /// Sessions whose ports are being watched (see `ports`): the watches
    /// share one budget of polls per second between them.
    pub(super) port_watches: Arc<std::sync::atomic::AtomicUsize>,
    /// Session ids whose container is being created right now, so that
    /// adoption (which may run late, if the engine was down at start) does
    /// not mistake a half-made container for a leftover.
    pending: Mutex<HashSet<String>>,
    created_total: std::sync::atomic::AtomicU64,
    /// Sweeps completed since start (a metric; tests wait on it).
    pub(super) sweeps_total: std::sync::atomic::AtomicU64,
    /// Set once the containers of a previous run have been re-adopted; until
    /// then an unknown session may be one not restored yet.
    pub(super) restored: std::sync::atomic::AtomicBool,
    /// Held by the one adoption that runs at a time.
    pub(super) adopting: tokio::sync::Mutex<()>,
    pub(super) shutdown: CancellationToken,
    /// The server's names: a port's preview URL in `port_opened`.
    pub(super) names: Arc<Names>,
    /// The fleet this gateway belongs to, if any (`fleet`).
    pub(super) fleet: Option<Arc<crate::fleet::Fleet>>,
    /// In a fleet: the id of the engine this gateway makes containers on.
    pub(super) own_engine: std::sync::OnceLock<String>,
}

/// Sets the session's preview port and records it (see
/// [`SessionManager::set_preview_port`]).
pub(super) async fn record_preview_port(
    store: &dyn SessionStore,
    session: &Session,
    port: u16,
) -> Result<(), ApiError> {
    let _order = session.record_lock.lock().await;
    *session.preview_port.lock().unwrap() = Some(port);
    store.put(&session.record()).await.map_err(|e| {
        tracing::warn!(session = %session.id, error = %e, "could not record the preview port");
        ApiError::DockerDaemon("The preview port could not be recorded; try again shortly".into())
    })
}

/// Records that the session's removal has begun (or, `false`, was given
/// up). A store that cannot be written is logged: the removal goes on, as
/// it did before the mark existed.
async fn mark_removing(store: &dyn SessionStore, session: &Session, removing: bool) {
    let _order = session.record_lock.lock().await;
    session
        .removing
        .store(removing, std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = store.put(&session.record()).await {
        tracing::warn!(session = %session.id, error = %e, "could not record the removal");
    }
}

/// While the sessions of a previous run are not restored yet (the engine was
/// unreachable at start), a session the table lacks may still exist.
pub(super) fn not_restored_yet() -> ApiError {
    ApiError::DockerDaemon(
        "Docker daemon is not responding yet: sessions from before the restart are not restored; \
         try again shortly"
            .into(),
    )
}

impl SessionManager {
    pub fn new(
        settings: Arc<Settings>,
        runtime: Arc<dyn ContainerRuntime>,
        store: Arc<dyn SessionStore>,
        fleet: Option<Arc<crate::fleet::Fleet>>,
        names: Arc<Names>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<SessionManager, String> {
        let plan = settings.pool_plan(&crate::config::pool::Machine::detect());
        // Slots need the engine's machine and mount namespace, and root.
        let local = settings
            .docker_host
            .as_deref()
            .is_none_or(|h| h.starts_with("unix://"));
        // Not in a fleet: its gateways on one machine would share (and
        // sweep) one instance's slots.
        let slots = (plan.max > 0
            && fleet.is_none()
            && !settings.workspace_roots.is_empty()
            && local
            && rustix::process::geteuid().is_root())
        .then(|| {
            Arc::new(super::slot::Slots::new(super::slot::Slots::root(
                &settings.instance,
            )))
        });
        Ok(SessionManager {
            slots,
            images: ImagePolicy::new(&settings.allowed_images)?,
            roots: WorkspaceRoots::new(&settings.workspace_roots)?,
            settings,
            runtime,
            store,
            sessions: RwLock::new(HashMap::new()),
            orphans: Mutex::new(HashSet::new()),
            suspects: Mutex::new(HashSet::new()),
            creating: Mutex::new(HashMap::new()),
            started: now_secs(),
            // In a fleet, the gateway's id: the others tell its containers
            // from leftovers by it.
            process: fleet.as_ref().map_or_else(
                || format!("{:016x}", rand::random::<u64>()),
                |f| f.gateway.clone(),
            ),
            fleet,
            own_engine: Default::default(),
            tasks,
            shutdown,
            pool: WarmPool::default(),
            plan,
            cold_creates: Default::default(),
            port_watches: Default::default(),
            pending: Mutex::new(HashSet::new()),
            created_total: Default::default(),
            sweeps_total: Default::default(),
            restored: Default::default(),
            adopting: Default::default(),
            names,
        })
    }

    pub(super) fn new_terminal(
        &self,
        session_id: &str,
        container_id: &str,
        shell_env: Vec<String>,
    ) -> Arc<Terminal> {
        Terminal::new(
            session_id,
            container_id,
            Arc::clone(&self.runtime),
            &self.settings.shell,
            shell_env,
            self.tasks.clone(),
            self.shutdown.child_token(),
        )
    }

    /// Marks `id` as being created until the guard drops.
    pub(super) fn pending(&self, id: &str) -> PendingGuard<'_> {
        self.pending.lock().unwrap().insert(id.to_string());
        PendingGuard {
            set: &self.pending,
            id: id.to_string(),
        }
    }

    pub(super) fn is_pending(&self, id: &str) -> bool {
        self.pending.lock().unwrap().contains(id)
    }

    /// Whether sessions may use `image` (`--allowed-image`).
    pub fn image_allowed(&self, image: &crate::image::ImageRef) -> bool {
        self.images.allows(image)
    }

    /// Sets the port the session's preview forwards to, and records it in
    /// the state store before returning, so that a restart right after
    /// keeps it. Of two concurrent changes the later one is what is stored.
    pub async fn set_preview_port(&self, session: &Session, port: u16) -> Result<(), ApiError> {
        record_preview_port(&*self.store, session, port).await
    }

    /// Puts a session with what `record` says of it into the table; its
    /// event log starts with `state` (`created`, `restored`).
    pub(super) async fn insert(
        &self,
        record: SessionRecord,
        terminal: Arc<Terminal>,
        state: &'static str,
    ) -> Arc<Session> {
        let id = record.session_id;
        let ended = CancellationToken::new();
        let commands = Commands::new(
            &id,
            &record.container_id,
            Arc::clone(&self.runtime),
            Arc::clone(&terminal),
            self.tasks.clone(),
            ended.clone(),
        );
        let session = Arc::new(Session {
            terminal,
            commands,
            id: id.clone(),
            container_id: record.container_id,
            image: record.image,
            owner: Owner(record.owner),
            created: record.created,
            last_activity_ms: now_millis().into(),
            preview_port: Mutex::new(record.preview_port),
            removing: Default::default(),
            record_lock: Default::default(),
            ended,
            preview_tunnels: Arc::new(tokio::sync::Semaphore::new(super::PREVIEW_TUNNELS)),
            ports: Mutex::default(),
            engine: record.engine,
        });
        session
            .terminal
            .publish(&ServerMessage::Lifecycle {
                session_id: &session.id,
                state,
                reason: if state == "created" {
                    "Session created"
                } else {
                    "Session restored after a server restart"
                },
            })
            .await;
        if let Some(f) = &self.fleet {
            if let Err(e) = f.hold(&session.id).await {
                tracing::warn!(session = %session.id, error = %e, "could not take the session's lease; renewed later");
            }
        }
        self.watch_ports(&session);
        self.created_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sessions
            .write()
            .unwrap()
            .insert(id, Arc::clone(&session));
        session
    }

    /// The session if it exists and belongs to `owner`; otherwise 404, so an
    /// id of someone else's session reveals nothing.
    pub fn get(&self, id: &str, owner: &Owner) -> Result<Arc<Session>, ApiError> {
        let found = self.sessions.read().unwrap().get(id).cloned();
        match found {
            Some(s) if &s.owner == owner => {
                s.touch();
                Ok(s)
            }
            _ if !self.is_restored() => Err(not_restored_yet()),
            _ => Err(ApiError::session_not_found(id)),
        }
    }

    /// Whether the sessions of a previous run have been re-adopted.
    pub fn is_restored(&self) -> bool {
        self.restored.load(std::sync::atomic::Ordering::Acquire)
    }

    /// `list`, once the previous run's sessions are restored.
    pub async fn list_restored(&self, owner: &Owner) -> Result<Vec<Arc<Session>>, ApiError> {
        self.ensure_restored().await?;
        Ok(self.list(owner))
    }

    pub fn list(&self, owner: &Owner) -> Vec<Arc<Session>> {
        let mut v: Vec<_> = self
            .sessions
            .read()
            .unwrap()
            .values()
            .filter(|s| &s.owner == owner)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        v
    }

    pub fn sweeps_total(&self) -> u64 {
        self.sweeps_total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sessions created or re-adopted since start.
    pub fn created_total(&self) -> u64 {
        self.created_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn count(&self) -> usize {
        self.sessions.read().unwrap().len()
    }

    /// The session named `label`, whoever owns it: by exact id, else
    /// without regard to case (browsers lower-case host names) when exactly
    /// one id matches that way. Callers check ownership.
    pub fn find(&self, label: &str) -> Option<Arc<Session>> {
        let sessions = self.sessions.read().unwrap();
        if let Some(s) = sessions.get(label) {
            return Some(Arc::clone(s));
        }
        let mut matches = sessions
            .values()
            .filter(|s| s.id.eq_ignore_ascii_case(label));
        match (matches.next(), matches.next()) {
            (Some(s), None) => Some(Arc::clone(s)),
            _ => None,
        }
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.read().unwrap().values().cloned().collect()
    }

    /// Removes the session's container, then the session. If the engine
    /// cannot remove it, the session stays and the error is returned.
    pub async fn remove(&self, id: &str, owner: &Owner) -> Result<(), ApiError> {
        let session = self.get(id, owner)?;
        // Recorded first: a crash from here on finishes the removal at the
        // next start instead of bringing back a half-removed session.
        mark_removing(&*self.store, &session, true).await;
        if let Err(e) = self.runtime.remove_container(&session.container_id).await {
            // Nothing was removed: the session stays as it was.
            mark_removing(&*self.store, &session, false).await;
            return Err(ApiError::engine(e));
        }
        self.forget(&session, "Session removed").await;
        tracing::info!(session = %id, "session removed");
        Ok(())
    }

    /// Takes `session` out of the table if it is still the one there;
    /// whether it was.
    pub(super) fn take_out(&self, session: &Arc<Session>) -> bool {
        let mut map = self.sessions.write().unwrap();
        match map.get(&session.id) {
            Some(s) if Arc::ptr_eq(s, session) => map.remove(&session.id).is_some(),
            _ => false,
        }
    }

    /// Takes a session whose container is gone (or going) out of the table
    /// and the store, and tells its clients why.
    pub(super) async fn forget(&self, session: &Arc<Session>, reason: &'static str) {
        if self.take_out(session) {
            let state = if reason == "Session removed" {
                "removed"
            } else {
                "expired"
            };
            session
                .terminal
                .publish(&ServerMessage::Lifecycle {
                    session_id: &session.id,
                    state,
                    reason,
                })
                .await;
            session.ended.cancel();
            session.terminal.close(reason).await;
            if let Some(slots) = &self.slots {
                slots.release(&session.id);
            }
            // A record left behind (the store failing now) is dropped at the
            // next start, when no container answers to it.
            if let Err(e) = self.store.remove(&session.id).await {
                tracing::warn!(session = %session.id, error = %e, "could not forget the session's record");
            }
        }
    }

    /// Detaches a closing connection from every session.
    pub async fn detach_everywhere(&self, conn_id: u64) {
        for s in self.all() {
            if s.terminal.detach(conn_id).await && s.terminal.attached() == 0 {
                // The inactivity clock starts when the last client leaves.
                s.touch();
            }
        }
    }
}

pub(super) struct PendingGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap().remove(&self.id);
    }
}
