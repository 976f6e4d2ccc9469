//! Keeping the session table true to the engine over time: re-adoption at
//! start-up and the periodic sweep (expiry, vanished containers, orphans).

use std::collections::HashSet;
use std::sync::Arc;

use std::collections::HashMap;

use super::id::is_well_formed;
use super::manager::{not_restored_yet, SessionManager};
use crate::auth::Owner;
use crate::clock::now_millis;
use crate::error::ApiError;
use crate::runtime::spec::{
    LABEL_CREATED, LABEL_IMAGE, LABEL_OWNER, LABEL_POOL, LABEL_PROCESS, LABEL_SESSION,
};
use crate::runtime::{ManagedContainer, RuntimeError};
use crate::store::SessionRecord;

/// A stopped labelled container younger than this may be another server's
/// container being started; older ones are removed.
const STOPPED_GRACE_SECS: i64 = 60;

impl SessionManager {
    /// Re-adopts this instance's session containers after a restart, with
    /// what the state store recorded of each (owner, preview port); records
    /// whose container is gone are dropped.
    pub async fn adopt(&self) -> Result<usize, RuntimeError> {
        let list = self.runtime.list_managed(&self.settings.instance).await?;
        let mut records: HashMap<String, SessionRecord> = match self.store.list().await {
            Ok(r) => r.into_iter().map(|r| (r.session_id.clone(), r)).collect(),
            // Without the records a pooled session's owner is unknown:
            // adopting now could remove it as an unused pool container.
            Err(e) => return Err(RuntimeError::Unavailable(e.to_string())),
        };
        // In a fleet, the containers of other live gateways are theirs
        // (sessions they hold, pools, creates under way).
        let live = match &self.fleet {
            Some(f) => f
                .live_gateways()
                .await
                .map_err(|e| RuntimeError::Unavailable(e.to_string()))?,
            None => Default::default(),
        };
        let mut adopted = 0;
        for c in list {
            let sid = c.labels.get(LABEL_SESSION).cloned().unwrap_or_default();
            let record = records.remove(&sid);
            // Containers this server is making or has made are not leftovers,
            // even if listed before they started. Pending is checked first: it
            // is cleared only after the session (or pool entry) exists.
            if self.is_pending(&sid)
                || self.sessions.read().unwrap().contains_key(&sid)
                || self.pool.contains(&c.id)
            {
                continue;
            }
            if let Some(f) = &self.fleet {
                let theirs = c
                    .labels
                    .get(LABEL_PROCESS)
                    .is_some_and(|p| p != &self.process && live.contains(p));
                if record.is_none() && theirs {
                    continue;
                }
                if is_well_formed(&sid) && c.status.holds_a_session() {
                    match f.claim(&sid).await {
                        Ok(true) => {}
                        // Another gateway holds it.
                        Ok(false) => continue,
                        Err(e) => return Err(RuntimeError::Unavailable(e.to_string())),
                    }
                }
            }
            // A stopped session container (an engine or host restart stops
            // them all) is adopted too: it starts again when a client comes
            // back; so is a paused or restarting one, which holds the user's
            // work just the same. One that never ran is a create that failed
            // half-way.
            if !c.status.holds_a_session() || !is_well_formed(&sid) {
                self.remove_orphan(&c.id).await;
                continue;
            }
            let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
            let record = record.filter(|r| r.container_id == c.id);
            // A removal a crash cut short: finish it.
            if record.as_ref().is_some_and(|r| r.removing) {
                tracing::info!(session = %sid, "finishing a removal cut short");
                self.remove_orphan(&c.id).await;
                let _ = self.store.remove(&sid).await;
                continue;
            }
            let owner = match (&record, c.labels.contains_key(LABEL_POOL)) {
                (Some(r), _) => Owner(r.owner.clone()),
                // A pool container is a session only if it had been handed
                // out, which its record says.
                (None, true) => {
                    self.remove_orphan(&c.id).await;
                    continue;
                }
                (None, false) => Owner::from_label(&label(LABEL_OWNER)),
            };
            let created = label(LABEL_CREATED).parse().unwrap_or(c.created);
            // A pooled session's client env was given to its shells, not its
            // container, and is not kept across a restart.
            let terminal = self.new_terminal(&sid, &c.id, Vec::new());
            self.seed_replay(&terminal, &sid).await;
            let image = record
                .as_ref()
                .map_or_else(|| label(LABEL_IMAGE), |r| r.image.clone());
            let port = record.as_ref().and_then(|r| r.preview_port);
            let session = self
                .insert(
                    SessionRecord {
                        session_id: sid.clone(),
                        container_id: c.id.clone(),
                        owner: owner.0,
                        image,
                        created,
                        preview_port: port,
                        removing: false,
                        engine: record.as_ref().and_then(|r| r.engine.clone()),
                    },
                    terminal,
                    "restored",
                )
                .await;
            if record.is_none() {
                // Made just before a crash, or by a server without records:
                // recorded now, so the next start finds it the same way.
                if let Err(e) = self.store.put(&session.record()).await {
                    tracing::warn!(session = %sid, error = %e, "could not record a re-adopted session");
                }
            }
            tracing::info!(session = %sid, container = %c.id, "session re-adopted");
            adopted += 1;
        }
        self.release_stale_slots();
        for (stale, record) in records {
            if self.is_pending(&stale) || self.sessions.read().unwrap().contains_key(&stale) {
                continue;
            }
            // In a fleet, a record another gateway holds is a session made
            // after the containers were listed, and one on an engine this
            // gateway does not reach is not known to be gone.
            if let Some(f) = &self.fleet {
                if !matches!(f.holder(&stale).await, Ok(crate::fleet::Holder::Nobody))
                    || !self.reaches(&record).await
                {
                    continue;
                }
            }
            let _ = self.store.remove(&stale).await;
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
    /// labelled containers that belong to no session (running ones once two
    /// sweeps in a row found them so).
    pub async fn sweep(&self) {
        let now = now_millis();
        let timeout = self.settings.session_timeout.as_millis() as u64;
        // Snapshot before listing: every container of this snapshot existed before the list.
        let mut snapshot = self.all();
        let mut live = Vec::with_capacity(snapshot.len());
        for s in snapshot.drain(..) {
            // An open preview WebSocket (a dev server's hot reload) is use
            // of the session, like an attached terminal.
            if s.idle_millis(now) > timeout
                && !s.has_open_preview_sockets()
                && s.terminal.prune().await == 0
            {
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
        // A stopped container still holds the session's workspace: it is
        // started again on the next attach or input, so only a container
        // that is gone ends its session here.
        let existing: HashSet<&str> = listed.iter().map(|c| c.id.as_str()).collect();
        for s in &snapshot {
            // Not listed, and the engine says so when asked about it (an
            // engine of the fleet that did not answer lists nothing).
            if !existing.contains(s.container_id.as_str())
                && matches!(
                    self.runtime.container_status(&s.container_id).await,
                    Ok(None)
                )
            {
                tracing::info!(session = %s.id, "container is gone; session dropped");
                self.remove_orphan(&s.container_id).await;
                self.forget(s, "Session expired").await;
            }
        }
        let mut known: HashSet<String> =
            self.all().iter().map(|s| s.container_id.clone()).collect();
        // In a fleet: the sessions of every gateway are known; containers of
        // other live gateways are theirs to sweep; those of gateways that
        // are gone are swept by one gateway, the sweeper of the period.
        let mut fleet_view: Option<(HashSet<String>, bool)> = None;
        if let Some(f) = &self.fleet {
            let view = async {
                let records = f.records().await?;
                let live = f.live_gateways().await?;
                let lead = f.lead_sweep(self.settings.cleanup_interval * 2).await?;
                Ok::<_, crate::fleet::FleetError>((records, live, lead))
            };
            match view.await {
                Ok((records, live, lead)) => {
                    known.extend(records.into_iter().map(|r| r.container_id));
                    fleet_view = Some((live, lead));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "sweep could not read the fleet; leftovers wait");
                    self.sweeps_total
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
            }
        }
        let orphans = self.orphans.lock().unwrap().clone();
        let suspects = std::mem::take(&mut *self.suspects.lock().unwrap());
        let now_secs = (now / 1000) as i64;
        for c in &listed {
            let sid = c
                .labels
                .get(LABEL_SESSION)
                .map(String::as_str)
                .unwrap_or("");
            if known.contains(&c.id) || self.pool.contains(&c.id) || self.is_pending(sid) {
                continue;
            }
            // Made by another process of this instance (one that ended: one
            // server serves an instance), it is a leftover whenever the
            // engine finished making it: a create cut short by a crash can
            // complete after the next start.
            let ours = c.labels.get(LABEL_PROCESS) == Some(&self.process);
            if let (Some((live, lead)), false) = (&fleet_view, ours) {
                let process = c.labels.get(LABEL_PROCESS).map(String::as_str);
                if !lead || process.is_some_and(|p| live.contains(p)) {
                    continue;
                }
            }
            // A running container of ours that is in no session may be one
            // between two of this server's steps (a pooled one being handed
            // out): it is an orphan only if it still is at the next sweep.
            if c.is_running() && ours && !suspects.contains(&c.id) {
                self.suspects.lock().unwrap().insert(c.id.clone());
                continue;
            }
            let leftover = !ours
                || c.created < self.started
                || orphans.contains(&c.id)
                || c.is_running()
                || now_secs - c.created > STOPPED_GRACE_SECS;
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
        self.release_stale_slots();
        self.sweeps_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Adopts leftovers once the engine answers, then sweeps on every interval.
    /// Re-adopts the previous run's containers (waiting at most a few
    /// seconds, so a start with the engine down is not held up), keeps
    /// trying in the background until that is done (a request may also do
    /// it first, see `ensure_restored`), then fills the warm pool and runs
    /// the sweep.
    pub async fn start_background(self: &Arc<Self>) {
        if let Some(fleet) = self.fleet.clone() {
            self.tasks.spawn(Arc::clone(self).keep_fleet(fleet));
        }
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), self.ensure_restored()).await;
        let this = Arc::clone(self);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let mut retry = tokio::time::interval(std::time::Duration::from_secs(1));
            while this.ensure_restored().await.is_err() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = retry.tick() => {}
                }
            }
            if this.plan.max > 0 {
                let pool = Arc::clone(&this);
                this.tasks.spawn(async move { pool.keep_pool().await });
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
}
