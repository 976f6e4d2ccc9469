//! Keeping the warm pool: one task that makes pooled containers ahead of
//! demand and removes the ones demand no longer needs.
//!
//! Per pooled image the pool wants `min` ready containers, plus one for each
//! create of that image within `--warm-pool-idle`, up to `max` (see
//! [`PoolPlan::target`]). So a burst raises the target, and it falls back
//! once the burst's creates are that old; surplus containers are removed,
//! oldest first. A refill makes up to `parallel` containers at once (a
//! burst that drained the pool is not made good one container at a time),
//! starts none while a cold create runs (a pool being refilled must not
//! slow the creates it could not serve), and stops before the waiting
//! containers would hold more than the plan's memory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::id::new_session_id;
use super::manager::SessionManager;
use super::pool::Pooled;
use crate::auth::Owner;
use crate::clock::now_secs;
use crate::image::ImageRef;
use crate::runtime::RuntimeError;

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Why a pooled container was not added.
enum NotMade {
    /// The engine failed: retried with back-off.
    Engine(RuntimeError),
    /// It would have taken the pool past its memory: not retried until the
    /// pool changes.
    NoRoom { measured: u64 },
    /// The server is stopping.
    Closed,
}

/// Releases a cold create's hold on the refill when the create ends.
pub(super) struct ColdCreate<'a>(&'a SessionManager);

impl Drop for ColdCreate<'_> {
    fn drop(&mut self) {
        if self.0.cold_creates.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.pool.refill.notify_one();
        }
    }
}

impl SessionManager {
    /// Marks a create on the cold path until the guard drops.
    pub(super) fn cold_create(&self) -> ColdCreate<'_> {
        self.cold_creates.fetch_add(1, Ordering::AcqRel);
        ColdCreate(self)
    }

    /// The refill task: runs until shutdown, then lets the containers it
    /// is making finish (each removes itself, the pool being closed).
    pub(super) async fn keep_pool(self: Arc<Self>) {
        let plain = self
            .settings
            .warm_pool_images
            .iter()
            .filter_map(|i| ImageRef::parse(i).ok());
        // With slots, each image has a second pool: containers whose
        // workspace comes at hand-out.
        let kinds: Vec<(ImageRef, bool)> = plain
            .flat_map(|i| {
                let slotted = self.slots.is_some().then(|| (i.clone(), true));
                std::iter::once((i, false)).chain(slotted)
            })
            .collect();
        let keys: Vec<String> = kinds
            .iter()
            .map(|(i, ws)| super::pool::key(&i.normalized, *ws))
            .collect();
        for key in &keys {
            self.pool.register(key);
        }
        let mut making: JoinSet<(usize, Result<(), NotMade>)> = JoinSet::new();
        let mut in_flight = vec![0usize; kinds.len()];
        let mut backoff = RETRY_MIN;
        let mut retry_at: Option<Instant> = None;
        // Set when a container did not fit: no growth until the pool changes.
        let mut no_room = false;
        loop {
            let now = Instant::now();
            let mut wake = retry_at.filter(|t| *t > now);
            let may_grow =
                wake.is_none() && !no_room && self.cold_creates.load(Ordering::Acquire) == 0;
            for (i, (image, workspace)) in kinds.iter().enumerate() {
                let key = &keys[i];
                let (recent, expires) = self.pool.recent(key, self.plan.idle, now.into_std());
                if let Some(t) = expires {
                    let t = Instant::from_std(t);
                    wake = Some(wake.map_or(t, |w| w.min(t)));
                }
                let target = self.plan.target(recent);
                while let Some(p) = self.pool.surplus(key, target) {
                    tracing::debug!(pool = %key, target, "warm pool shrinks");
                    self.discard_pooled(p);
                }
                while may_grow
                    && self.pool.ready(key) + in_flight[i] < target
                    && making.len() < self.plan.parallel
                    && self.pool.memory() + self.pool.largest() <= self.plan.memory
                {
                    in_flight[i] += 1;
                    let this = Arc::clone(&self);
                    let (image, workspace) = (image.clone(), *workspace);
                    making.spawn(async move { (i, this.make_pooled(&image, workspace).await) });
                }
            }
            let wake_at = wake.unwrap_or_else(|| now + Duration::from_secs(3600));
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                Some(done) = making.join_next(), if !making.is_empty() => {
                    let Ok((i, made)) = done else { continue };
                    in_flight[i] -= 1;
                    match made {
                        Ok(()) => {
                            backoff = RETRY_MIN;
                            retry_at = None;
                        }
                        Err(NotMade::Engine(e)) => {
                            // Said once per streak: an image that cannot be
                            // had (a machine without a registry) would
                            // otherwise fill the log every 30 s.
                            if backoff == RETRY_MIN {
                                tracing::warn!(image = %kinds[i].0.raw, error = %e, "warm pool refill failed; retrying with back-off");
                            } else {
                                tracing::debug!(image = %kinds[i].0.raw, error = %e, "warm pool refill failed again");
                            }
                            retry_at = Some(Instant::now() + backoff);
                            backoff = (backoff * 2).min(RETRY_MAX);
                        }
                        Err(NotMade::NoRoom { measured }) => {
                            tracing::info!(image = %kinds[i].0.raw, measured, cap = self.plan.memory, "warm pool at its memory cap");
                            no_room = true;
                        }
                        Err(NotMade::Closed) => {}
                    }
                }
                _ = self.pool.refill.notified() => no_room = false,
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
        while making.join_next().await.is_some() {}
    }

    /// Makes one pooled container of `image`, its shell started, measures
    /// it, and adds it to the pool if it fits.
    async fn make_pooled(&self, image: &ImageRef, workspace: bool) -> Result<(), NotMade> {
        if !self
            .runtime
            .image_present(&image.normalized)
            .await
            .map_err(NotMade::Engine)?
        {
            let mut quiet = |_| {};
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(NotMade::Closed),
                r = self.runtime.pull_image(&image.normalized, &mut quiet) => r.map_err(NotMade::Engine)?,
            }
        }
        let id = new_session_id();
        let _pending = self.pending(&id);
        let slot = match (&self.slots, workspace) {
            (Some(slots), true) => Some(slots.prepare(&id).map_err(|e| {
                NotMade::Engine(RuntimeError::Engine(format!("workspace slot: {e}")))
            })?),
            _ => None,
        };
        let spec = self.container_spec(
            &id,
            image,
            &Owner::default(),
            Vec::new(),
            slot,
            now_secs(),
            true,
        );
        let container_id = match self.runtime.create_container(&spec).await {
            Ok(c) => c,
            Err(e) => {
                if let Some(slots) = &self.slots {
                    slots.release(&id);
                }
                return Err(NotMade::Engine(e));
            }
        };
        // The shell starts now too, so a hand-out costs no engine call at all;
        // its prompt waits in the replay buffer for the session's creator.
        let terminal = self.new_terminal(&id, &container_id, Vec::new());
        let pooled = Pooled {
            container_id,
            session_id: id,
            terminal,
            memory: 0,
        };
        if let Err(e) = pooled.terminal.warm_up().await {
            self.discard_pooled(pooled);
            return Err(NotMade::Engine(RuntimeError::Engine(e.to_string())));
        }
        let measured = match self.runtime.container_memory(&pooled.container_id).await {
            Ok(m) => m.unwrap_or(0),
            Err(e) => {
                self.discard_pooled(pooled);
                return Err(NotMade::Engine(e));
            }
        };
        if self.pool.memory() + measured > self.plan.memory {
            self.discard_pooled(pooled);
            return Err(NotMade::NoRoom { measured });
        }
        let pooled = Pooled {
            memory: measured,
            ..pooled
        };
        let key = super::pool::key(&image.normalized, workspace);
        self.pool.put(&key, pooled).map_err(|p| {
            // Closed (shutdown) while it was being made.
            self.discard_pooled(p);
            NotMade::Closed
        })
    }

    /// Removes the containers still waiting in the pool, and closes it (at
    /// shutdown).
    pub async fn drain_pool(&self) {
        let waiting = self.pool.drain();
        let removals = waiting.iter().map(|p| async {
            p.terminal.close("Session removed").await;
            self.runtime.remove_container(&p.container_id).await?;
            if let Some(slots) = &self.slots {
                slots.release(&p.session_id);
            }
            Ok::<_, RuntimeError>(())
        });
        for r in futures_util::future::join_all(removals).await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not remove a pooled container; the next start will");
            }
        }
    }

    /// Releases the slots no session, waiting container or create in
    /// flight uses (a crash's leftovers, or a release that failed).
    pub(super) fn release_stale_slots(&self) {
        let Some(slots) = &self.slots else { return };
        for id in slots.existing() {
            let used = self.is_pending(&id)
                || self.pool.holds_session(&id)
                || self.sessions.read().unwrap().contains_key(&id);
            if !used {
                tracing::info!(session = %id, "releasing a workspace slot no container uses");
                slots.release(&id);
            }
        }
    }

    pub fn pool_ready(&self) -> usize {
        self.pool.total()
    }

    /// Memory the waiting pooled containers hold, as last measured.
    pub fn pool_memory(&self) -> u64 {
        self.pool.memory()
    }
}
