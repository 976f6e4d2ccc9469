//! The session table and every change to it.
//!
//! A session enters the table only once its container runs, and leaves it
//! only once its container is gone (or, for expiry, once removal has been
//! tried; a failed removal is remembered and retried by the sweep). So a
//! client never sees a session without a container, and no container outlives
//! its session for longer than one sweep.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::id::{is_well_formed, new_session_id};
use super::{now_millis, Owner, Session};
use crate::config::Settings;
use crate::error::ApiError;
use crate::image::{ImagePolicy, ImageRef};
use crate::runtime::spec::{
    LABEL_CREATED, LABEL_IMAGE, LABEL_INSTANCE, LABEL_OWNER, LABEL_SESSION,
};
use crate::runtime::{
    ContainerRuntime, ContainerSpec, ManagedContainer, PullProgress, RuntimeError,
};
use crate::terminal::Terminal;
use crate::workspace::WorkspaceRoots;

const MAX_ENV_VARS: usize = 64;
const MAX_ENV_KEY: usize = 128;
const MAX_ENV_VALUE: usize = 8 * 1024;
/// A stopped labelled container younger than this may be another server's
/// container being started; older ones are removed.
const STOPPED_GRACE_SECS: i64 = 60;

#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub image: Option<String>,
    pub workspace_dir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub cols: Option<u16>,
    pub rows: Option<u16>,
}

pub struct SessionManager {
    settings: Arc<Settings>,
    runtime: Arc<dyn ContainerRuntime>,
    images: ImagePolicy,
    roots: WorkspaceRoots,
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    /// Containers whose removal failed; the sweep tries again.
    orphans: Mutex<HashSet<String>>,
    /// Creates in flight per owner (see `reserve_slot`).
    creating: Mutex<HashMap<Owner, usize>>,
    /// Unix seconds at start-up: labelled containers older than this that we
    /// did not adopt are leftovers, not another server's live sessions.
    started: i64,
    tasks: TaskTracker,
    shutdown: CancellationToken,
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
            creating: Mutex::new(HashMap::new()),
            started: (now_millis() / 1000) as i64,
            tasks,
            shutdown,
        })
    }

    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
    }

    fn new_terminal(&self, session_id: &str, container_id: &str) -> Arc<Terminal> {
        Terminal::new(
            session_id,
            container_id,
            Arc::clone(&self.runtime),
            &self.settings.shell,
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
        let mut env = ContainerSpec::base_env();
        env.extend(validate_env(&req.env)?);

        let named = |e: RuntimeError| match e {
            RuntimeError::ImageNotFound(_) => {
                ApiError::creation(RuntimeError::ImageNotFound(image.raw.clone()))
            }
            other => ApiError::creation(other),
        };
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
        let labels = BTreeMap::from([
            (LABEL_SESSION.to_string(), id.clone()),
            (LABEL_OWNER.to_string(), owner.label().to_string()),
            (LABEL_IMAGE.to_string(), image.raw.clone()),
            (LABEL_CREATED.to_string(), created.to_string()),
            (LABEL_INSTANCE.to_string(), self.settings.instance.clone()),
        ]);
        let spec = ContainerSpec {
            image: image.normalized.clone(),
            labels,
            env,
            workspace,
            limits: self.settings.limits.clone(),
            network: self.settings.network.clone(),
        };
        let container_id = self.runtime.create_container(&spec).await.map_err(named)?;
        let session = self.insert(id, container_id, image.raw, owner.clone(), created);
        if let (Some(c), Some(r)) = (req.cols, req.rows) {
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
            return Err(ApiError::RateLimit(format!(
                "Session limit reached: {held} of {max} sessions in use; \
                 remove one (DELETE /api/containers/:sessionId) first"
            )));
        }
        *creating.entry(owner.clone()).or_default() += 1;
        Ok(CreatingSlot {
            manager: self,
            owner: owner.clone(),
        })
    }

    fn insert(
        &self,
        id: String,
        container_id: String,
        image: String,
        owner: Owner,
        created: i64,
    ) -> Arc<Session> {
        let session = Arc::new(Session {
            terminal: self.new_terminal(&id, &container_id),
            id: id.clone(),
            container_id,
            image,
            owner,
            created,
            last_activity_ms: now_millis().into(),
            preview_port: Mutex::new(None),
        });
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
            _ => Err(ApiError::session_not_found(id)),
        }
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

    pub fn count(&self) -> usize {
        self.sessions.read().unwrap().len()
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

    async fn forget(&self, session: &Arc<Session>, reason: &'static str) {
        let removed = {
            let mut map = self.sessions.write().unwrap();
            match map.get(&session.id) {
                Some(s) if Arc::ptr_eq(s, session) => map.remove(&session.id).is_some(),
                _ => false,
            }
        };
        if removed {
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

    /// Re-adopts this instance's running containers as sessions after a restart.
    pub async fn adopt(&self) -> Result<usize, RuntimeError> {
        let list = self.runtime.list_managed(&self.settings.instance).await?;
        let mut adopted = 0;
        for c in list {
            let sid = c.labels.get(LABEL_SESSION).cloned().unwrap_or_default();
            if !c.running || !is_well_formed(&sid) {
                self.remove_orphan(&c.id).await;
                continue;
            }
            if self.sessions.read().unwrap().contains_key(&sid) {
                continue;
            }
            let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
            let created = label(LABEL_CREATED).parse().unwrap_or(c.created);
            self.insert(
                sid.clone(),
                c.id.clone(),
                label(LABEL_IMAGE),
                Owner::from_label(&label(LABEL_OWNER)),
                created,
            );
            tracing::info!(session = %sid, container = %c.id, "session re-adopted");
            adopted += 1;
        }
        Ok(adopted)
    }

    async fn remove_orphan(&self, container_id: &str) {
        match self.runtime.remove_container(container_id).await {
            Ok(()) => {
                self.orphans.lock().unwrap().remove(container_id);
                tracing::info!(container = %container_id, "orphan container removed");
            }
            Err(e) => {
                tracing::warn!(container = %container_id, error = %e, "orphan container removal failed; will retry");
                self.orphans
                    .lock()
                    .unwrap()
                    .insert(container_id.to_string());
            }
        }
    }

    /// Removes expired sessions, sessions whose container vanished, and
    /// labelled containers that belong to no session.
    pub async fn sweep(&self) {
        let now = now_millis();
        let timeout = self.settings.session_timeout.as_millis() as u64;
        // Snapshot before listing: every container of this snapshot existed before the list.
        let mut snapshot = self.all();
        let mut live = Vec::with_capacity(snapshot.len());
        for s in snapshot.drain(..) {
            if s.idle_millis(now) > timeout && s.terminal.prune().await == 0 {
                tracing::info!(session = %s.id, "session expired");
                self.remove_orphan(&s.container_id).await;
                self.forget(&s, "Session expired").await;
            } else {
                live.push(s);
            }
        }
        let snapshot = live;
        let listed: Vec<ManagedContainer> =
            match self.runtime.list_managed(&self.settings.instance).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(error = %e, "sweep could not list containers");
                    return;
                }
            };
        let existing: HashSet<&str> = listed
            .iter()
            .filter(|c| c.running)
            .map(|c| c.id.as_str())
            .collect();
        for s in &snapshot {
            if !existing.contains(s.container_id.as_str()) {
                tracing::info!(session = %s.id, "container is gone; session dropped");
                self.remove_orphan(&s.container_id).await;
                self.forget(s, "Session expired").await;
            }
        }
        let known: HashSet<String> = self.all().iter().map(|s| s.container_id.clone()).collect();
        let orphans = self.orphans.lock().unwrap().clone();
        let now_secs = (now / 1000) as i64;
        for c in &listed {
            if known.contains(&c.id) {
                continue;
            }
            let leftover = c.created < self.started
                || orphans.contains(&c.id)
                || (!c.running && now_secs - c.created > STOPPED_GRACE_SECS);
            if leftover {
                self.remove_orphan(&c.id).await;
            }
        }
        // Orphans the engine no longer lists are gone.
        let listed_ids: HashSet<&str> = listed.iter().map(|c| c.id.as_str()).collect();
        self.orphans
            .lock()
            .unwrap()
            .retain(|id| listed_ids.contains(id.as_str()));
    }

    /// Adopts leftovers once the engine answers, then sweeps on every interval.
    pub fn spawn_background(self: &Arc<Self>) {
        let this = Arc::clone(self);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let mut retry = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = retry.tick() => {}
                }
                match this.adopt().await {
                    Ok(n) => {
                        tracing::info!(adopted = n, "start-up adoption done");
                        break;
                    }
                    Err(e) => tracing::debug!(error = %e, "adoption waits for the engine"),
                }
            }
            let mut tick = tokio::time::interval(this.settings.cleanup_interval);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => this.sweep().await,
                }
            }
        });
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
