//! The session table's side of a fleet (`crate::fleet`): which gateway
//! holds a session, taking over the sessions of a gateway that died, and
//! keeping this gateway's leases, entry and replays current.
//!
//! A session is held by one gateway at a time (its lease): that gateway
//! runs its terminal and commands and serves its preview; the others relay
//! to it (`crate::relay`), so output order and the replay are the same
//! whichever gateway a client reached. Without a fleet every session is
//! here, and none of this runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::manager::SessionManager;
use super::Session;
use crate::auth::Owner;
use crate::error::ApiError;
use crate::fleet::{Fleet, Holder, LEASE_TTL, RENEW_EVERY};
use crate::store::SessionRecord;

/// Where a session is served.
pub enum Located {
    Here(Arc<Session>),
    /// Held by the gateway at this URL: relay to it.
    Elsewhere(String),
}

/// Sent to clients of a session this gateway no longer holds (another took
/// it over while this one could not renew its lease).
pub const MOVED: &str = "Session moved to another gateway";

impl SessionManager {
    pub fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.fleet.as_ref()
    }

    /// Where session `id` is served, for `owner` (`None`: for the preview,
    /// whose own gate checks who may see it). Without a fleet, or for a
    /// session held here, that is here; a session nobody holds any more
    /// (its gateway died) is taken over now. A session of another owner is
    /// not found, as it is when held here.
    pub async fn locate(&self, id: &str, owner: Option<&Owner>) -> Result<Located, ApiError> {
        let here = self.sessions.read().unwrap().get(id).cloned();
        let Some(fleet) = self.fleet.clone() else {
            return match (here, owner) {
                (Some(s), None) => Ok(Located::Here(s)),
                (_, Some(o)) => self.get(id, o).map(Located::Here),
                (None, None) => Err(ApiError::session_not_found(id)),
            };
        };
        if let Some(s) = here {
            return match owner {
                Some(o) if &s.owner != o => Err(ApiError::session_not_found(id)),
                _ => {
                    s.touch();
                    Ok(Located::Here(s))
                }
            };
        }
        if !super::id::is_well_formed(id) {
            return Err(ApiError::session_not_found(id));
        }
        let unreachable = |e: crate::fleet::FleetError| {
            tracing::warn!(session = %id, error = %e, "could not look the session up in the fleet");
            ApiError::DockerDaemon(
                "The fleet's store (Redis) is unreachable, so sessions held by other gateways \
                 cannot be found; try again shortly"
                    .into(),
            )
        };
        let record = fleet
            .record(id)
            .await
            .map_err(unreachable)?
            .filter(|r| !r.removing)
            .filter(|r| owner.is_none_or(|o| o.0 == r.owner))
            .ok_or_else(|| ApiError::session_not_found(id))?;
        // A gateway that died holds its leases until they run out: wait
        // for that (at most one lease) rather than fail the client.
        let deadline = Instant::now() + LEASE_TTL + Duration::from_secs(1);
        loop {
            match fleet.holder(id).await.map_err(unreachable)? {
                Holder::Gateway(url) => return Ok(Located::Elsewhere(url)),
                // Just after Redis came back, a missing lease may be one its
                // live holder has not renewed yet: wait for it to.
                Holder::Nobody if !fleet.settled() => {}
                Holder::Me | Holder::Nobody => {
                    if let Some(s) = self.take_over(&fleet, record.clone()).await? {
                        return Ok(Located::Here(s));
                    }
                }
                Holder::Gone => {}
            }
            if Instant::now() >= deadline {
                return Err(ApiError::DockerDaemon(format!(
                    "Session '{id}' is moving to another gateway; try again shortly"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The session id a preview host name's label stands for (browsers
    /// lower-case host names): here, or in the fleet's index.
    pub async fn resolve_label(&self, label: &str) -> Option<String> {
        if let Some(s) = self.find(label) {
            return Some(s.id.clone());
        }
        let fleet = self.fleet.as_ref()?;
        fleet.session_for_label(label).await.ok().flatten()
    }

    /// In a fleet: starts a session's terminal taken from another gateway
    /// with the output that gateway mirrored.
    pub(super) async fn seed_replay(&self, terminal: &crate::terminal::Terminal, id: &str) {
        let Some(fleet) = &self.fleet else {
            return;
        };
        match fleet.load_replay(id).await {
            Ok(Some(past)) => terminal.seed_replay(&past).await,
            Ok(None) => {}
            Err(e) => tracing::debug!(session = %id, error = %e, "no replay to take over"),
        }
    }

    /// In a fleet, the id of the engine this gateway makes containers on
    /// (recorded with each session it makes); `None` outside a fleet.
    pub(super) async fn engine_of_new(&self) -> Option<String> {
        self.fleet.as_ref()?;
        if let Some(id) = self.own_engine.get() {
            return Some(id.clone());
        }
        let ids = self.runtime.engine_ids().await.ok()?;
        let own = ids.into_iter().next()?;
        Some(self.own_engine.get_or_init(|| own).clone())
    }

    /// Whether this gateway reaches the engine a record says its container
    /// lives on (a record without one: it may be anywhere, so yes).
    pub(super) async fn reaches(&self, record: &SessionRecord) -> bool {
        match &record.engine {
            None => true,
            Some(e) => self
                .runtime
                .engine_ids()
                .await
                .is_ok_and(|ids| ids.contains(e)),
        }
    }

    /// Takes a session nobody holds: its lease, then the session itself, as
    /// a restart re-adopts one. `None` if another gateway took it first, or
    /// if its container lives on an engine this gateway does not reach
    /// (one that does takes it; nothing is removed for want of reaching it).
    async fn take_over(
        &self,
        fleet: &Fleet,
        record: SessionRecord,
    ) -> Result<Option<Arc<Session>>, ApiError> {
        let id = record.session_id.clone();
        let _one_at_a_time = self.adopting.lock().await;
        if let Some(s) = self.sessions.read().unwrap().get(&id).cloned() {
            return Ok(Some(s));
        }
        if !self.reaches(&record).await {
            tracing::debug!(session = %id, engine = ?record.engine, "not taking over a session on an engine this gateway does not reach");
            return Ok(None);
        }
        if !fleet
            .claim(&id)
            .await
            .map_err(|e| ApiError::DockerDaemon(format!("Could not take the session over: {e}")))?
        {
            return Ok(None);
        }
        match self.runtime.container_status(&record.container_id).await {
            Ok(Some(status)) if status.holds_a_session() => {}
            Ok(_) => {
                // Its container is gone: so is the session.
                tracing::info!(session = %id, "a session taken over has no container; dropped");
                if let Err(e) = self.runtime.remove_container(&record.container_id).await {
                    tracing::debug!(error = %e, "removing what was left of it failed");
                }
                let _ = self.store.remove(&id).await;
                return Err(ApiError::session_not_found(&id));
            }
            Err(e) => {
                let _ = fleet.release(&id).await;
                return Err(ApiError::engine(e));
            }
        }
        if record.removing {
            tracing::info!(session = %id, "finishing a removal another gateway began");
            if self
                .runtime
                .remove_container(&record.container_id)
                .await
                .is_ok()
            {
                let _ = self.store.remove(&id).await;
            }
            return Err(ApiError::session_not_found(&id));
        }
        let terminal = self.new_terminal(&id, &record.container_id, Vec::new());
        self.seed_replay(&terminal, &id).await;
        let session = self.insert(record, terminal, "restored").await;
        tracing::info!(session = %id, gateway = %fleet.gateway, "session taken over");
        Ok(Some(session))
    }

    /// Lets go of a session another gateway holds now: out of this table,
    /// its clients told to reconnect; its container and record stay.
    async fn let_go(&self, session: &Arc<Session>) {
        if self.take_out(session) {
            tracing::warn!(session = %session.id, "another gateway holds the session now; letting it go");
            session.ended.cancel();
            session.terminal.close(MOVED).await;
        }
    }

    /// The fleet's loop: every [`RENEW_EVERY`], renews this gateway's entry
    /// and leases (letting go of sessions another gateway took), mirrors
    /// changed replays, and takes over sessions nobody holds.
    pub(super) async fn keep_fleet(self: Arc<Self>, fleet: Arc<Fleet>) {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut mirrored: HashMap<String, u64> = HashMap::new();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = fleet.register().await {
                tracing::debug!(error = %e, "could not renew this gateway's entry");
                continue;
            }
            let held = self.all();
            let records: Vec<SessionRecord> = held.iter().map(|s| s.record()).collect();
            match fleet.renew(&records).await {
                Ok(lost) => {
                    for id in lost {
                        if let Some(s) = held.iter().find(|s| s.id == id) {
                            self.let_go(s).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not renew the leases");
                    continue;
                }
            }
            mirrored.retain(|id, _| held.iter().any(|s| &s.id == id));
            for s in &held {
                let seen = mirrored.get(&s.id).copied().unwrap_or(0);
                if let Some((version, text)) = s.terminal.replay_since(seen).await {
                    if fleet.save_replay(&s.id, &text).await.is_ok() {
                        mirrored.insert(s.id.clone(), version);
                    }
                }
            }
            if fleet.settled() && self.is_restored() {
                self.take_over_unheld(&fleet).await;
            }
        }
        // Leaving: the others take this gateway's sessions over at once.
        let held: Vec<String> = self.all().iter().map(|s| s.id.clone()).collect();
        if let Err(e) = fleet.leave(&held).await {
            tracing::debug!(error = %e, "could not leave the fleet cleanly");
        }
    }

    /// Takes over the sessions whose holder is gone.
    async fn take_over_unheld(&self, fleet: &Fleet) {
        let unheld = match fleet.unheld().await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "could not list the sessions nobody holds");
                return;
            }
        };
        for record in unheld {
            if self.is_pending(&record.session_id) || self.pool.holds_session(&record.session_id) {
                continue;
            }
            let id = record.session_id.clone();
            if let Err(e) = self.take_over(fleet, record).await {
                tracing::debug!(session = %id, error = %e, "taking the session over failed");
            }
        }
    }
}
