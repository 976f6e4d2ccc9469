//! The session table and every change to it.
//!
//! A session enters the table only once its container runs, and leaves it
//! only once its container is gone (or, for expiry, once removal has been
//! tried; a failed removal is remembered and retried by the sweep). So a
//! client never sees a session without a container, and no container outlives
//! its session for longer than one sweep.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::id::new_session_id;
use super::pool::{Pooled, WarmPool};
use super::record::{live_name, pool_name};
use super::{now_millis, Owner, Session};
use crate::config::Settings;
use crate::error::ApiError;
use crate::image::{ImagePolicy, ImageRef};
use crate::runtime::spec::{
    LABEL_CREATED, LABEL_IMAGE, LABEL_INSTANCE, LABEL_OWNER, LABEL_POOL, LABEL_SESSION,
};
use crate::runtime::{ContainerRuntime, ContainerSpec, PullProgress, RuntimeError};
use crate::terminal::Terminal;
use crate::workspace::WorkspaceRoots;

const MAX_ENV_VARS: usize = 64;
const MAX_ENV_KEY: usize = 128;
const MAX_ENV_VALUE: usize = 8 * 1024;
/// When a client at its session limit is told to try again: a session frees
/// up only when one is removed or expires.
const SESSION_CAP_RETRY_SECS: u64 = 10;

#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub image: Option<String>,
    pub workspace_dir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub cols: Option<u16>,
    pub rows: Option<u16>,
}

impl CreateRequest {
    /// The terminal size asked for; a missing dimension takes the default.
    fn size(&self) -> Option<(u16, u16)> {
        (self.cols.is_some() || self.rows.is_some())
            .then(|| (self.cols.unwrap_or(80), self.rows.unwrap_or(24)))
    }
}

pub struct SessionManager {
    pub(super) settings: Arc<Settings>,
    pub(super) runtime: Arc<dyn ContainerRuntime>,
    images: ImagePolicy,
    roots: WorkspaceRoots,
    pub(super) sessions: RwLock<HashMap<String, Arc<Session>>>,
    /// Containers whose removal failed; the sweep tries again.
    pub(super) orphans: Mutex<HashSet<String>>,
    /// Running labelled containers that belonged to no session at the last
    /// sweep; still so at the next one, they are orphans (see `sweep`).
    pub(super) suspects: Mutex<HashSet<String>>,
    /// Creates in flight per owner (see `reserve_slot`).
    creating: Mutex<HashMap<Owner, usize>>,
    /// Unix seconds at start-up: labelled containers older than this that we
    /// did not adopt are leftovers, not another server's live sessions.
    pub(super) started: i64,
    pub(super) tasks: TaskTracker,
    pub(super) pool: WarmPool,
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
    adopting: tokio::sync::Mutex<()>,
    pub(super) shutdown: CancellationToken,
}

/// While the sessions of a previous run are not restored yet (the engine was
/// unreachable at start), a session the table lacks may still exist.
fn not_restored_yet() -> ApiError {
    ApiError::DockerDaemon(
        "Docker daemon is not responding yet: sessions from before the restart are not restored; \
         try again shortly"
            .into(),
    )
}

pub fn validate_env(env: &BTreeMap<String, String>) -> Result<Vec<String>, ApiError> {
    if env.len() > MAX_ENV_VARS {
        return Err(ApiError::validation(format!(
            "env has {} variables; at most {MAX_ENV_VARS} are allowed",
            env.len()
        )));
    }
    env.iter()
        .map(|(k, v)| {
            let valid_key = !k.is_empty()
                && k.len() <= MAX_ENV_KEY
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_key {
                let shown: String = k.chars().take(MAX_ENV_KEY).collect();
                return Err(ApiError::validation(format!(
                    "Invalid env variable name '{shown}': use letters, digits and '_', not starting with a digit"
                )));
            }
            if v.len() > MAX_ENV_VALUE || v.contains('\0') {
                return Err(ApiError::validation(format!(
                    "Invalid value for env variable '{k}': at most {MAX_ENV_VALUE} bytes and no NUL"
                )));
            }
            Ok(format!("{k}={v}"))
        })
        .collect()
}

/// Releases a create's place when the create ends, however it ends.
struct CreatingSlot<'a> {
    manager: &'a SessionManager,
    owner: Owner,
}

impl Drop for CreatingSlot<'_> {
    fn drop(&mut self) {
        let mut creating = self.manager.creating.lock().unwrap();
        if let Some(n) = creating.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                creating.remove(&self.owner);
            }
        }
    }
}

impl SessionManager {
    pub fn new(
        settings: Arc<Settings>,
        runtime: Arc<dyn ContainerRuntime>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<SessionManager, String> {
        Ok(SessionManager {
            images: ImagePolicy::new(&settings.allowed_images)?,
            roots: WorkspaceRoots::new(&settings.workspace_roots)?,
            settings,
            runtime,
            sessions: RwLock::new(HashMap::new()),
            orphans: Mutex::new(HashSet::new()),
            suspects: Mutex::new(HashSet::new()),
            creating: Mutex::new(HashMap::new()),
            started: (now_millis() / 1000) as i64,
            tasks,
            shutdown,
            pool: WarmPool::default(),
            pending: Mutex::new(HashSet::new()),
            created_total: Default::default(),
            sweeps_total: Default::default(),
            restored: Default::default(),
            adopting: Default::default(),
        })
    }

    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
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

    /// Validates the request, makes sure the image is there (pulling it with
    /// progress), and starts a hardened container.
    pub async fn create(
        &self,
        req: CreateRequest,
        owner: &Owner,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<Arc<Session>, ApiError> {
        // The owner's session limit counts sessions not restored yet too.
        self.ensure_restored().await?;
        let _slot = self.reserve_slot(owner)?;
        let requested = req.image.as_deref().unwrap_or(&self.settings.default_image);
        let image = ImageRef::parse(requested).map_err(ApiError::Validation)?;
        if !self.images.allows(&image) {
            return Err(ApiError::validation(format!(
                "Image '{}' is not allowed on this server",
                image.raw
            )));
        }
        let workspace = req
            .workspace_dir
            .as_deref()
            .map(|d| self.roots.resolve(d))
            .transpose()?;
        let client_env = validate_env(&req.env)?;

        let named = |e: RuntimeError| match e {
            RuntimeError::ImageNotFound(_) => {
                ApiError::creation(RuntimeError::ImageNotFound(image.raw.clone()))
            }
            other => ApiError::creation(other),
        };
        if workspace.is_none() {
            if let Some(pooled) = self.pool.take(&image.normalized) {
                // The container says whose it is before anyone is told it
                // exists: a restart right after (or an engine that failed
                // the rename) must never take a handed-out session for an
                // unused pool container and remove it. A pooled container
                // that cannot be claimed (removed behind our back, engine
                // down) is dropped, and the request goes the cold way.
                let name = live_name(&pooled.session_id, owner, None);
                match self
                    .runtime
                    .rename_container(&pooled.container_id, &name)
                    .await
                {
                    Ok(()) => {
                        return Ok(self.hand_out(pooled, &image, owner, client_env, &req).await)
                    }
                    Err(e) => {
                        tracing::warn!(container = %pooled.container_id, error = %e, "could not claim a pooled container; discarding it");
                        self.discard_pooled(pooled);
                    }
                }
            }
        }
        if !self
            .runtime
            .image_present(&image.normalized)
            .await
            .map_err(named)?
        {
            self.runtime
                .pull_image(&image.normalized, progress)
                .await
                .map_err(named)?;
        }

        let id = new_session_id();
        let created = (now_millis() / 1000) as i64;
        let spec = self.container_spec(&id, &image, owner, client_env, workspace, created, false);
        let _pending = self.pending(&id);
        let container_id = self.runtime.create_container(&spec).await.map_err(named)?;
        let terminal = self.new_terminal(&id, &container_id, Vec::new());
        let session = self.insert(
            id,
            container_id,
            image.raw,
            owner.clone(),
            created,
            terminal,
        );
        if let Some((c, r)) = req.size() {
            session.terminal.set_size(c, r);
        }
        tracing::info!(session = %session.id, container = %session.container_id, image = %session.image, "session created");
        Ok(session)
    }

    /// Holds one of `owner`'s `--max-sessions-per-owner` places while a
    /// session is being created, so concurrent creates cannot overshoot.
    fn reserve_slot(&self, owner: &Owner) -> Result<CreatingSlot<'_>, ApiError> {
        let mut creating = self.creating.lock().unwrap();
        let pending = creating.get(owner).copied().unwrap_or(0);
        let max = self.settings.max_sessions_per_owner;
        let held = self.list(owner).len() + pending;
        if held >= max {
            return Err(ApiError::AtCapacity {
                message: format!(
                    "Session limit reached: {held} of {max} sessions in use; \
                     remove one (DELETE /api/containers/:sessionId) first"
                ),
                limit: u32::try_from(max).unwrap_or(u32::MAX),
                retry_after_secs: SESSION_CAP_RETRY_SECS,
            });
        }
        *creating.entry(owner.clone()).or_default() += 1;
        Ok(CreatingSlot {
            manager: self,
            owner: owner.clone(),
        })
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

    /// The one place a session container's spec is made, for the cold path
    /// and the warm pool alike, so both get identical hardening.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn container_spec(
        &self,
        id: &str,
        image: &ImageRef,
        owner: &Owner,
        client_env: Vec<String>,
        workspace: Option<std::path::PathBuf>,
        created: i64,
        pooled: bool,
    ) -> ContainerSpec {
        let mut labels = BTreeMap::from([
            (LABEL_SESSION.to_string(), id.to_string()),
            (LABEL_OWNER.to_string(), owner.label().to_string()),
            (LABEL_IMAGE.to_string(), image.raw.clone()),
            (LABEL_CREATED.to_string(), created.to_string()),
            (LABEL_INSTANCE.to_string(), self.settings.instance.clone()),
        ]);
        if pooled {
            labels.insert(LABEL_POOL.to_string(), "1".to_string());
        }
        let mut env = ContainerSpec::base_env();
        env.extend(client_env);
        ContainerSpec {
            name: pooled.then(|| pool_name(id)),
            image: image.normalized.clone(),
            labels,
            env,
            workspace,
            limits: self.settings.limits.clone(),
            network: self.settings.network.clone(),
        }
    }

    /// Turns a pooled container into the caller's session. The rename that
    /// records the owner runs in the background: it is only needed if the
    /// server restarts, and it must not delay the shell.
    async fn hand_out(
        &self,
        pooled: Pooled,
        image: &ImageRef,
        owner: &Owner,
        client_env: Vec<String>,
        req: &CreateRequest,
    ) -> Arc<Session> {
        let created = (now_millis() / 1000) as i64;
        // The pooled shell started without the client's env; one that needs
        // it gets a fresh shell (still in the warm container).
        let terminal = if client_env.is_empty() {
            pooled.terminal
        } else {
            pooled.terminal.close("Session restarted").await;
            self.new_terminal(&pooled.session_id, &pooled.container_id, client_env)
        };
        if let Some((c, r)) = req.size() {
            if let Err(e) = terminal.resize(c, r).await {
                tracing::debug!(error = %e, "resizing a pooled shell failed");
            }
        }
        let session = self.insert(
            pooled.session_id.clone(),
            pooled.container_id.clone(),
            image.raw.clone(),
            owner.clone(),
            created,
            terminal,
        );
        tracing::info!(session = %session.id, container = %session.container_id, image = %session.image, "session created from the warm pool");
        session
    }

    /// A pooled container that will not be handed out: its shell closed and
    /// the container removed, in the background (a failure is left to the
    /// sweep, which removes containers no session owns).
    fn discard_pooled(&self, pooled: Pooled) {
        let runtime = Arc::clone(&self.runtime);
        self.tasks.spawn(async move {
            pooled.terminal.close("Session removed").await;
            if let Err(e) = runtime.remove_container(&pooled.container_id).await {
                tracing::debug!(container = %pooled.container_id, error = %e, "could not remove a discarded pooled container");
            }
        });
    }

    /// Sets the port the session's preview forwards to, and records it on
    /// the container so that it survives a server restart.
    pub fn set_preview_port(&self, session: &Arc<Session>, port: u16) {
        session.set_preview_port(port);
        self.record(session);
    }

    /// Writes what the session must keep across a restart into its
    /// container's name (see `record`), in the background: it is only read
    /// at the next start, and must not delay the caller.
    fn record(&self, session: &Arc<Session>) {
        let runtime = Arc::clone(&self.runtime);
        let session = Arc::clone(session);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let _order = session.record_lock.lock().await;
            // Tried again (the latest state each time) until it lands or the
            // session ends: an engine hiccup must not lose the preview port.
            let mut wait = Duration::from_secs(1);
            loop {
                let name = live_name(&session.id, &session.owner, session.preview_port());
                let Err(e) = runtime.rename_container(&session.container_id, &name).await else {
                    return;
                };
                tracing::warn!(session = %session.id, error = %e, "could not record the session on its container; retrying in {wait:?}");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = session.ended.cancelled() => return,
                    _ = shutdown.cancelled() => return,
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        });
    }

    pub(super) fn insert(
        &self,
        id: String,
        container_id: String,
        image: String,
        owner: Owner,
        created: i64,
        terminal: Arc<Terminal>,
    ) -> Arc<Session> {
        let session = Arc::new(Session {
            terminal,
            id: id.clone(),
            container_id,
            image,
            owner,
            created,
            last_activity_ms: now_millis().into(),
            preview_port: Mutex::new(None),
            record_lock: Default::default(),
            ended: CancellationToken::new(),
            preview_tunnels: Arc::new(tokio::sync::Semaphore::new(super::PREVIEW_TUNNELS)),
        });
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

    /// Restores the previous run's sessions now if that has not happened
    /// yet (the engine was down at start and the background retry has not
    /// come round): a client that finds the engine back need not wait for it.
    pub async fn ensure_restored(&self) -> Result<(), ApiError> {
        if self.is_restored() {
            return Ok(());
        }
        let _one_at_a_time = self.adopting.lock().await;
        if self.is_restored() {
            return Ok(());
        }
        match self.adopt().await {
            Ok(n) => {
                tracing::info!(adopted = n, "start-up adoption done");
                self.restored
                    .store(true, std::sync::atomic::Ordering::Release);
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "adoption waits for the engine");
                Err(not_restored_yet())
            }
        }
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
        self.runtime
            .remove_container(&session.container_id)
            .await
            .map_err(ApiError::engine)?;
        self.forget(&session, "Session removed").await;
        tracing::info!(session = %id, "session removed");
        Ok(())
    }

    pub(super) async fn forget(&self, session: &Arc<Session>, reason: &'static str) {
        let removed = {
            let mut map = self.sessions.write().unwrap();
            match map.get(&session.id) {
                Some(s) if Arc::ptr_eq(s, session) => map.remove(&session.id).is_some(),
                _ => false,
            }
        };
        if removed {
            session.ended.cancel();
            session.terminal.close(reason).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_checked() {
        let ok = BTreeMap::from([
            ("NODE_ENV".to_string(), "dev".to_string()),
            ("_X1".to_string(), "".to_string()),
        ]);
        assert_eq!(validate_env(&ok).unwrap(), vec!["NODE_ENV=dev", "_X1="]);
        for bad in ["1X", "A-B", "", "A=B", "A B"] {
            let e =
                validate_env(&BTreeMap::from([(bad.to_string(), "v".to_string())])).unwrap_err();
            assert_eq!(e.name(), "ValidationError", "{bad}");
        }
        let nul = BTreeMap::from([("A".to_string(), "a\0b".to_string())]);
        assert!(validate_env(&nul).is_err());
        let many: BTreeMap<String, String> =
            (0..65).map(|i| (format!("V{i}"), String::new())).collect();
        assert!(validate_env(&many)
            .unwrap_err()
            .to_string()
            .contains("at most 64"));
    }
}
