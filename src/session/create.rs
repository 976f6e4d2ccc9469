//! The create pipeline: checks, then a warm container if one is waiting,
//! else the image (pulled with progress when missing) and a fresh hardened
//! container; the session is recorded in the state store before anyone is
//! told it exists.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::id::new_session_id;
use super::manager::SessionManager;
use super::pool::Pooled;
use super::Session;
use crate::auth::Owner;
use crate::clock::now_secs;
use crate::error::ApiError;
use crate::image::ImageRef;
use crate::protocol::client::Create;
use crate::protocol::validate::{env_pairs, optional_dims};
use crate::runtime::spec::{
    LABEL_CREATED, LABEL_IMAGE, LABEL_INSTANCE, LABEL_OWNER, LABEL_POOL, LABEL_PROCESS,
    LABEL_SESSION,
};
use crate::runtime::{ContainerSpec, PullProgress, RuntimeError};
use crate::store::SessionRecord;

/// When a client at its session limit is told to try again: a session frees
/// up only when one is removed or expires.
const SESSION_CAP_RETRY_SECS: u64 = 10;

/// A create's engine failure, naming the image as the client wrote it.
fn named(image: &ImageRef, e: RuntimeError) -> ApiError {
    ApiError::creation(match e {
        RuntimeError::ImageNotFound(_) => RuntimeError::ImageNotFound(image.raw.clone()),
        RuntimeError::PullFailed { why, .. } => RuntimeError::PullFailed {
            image: image.raw.clone(),
            why,
        },
        other => other,
    })
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
    /// Checks what a create can be refused for without the engine: the
    /// terminal size, the image (well formed and allowed), the workspace
    /// directory and the environment. A create that names an existing
    /// session (a retry) is checked too: an invalid request is refused
    /// whatever it names.
    pub fn check(&self, req: &Create) -> Result<(), ApiError> {
        optional_dims(req.cols, req.rows)?;
        self.allowed_image(req)?;
        if let Some(dir) = req.workspace_dir.as_deref() {
            self.roots.resolve(dir)?;
        }
        env_pairs(&req.env.clone().unwrap_or_default())?;
        Ok(())
    }

    /// The image the request names (or the default), when it is well
    /// formed and allowed (--allowed-image).
    fn allowed_image(&self, req: &Create) -> Result<ImageRef, ApiError> {
        let requested = req.image.as_deref().unwrap_or(&self.settings.default_image);
        let image = ImageRef::parse(requested).map_err(ApiError::Validation)?;
        if !self.images.allows(&image) {
            return Err(ApiError::validation(format!(
                "Image '{}' is not allowed on this server",
                image.raw
            )));
        }
        Ok(image)
    }

    /// Validates the request, makes sure the image is there (pulling it with
    /// progress), and starts a hardened container.
    pub async fn create(
        &self,
        req: Create,
        owner: &Owner,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<Arc<Session>, ApiError> {
        let size = optional_dims(req.cols, req.rows)?;
        // In a fleet, a session the others cannot find is no session: no
        // create while the fleet's store does not answer.
        if let Some(f) = &self.fleet {
            f.ping().await.map_err(|e| {
                tracing::warn!(error = %e, "create refused: the fleet's store is unreachable");
                ApiError::DockerDaemon(
                    "The fleet's store (Redis) is unreachable, so no session can be created \
                     now; try again shortly"
                        .into(),
                )
            })?;
        }
        // The owner's session limit counts sessions not restored yet too.
        self.ensure_restored().await?;
        let _slot = self.reserve_slot(owner)?;
        let mut image = self.allowed_image(&req)?;
        let workspace = req
            .workspace_dir
            .as_deref()
            .map(|d| self.roots.resolve(d))
            .transpose()?;
        let client_env = env_pairs(&req.env.clone().unwrap_or_default())?;

        let key = super::pool::key(&image.normalized, workspace.is_some());
        if let Some(pooled) = self.pool.take(&key) {
            match self
                .hand_out(
                    pooled,
                    &image,
                    workspace.as_deref(),
                    owner,
                    client_env.clone(),
                    size,
                )
                .await
            {
                Ok(session) => return Ok(session),
                Err(pooled) => self.discard_pooled(pooled),
            }
        }
        let _cold = self.cold_create();
        if let Err(e) = self.ensure_image(&image, progress).await {
            // A create that named no image gets the local fallback (built
            // from Debian's packages by scripts/run) when the default
            // image cannot be had: a newcomer's first session works
            // without a registry.
            let fallback = self.fallback_for(&req, &e).await;
            let Some(fallback) = fallback else {
                return Err(e);
            };
            tracing::warn!(default = %image.raw, fallback = %fallback.raw, error = %e, "the default image cannot be had; using the fallback image");
            image = fallback;
        }
        let id = new_session_id();
        let created = now_secs();
        let spec = self.container_spec(&id, &image, owner, client_env, workspace, created, false);
        let _pending = self.pending(&id);
        let container_id = self
            .runtime
            .create_container(&spec)
            .await
            .map_err(|e| named(&image, e))?;
        let terminal = self.new_terminal(&id, &container_id, Vec::new());
        if let Some((c, r)) = size {
            terminal.set_size(c, r);
        }
        let session = self
            .insert(
                SessionRecord {
                    session_id: id,
                    container_id,
                    owner: owner.0.clone(),
                    image: image.raw,
                    created,
                    preview_port: None,
                    removing: false,
                    engine: self.engine_of_new().await,
                },
                terminal,
                "created",
            )
            .await;
        // The labels already say whose it is, so a lost record loses
        // nothing; still, the record is what a restart reads first.
        if let Err(e) = self.store.put(&session.record()).await {
            tracing::warn!(session = %session.id, error = %e, "could not record the new session");
        }
        tracing::info!(session = %session.id, container = %session.container_id, image = %session.image, "session created");
        Ok(session)
    }

    /// Makes sure `image` is on the engine, pulling it (with progress) when
    /// it is not; errors name the image as the client wrote it.
    async fn ensure_image(
        &self,
        image: &ImageRef,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<(), ApiError> {
        if !self
            .runtime
            .image_present(&image.normalized)
            .await
            .map_err(|e| named(image, e))?
        {
            self.runtime
                .pull_image(&image.normalized, progress)
                .await
                .map_err(|e| named(image, e))?;
        }
        Ok(())
    }

    /// The fallback image for a create that named none, when the default
    /// could not be had (not found, or its registry out of reach) and the
    /// fallback is on the engine and allowed.
    async fn fallback_for(&self, req: &Create, failure: &ApiError) -> Option<ImageRef> {
        let fallback = self.settings.fallback_image.as_deref()?;
        if req.image.is_some() || !matches!(failure, ApiError::ContainerCreation(_)) {
            return None;
        }
        let image = ImageRef::parse(fallback).ok()?;
        let present = self.runtime.image_present(&image.normalized).await.ok()?;
        (present && self.images.allows(&image)).then_some(image)
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
            (LABEL_PROCESS.to_string(), self.process.clone()),
        ]);
        if pooled {
            labels.insert(LABEL_POOL.to_string(), "1".to_string());
        }
        let mut env = ContainerSpec::base_env();
        env.extend(client_env);
        ContainerSpec {
            name: format!("studio-{id}"),
            image: image.normalized.clone(),
            labels,
            env,
            // A pooled container with a workspace binds its slot, which
            // receives the session's workspace at hand-out.
            workspace_slot: pooled && workspace.is_some(),
            workspace,
            limits: self.settings.container_limits(),
            network: self.settings.network.clone(),
        }
    }

    /// Turns a pooled container into the caller's session, if it still runs.
    /// Its record (which
    /// names the owner: the container's labels say nobody) is written before
    /// anyone is told it exists: a restart right after must never take a
    /// handed-out session for an unused pool container and remove it. One
    /// that cannot be recorded goes back to the caller as `Err`, to be
    /// discarded; the request then takes the cold path.
    #[allow(clippy::too_many_arguments)]
    async fn hand_out(
        &self,
        pooled: Pooled,
        image: &ImageRef,
        workspace: Option<&std::path::Path>,
        owner: &Owner,
        client_env: Vec<String>,
        size: Option<(u16, u16)>,
    ) -> Result<Arc<Session>, Pooled> {
        // Neither in the pool nor a session until `insert`: pending keeps
        // the sweep off its container and its slot meanwhile.
        let _pending = self.pending(&pooled.session_id);
        // Removed or stopped behind our back while it waited (its shell may
        // not have noticed yet): never handed out.
        match self.runtime.container_status(&pooled.container_id).await {
            Ok(Some(crate::runtime::ContainerStatus::Running)) => {}
            other => {
                tracing::warn!(container = %pooled.container_id, state = ?other, "a pooled container is not running; discarding it");
                return Err(pooled);
            }
        }
        if let Some(dir) = workspace {
            if let Err(why) = self.attach_workspace(&pooled, dir).await {
                tracing::warn!(container = %pooled.container_id, error = %why, "a warm container could not get its workspace; discarding it");
                return Err(pooled);
            }
        }
        let created = now_secs();
        let record = SessionRecord {
            session_id: pooled.session_id.clone(),
            container_id: pooled.container_id.clone(),
            owner: owner.0.clone(),
            image: image.raw.clone(),
            created,
            preview_port: None,
            removing: false,
            engine: self.engine_of_new().await,
        };
        if let Err(e) = self.store.put(&record).await {
            tracing::warn!(container = %pooled.container_id, error = %e, "could not record a pooled container's owner; discarding it");
            return Err(pooled);
        }
        // The pooled shell started without the client's env, and in the
        // slot before the workspace came over it; one that needs either
        // gets a fresh shell (still in the warm container).
        let terminal = if client_env.is_empty() && workspace.is_none() {
            pooled.terminal
        } else {
            pooled.terminal.close("Session restarted").await;
            self.new_terminal(&pooled.session_id, &pooled.container_id, client_env)
        };
        if let Some((c, r)) = size {
            if let Err(e) = terminal.resize(c, r).await {
                tracing::debug!(error = %e, "resizing a pooled shell failed");
            }
        }
        let session = self.insert(record, terminal, "created").await;
        tracing::info!(session = %session.id, container = %session.container_id, image = %session.image, "session created from the warm pool");
        Ok(session)
    }

    /// Mounts `dir` on the pooled container's slot and checks that the
    /// container sees it at `/workspace`.
    async fn attach_workspace(&self, pooled: &Pooled, dir: &std::path::Path) -> Result<(), String> {
        let slots = self.slots.as_ref().ok_or("no workspace slots")?;
        let pid = self
            .runtime
            .container_pid(&pooled.container_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("its init process is not known")?;
        slots
            .attach(&pooled.session_id, dir)
            .map_err(|e| format!("mounting the workspace: {e}"))?;
        if !super::slot::Slots::sees(pid, dir) {
            return Err("the container does not see the workspace it was given".into());
        }
        Ok(())
    }

    /// A pooled container that will not be handed out: its shell closed and
    /// the container removed, then its slot if it has one, in the
    /// background (a failure is left to the sweep, which removes containers
    /// no session owns, and slots no container uses).
    pub(super) fn discard_pooled(self: &SessionManager, pooled: Pooled) {
        let runtime = Arc::clone(&self.runtime);
        let slots = self.slots.clone();
        self.tasks.spawn(async move {
            pooled.terminal.close("Session removed").await;
            if let Err(e) = runtime.remove_container(&pooled.container_id).await {
                tracing::debug!(container = %pooled.container_id, error = %e, "could not remove a discarded pooled container");
                return;
            }
            if let Some(slots) = slots {
                slots.release(&pooled.session_id);
            }
        });
    }
}
