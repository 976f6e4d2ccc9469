//! The fleet: several gateways sharing one Redis (`--store redis://…`), so
//! that any gateway serves any session. What lives there, under
//! `studio:INSTANCE:`:
//!
//! - `secret`: the fleet's key, made by the first gateway: preview links
//!   and cookies are signed with it, and gateways prove with it that a
//!   request was relayed by one of them.
//! - `gw:GATEWAY`: the URL the other gateways reach a gateway at; it
//!   expires unless renewed ([`GATEWAY_TTL`]), so a dead gateway drops out.
//!   `gateways` indexes them.
//! - `session:ID`: a session's record (the `SessionRecord` as JSON);
//!   `sessions` indexes them.
//! - `lease:ID`: the gateway that holds the session (its terminal, its
//!   commands, its preview port watch). It expires unless renewed
//!   ([`LEASE_TTL`]); a session whose lease ran out is taken over by
//!   another gateway.
//! - `replay:ID`: the tail of the session's terminal output, mirrored by its
//!   holder, so a client re-attaching after a takeover gets its replay.
//! - `sweeper`: the gateway that sweeps leftover containers this period.
//! - `rl:…`: the rate limits' windows (`crate::limits`).
//!
//! This module only reads and writes those keys; who holds what and when to
//! take over is the session table's business (`crate::session`), relaying
//! to the holder the doors' (`crate::relay`).

mod keys;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use crate::store::{SessionRecord, SessionStore, StoreError};
use keys::Keys;

/// A session's lease lasts this long unless its holder renews it.
pub const LEASE_TTL: Duration = Duration::from_secs(6);
/// A gateway's entry lasts this long unless it renews it.
pub const GATEWAY_TTL: Duration = Duration::from_secs(6);
/// How often a gateway renews its entry and its leases, and looks for
/// sessions nobody holds.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// One Redis call may take this long before it counts as Redis being down.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// After Redis was unreachable, gateways renew their leases for this long
/// before any takes over a session without one: leases that ran out during
/// the outage belong to gateways that are alive.
const OUTAGE_GRACE: Duration = Duration::from_secs(8);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FleetError(pub String);

impl From<redis::RedisError> for FleetError {
    fn from(e: redis::RedisError) -> Self {
        FleetError(format!("Redis: {e}"))
    }
}

impl From<FleetError> for StoreError {
    fn from(e: FleetError) -> Self {
        StoreError(e.0)
    }
}

/// This gateway's handle on the fleet's shared state.
pub struct Fleet {
    conn: ConnectionManager,
    keys: Keys,
    /// This gateway's id; also the process mark on the containers it makes.
    pub gateway: String,
    url: OnceLock<String>,
    secret: [u8; 32],
    reachable: AtomicBool,
    /// When Redis last failed a call.
    last_outage: Mutex<Option<Instant>>,
}

/// Where a session is held, as the fleet sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody holds it (its holder died, or it was never held).
    Nobody,
    /// This gateway.
    Me,
    /// Another gateway, reachable at this URL.
    Gateway(String),
    /// Another gateway whose entry has expired: it is dead, and its lease
    /// will run out within [`LEASE_TTL`].
    Gone,
}

impl Fleet {
    /// Connects to the fleet's Redis and loads (or, first, makes) the
    /// fleet's secret. Waits up to `patience` for Redis to answer.
    pub async fn connect(
        url: &str,
        instance: &str,
        gateway: String,
        patience: Duration,
    ) -> Result<Fleet, FleetError> {
        let client = redis::Client::open(url)
            .map_err(|e| FleetError(format!("invalid --store {:?}: {e}", redact(url))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        let keys = Keys::new(instance);
        let started = Instant::now();
        let secret = loop {
            match load_secret(&mut conn.clone(), &keys).await {
                Ok(s) => break s,
                Err(e) if started.elapsed() >= patience => {
                    return Err(FleetError(format!(
                        "the fleet's store at {} does not answer: {e}",
                        redact(url)
                    )))
                }
                Err(e) => {
                    tracing::info!(error = %e, "waiting for the fleet's store");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        Ok(Fleet {
            conn,
            keys,
            gateway,
            url: OnceLock::new(),
            secret,
            reachable: AtomicBool::new(true),
            last_outage: Mutex::new(None),
        })
    }

    /// The fleet's shared key.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// A connection for other shared state (the rate limits).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The key prefix of this fleet.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Sets the URL the other gateways reach this one at (once, when the
    /// listener is bound).
    pub fn set_url(&self, url: String) {
        let _ = self.url.set(url);
    }

    pub fn url(&self) -> &str {
        self.url.get().map_or("", String::as_str)
    }

    /// Whether Redis answered the last call.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Whether Redis has answered for `OUTAGE_GRACE`: only then may a
    /// gateway take over sessions whose lease is missing.
    pub fn settled(&self) -> bool {
        self.reachable()
            && self
                .last_outage
                .lock()
                .unwrap()
                .is_none_or(|t| t.elapsed() >= OUTAGE_GRACE)
    }

    /// Runs one Redis call with the fleet's bound on it, keeping track of
    /// whether Redis answers.
    async fn call<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, FleetError> {
        let out = match tokio::time::timeout(CALL_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(FleetError::from(e)),
            Err(_) => Err(FleetError(format!(
                "Redis did not answer within {CALL_TIMEOUT:?}"
            ))),
        };
        match &out {
            Ok(_) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!("the fleet's store answers again");
                }
            }
            Err(e) => {
                *self.last_outage.lock().unwrap() = Some(Instant::now());
                if self.reachable.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "the fleet's store is unreachable");
                }
            }
        }
        out
    }

    /// Whether Redis answers now.
    pub async fn ping(&self) -> Result<(), FleetError> {
        let mut c = self.conn.clone();
        self.call(async move { redis::cmd("PING").query_async::<()>(&mut c).await })
            .await
    }

    // ----- gateways -----

    /// Announces (or renews) this gateway, and puts the fleet's secret back
    /// if Redis lost it (a restart without persistence): every gateway
    /// holds the same one, so whichever puts it back puts the same key.
    pub async fn register(&self) -> Result<(), FleetError> {
        let mut c = self.conn.clone();
        let (entry, index) = (self.keys.gateway(&self.gateway), self.keys.gateways());
        let url = self.url().to_string();
        let ttl = GATEWAY_TTL.as_millis() as u64;
        let (secret_key, secret) = (self.keys.secret(), hex(&self.secret));
        self.call(async move {
            redis::pipe()
                .cmd("SET")
                .arg(&secret_key)
                .arg(&secret)
                .arg("NX")
                .ignore()
                .cmd("SET")
                .arg(&entry)
                .arg(&url)
                .arg("PX")
                .arg(ttl)
                .ignore()
                .sadd(&index, &self.gateway)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Leaves the fleet: other gateways take this one's sessions over at
    /// once rather than after their leases run out.
    pub async fn leave(&self, held: &[String]) -> Result<(), FleetError> {
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.del(self.keys.gateway(&self.gateway))
            .ignore()
            .srem(self.keys.gateways(), &self.gateway)
            .ignore();
        for id in held {
            pipe.cmd("EVALSHA")
                .arg(RELEASE.get_hash())
                .arg(1)
                .arg(self.keys.lease(id))
                .arg(&self.gateway)
                .ignore();
        }
        let mut c2 = c.clone();
        self.call(async move {
            RELEASE.load_async(&mut c2).await?;
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// The gateways whose entry is live.
    pub async fn live_gateways(&self) -> Result<HashSet<String>, FleetError> {
        let mut c = self.conn.clone();
        let index = self.keys.gateways();
        let ids: Vec<String> = self.call(c.smembers(&index)).await?;
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let entries: Vec<String> = ids.iter().map(|g| self.keys.gateway(g)).collect();
        let urls: Vec<Option<String>> = self.call(c.mget(&entries)).await?;
        let mut live = HashSet::new();
        let mut dead = Vec::new();
        for (g, u) in ids.into_iter().zip(urls) {
            if u.is_some() {
                live.insert(g);
            } else {
                dead.push(g);
            }
        }
        if !dead.is_empty() {
            let _ = self.call(c.srem::<_, _, ()>(&index, dead)).await;
        }
        Ok(live)
    }

    // ----- sessions -----

    /// The session's record, if the fleet has one.
    pub async fn record(&self, id: &str) -> Result<Option<SessionRecord>, FleetError> {
        let mut c = self.conn.clone();
        let raw: Option<String> = self.call(c.get(self.keys.session(id))).await?;
        Ok(raw.and_then(|r| parse_record(id, &r)))
    }

    /// The session a preview host name's label (the id, lower-cased) stands for.
    pub async fn session_for_label(&self, label: &str) -> Result<Option<String>, FleetError> {
        let mut c = self.conn.clone();
        self.call(c.get(self.keys.label(label))).await
    }

    /// Who holds the session now.
    pub async fn holder(&self, id: &str) -> Result<Holder, FleetError> {
        let mut c = self.conn.clone();
        let lease: Option<String> = self.call(c.get(self.keys.lease(id))).await?;
        let Some(g) = lease else {
            return Ok(Holder::Nobody);
        };
        if g == self.gateway {
            return Ok(Holder::Me);
        }
        let url: Option<String> = self.call(c.get(self.keys.gateway(&g))).await?;
        Ok(url.map_or(Holder::Gone, Holder::Gateway))
    }

    /// Takes the session's lease if nobody holds it; `true` if this gateway
    /// holds it now.
    pub async fn claim(&self, id: &str) -> Result<bool, FleetError> {
        let mut c = self.conn.clone();
        let key = self.keys.lease(id);
        let ttl = LEASE_TTL.as_millis() as u64;
        let gw = self.gateway.clone();
        let set: Option<String> = self
            .call(async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&gw)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if set.is_some() {
            return Ok(true);
        }
        Ok(self.holder(id).await? == Holder::Me)
    }

    /// Takes the lease of a session this gateway has just made.
    pub async fn hold(&self, id: &str) -> Result<(), FleetError> {
        let mut c = self.conn.clone();
        let key = self.keys.lease(id);
        let ttl = LEASE_TTL.as_millis() as u64;
        let gw = self.gateway.clone();
        self.call(async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(&gw)
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// Renews the leases of the sessions this gateway holds, putting back
    /// a record Redis lost (a restart without persistence). Returns the ids
    /// whose lease another gateway holds now: this one must let them go.
    pub async fn renew(&self, held: &[SessionRecord]) -> Result<Vec<String>, FleetError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let ttl = LEASE_TTL.as_millis() as u64;
        let mut pipe = redis::pipe();
        for r in held {
            let json = serde_json::to_string(r).unwrap_or_default();
            pipe.cmd("EVALSHA")
                .arg(RENEW.get_hash())
                .arg(4)
                .arg(self.keys.lease(&r.session_id))
                .arg(self.keys.session(&r.session_id))
                .arg(self.keys.sessions())
                .arg(self.keys.label(&r.session_id))
                .arg(&self.gateway)
                .arg(ttl)
                .arg(json)
                .arg(&r.session_id);
        }
        let mut c2 = c.clone();
        let kept: Vec<i64> = self
            .call(async move {
                RENEW.load_async(&mut c2).await?;
                pipe.query_async(&mut c).await
            })
            .await?;
        Ok(held
            .iter()
            .zip(kept)
            .filter(|(_, k)| *k == 0)
            .map(|(r, _)| r.session_id.clone())
            .collect())
    }

    /// Gives up this gateway's lease of a session (if it still has it).
    pub async fn release(&self, id: &str) -> Result<(), FleetError> {
        let mut c = self.conn.clone();
        let key = self.keys.lease(id);
        let gw = self.gateway.clone();
        self.call(async move { RELEASE.key(&key).arg(&gw).invoke_async::<()>(&mut c).await })
            .await
    }

    /// Records of sessions nobody holds.
    pub async fn unheld(&self) -> Result<Vec<SessionRecord>, FleetError> {
        let records = self.records().await?;
        if records.is_empty() {
            return Ok(records);
        }
        let mut c = self.conn.clone();
        let leases: Vec<String> = records
            .iter()
            .map(|r| self.keys.lease(&r.session_id))
            .collect();
        let holders: Vec<Option<String>> = self.call(c.mget(&leases)).await?;
        Ok(records
            .into_iter()
            .zip(holders)
            .filter(|(_, h)| h.is_none())
            .map(|(r, _)| r)
            .collect())
    }

    /// Every session record of the fleet.
    pub async fn records(&self) -> Result<Vec<SessionRecord>, FleetError> {
        let mut c = self.conn.clone();
        let ids: Vec<String> = self.call(c.smembers(self.keys.sessions())).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|i| self.keys.session(i)).collect();
        let raw: Vec<Option<String>> = self.call(c.mget(&keys)).await?;
        Ok(ids
            .iter()
            .zip(raw)
            .filter_map(|(id, r)| r.and_then(|r| parse_record(id, &r)))
            .collect())
    }

    async fn put_record(&self, r: &SessionRecord) -> Result<(), FleetError> {
        let mut c = self.conn.clone();
        let json = serde_json::to_string(r).map_err(|e| FleetError(e.to_string()))?;
        let (key, index) = (self.keys.session(&r.session_id), self.keys.sessions());
        let lease = self.keys.lease(&r.session_id);
        let label = self.keys.label(&r.session_id);
        let ttl = LEASE_TTL.as_millis() as u64;
        // Recorded by this gateway, it is held by it (unless another holds
        // it already): a record is never up for takeover while its
        // session is being handed out.
        self.call(async move {
            redis::pipe()
                .atomic()
                .set(&key, json)
                .ignore()
                .sadd(&index, &r.session_id)
                .ignore()
                .set(&label, &r.session_id)
                .ignore()
                .cmd("SET")
                .arg(&lease)
                .arg(&self.gateway)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn remove_record(&self, id: &str) -> Result<(), FleetError> {
        let mut c = self.conn.clone();
        let keys = [
            self.keys.session(id),
            self.keys.lease(id),
            self.keys.replay(id),
            self.keys.label(id),
        ];
        let index = self.keys.sessions();
        self.call(async move {
            redis::pipe()
                .atomic()
                .del(&keys)
                .ignore()
                .srem(&index, id)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    // ----- replay -----

    /// Mirrors the tail of a session's terminal output.
    pub async fn save_replay(&self, id: &str, text: &str) -> Result<(), FleetError> {
        let mut c = self.conn.clone();
        self.call(c.set::<_, _, ()>(self.keys.replay(id), text))
            .await
    }

    /// The mirrored tail of a session's terminal output.
    pub async fn load_replay(&self, id: &str) -> Result<Option<String>, FleetError> {
        let mut c = self.conn.clone();
        self.call(c.get(self.keys.replay(id))).await
    }

    // ----- the sweep -----

    /// Whether this gateway sweeps leftovers this period (`period` is how
    /// long it may, unless it renews).
    pub async fn lead_sweep(&self, period: Duration) -> Result<bool, FleetError> {
        let mut c = self.conn.clone();
        let key = self.keys.sweeper();
        let gw = self.gateway.clone();
        let ms = period.as_millis().max(1000) as u64;
        let led: i64 = self
            .call(async move { LEAD.key(&key).arg(&gw).arg(ms).invoke_async(&mut c).await })
            .await?;
        Ok(led == 1)
    }
}

/// The store's side of the fleet: records in Redis.
#[async_trait::async_trait]
impl SessionStore for Fleet {
    async fn put(&self, record: &SessionRecord) -> Result<(), StoreError> {
        Ok(self.put_record(record).await?)
    }

    async fn remove(&self, session_id: &str) -> Result<(), StoreError> {
        Ok(self.remove_record(session_id).await?)
    }

    async fn list(&self) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(self.records().await?)
    }
}

fn parse_record(id: &str, raw: &str) -> Option<SessionRecord> {
    match serde_json::from_str::<SessionRecord>(raw) {
        Ok(r) if r.session_id == id => Some(r),
        _ => {
            tracing::warn!(session = %id, "an unreadable session record in the fleet's store; ignored");
            None
        }
    }
}

async fn load_secret(c: &mut ConnectionManager, keys: &Keys) -> Result<[u8; 32], FleetError> {
    let fresh = hex(&rand::random::<[u8; 32]>());
    let call = async {
        let _: Option<String> = redis::cmd("SET")
            .arg(keys.secret())
            .arg(&fresh)
            .arg("NX")
            .query_async(c)
            .await?;
        c.get::<_, String>(keys.secret()).await
    };
    let stored = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| FleetError("no answer".into()))??;
    unhex(&stored)
        .ok_or_else(|| FleetError("the fleet's secret in Redis is not 64 hex digits".into()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Renews a lease this gateway holds or that nobody holds, and puts the
/// record (and its label) back if it is missing; 0 when another gateway
/// holds the lease.
static RENEW: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r#"
local h = redis.call('GET', KEYS[1])
if h and h ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('SET', KEYS[4], ARGV[4])
end
return 1
"#,
    )
});

/// Deletes a lease if this gateway holds it.
static RELEASE: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// Takes or renews a leadership key; 1 when this gateway has it.
static LEAD: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r#"
local h = redis.call('GET', KEYS[1])
if h == false or h == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#,
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_through_hex() {
        let s: [u8; 32] = rand::random();
        assert_eq!(unhex(&hex(&s)), Some(s));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://…@10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
