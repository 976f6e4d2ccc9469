//! Rate limits, as the seed's table and the contract's keys say. Nothing
//! here knows about HTTP routes or the error type: a limit answers with the
//! data for its headers (`RateInfo`), and the doors turn a refusal into a
//! 429 or a WebSocket error.
//!
//! - `spec`: the `N/DURATION` / `off` values and the defaults.
//! - `window`: one keyed limit, `N` per window, answering with header data;
//!   its key map is hard-capped so memory stays bounded.
//! - `failures`: the authentication limit (failed token checks).
//! - `shared`: the same windows in Redis, for a fleet of gateways, with
//!   the local ones as the fallback while Redis does not answer.
//! - `client_ip`: which address a request is counted against.
//! - `headers`: `X-RateLimit-*`, `Retry-After` and the 429 body.
//! - `size`: the bound on a request's head.
//!
//! Which limits an HTTP request counts against is the route's to say
//! (`crate::http::route`); WebSocket `create` and `configure_preview` are
//! counted by the message handlers through [`Limits::container`] and
//! [`Limits::preview`].
//!
//! The checks are `async`: a gateway of a fleet ([`Limits::shared`]) asks
//! Redis, within a bound; a lone one answers at once.

pub mod client_ip;
pub mod failures;
pub mod headers;
pub mod shared;
pub mod size;
pub mod spec;
pub mod window;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use client_ip::ClientIp;
pub use failures::AuthFailures;
pub use headers::RateInfo;
use shared::SharedWindows;
pub use spec::{RateLimit, RateLimits};
use window::WindowLimiter;

/// Keys tracked per limit. A key costs well under 100 bytes, so the five
/// limits together stay under ~50 MiB whatever arrives.
pub const MAX_TRACKED_KEYS: usize = 100_000;
/// How often keys whose window has ended are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// The outcome of counting one request against one limit: `Ok(None)` when
/// that limit is off, `Ok(Some)` with the budget left, `Err` when refused.
pub type Outcome = Result<Option<RateInfo>, RateInfo>;

pub struct Limits {
    general: Option<WindowLimiter<IpAddr>>,
    /// Keyed by IP and a hash of the session id (client-chosen strings of
    /// any length never become keys).
    container: Option<WindowLimiter<(IpAddr, Option<u64>)>>,
    preview: Option<WindowLimiter<IpAddr>>,
    ws: Option<WindowLimiter<IpAddr>>,
    pub auth: AuthFailures,
    session_hash: RandomState,
    /// The fleet's windows; the local ones above then count only while
    /// Redis does not answer.
    shared: Option<Arc<SharedWindows>>,
}

impl Limits {
    pub fn new(cfg: &RateLimits) -> Limits {
        Self::with_cap(cfg, MAX_TRACKED_KEYS)
    }

    pub fn with_cap(cfg: &RateLimits, cap: usize) -> Limits {
        let make = |name, l: RateLimit| l.0.map(|spec| WindowLimiter::new(name, spec, cap));
        Limits {
            general: make("the general API", cfg.general),
            container: cfg
                .container
                .0
                .map(|spec| WindowLimiter::new("container operations", spec, cap)),
            preview: make("preview configuration", cfg.preview),
            ws: make("WebSocket connections", cfg.ws),
            auth: AuthFailures::new(cfg.auth, cap),
            session_hash: RandomState::new(),
            shared: None,
        }
    }

    /// The limits of one gateway of a fleet: counted in the Redis behind
    /// `conn` under keys starting `{prefix}:`, so they hold for a client
    /// across every gateway with that prefix.
    pub fn shared(cfg: &RateLimits, conn: ConnectionManager, prefix: String) -> Limits {
        let shared = Arc::new(SharedWindows::new(conn, prefix));
        let mut limits = Self::new(cfg);
        limits.auth.share(Arc::clone(&shared));
        limits.shared = Some(shared);
        limits
    }

    /// Counts one request against `limit`, known to the fleet as `slug`
    /// and `client`, to this gateway as `key`.
    async fn count<K: std::hash::Hash + Eq + Clone>(
        &self,
        limit: &Option<WindowLimiter<K>>,
        key: &K,
        slug: &str,
        client: impl FnOnce() -> String,
    ) -> Outcome {
        let Some(limit) = limit else {
            return Ok(None);
        };
        match &self.shared {
            Some(shared) => shared.check(limit, slug, &client(), key).await,
            None => limit.check(key),
        }
        .map(Some)
    }

    pub async fn general(&self, ip: ClientIp) -> Outcome {
        let ip = ip.key();
        self.count(&self.general, &ip, "general", || ip.to_string())
            .await
    }

    /// Container operations: per IP and session, per IP when there is none yet.
    pub async fn container(&self, ip: ClientIp, session_id: Option<&str>) -> Outcome {
        let ip = ip.key();
        let session = session_id.map(|s| self.session_hash.hash_one(s));
        let client = || match session_id {
            None => ip.to_string(),
            Some(s) => format!("{ip}:{}", shared::session_digest(s)),
        };
        self.count(&self.container, &(ip, session), "container", client)
            .await
    }

    pub async fn preview(&self, ip: ClientIp) -> Outcome {
        let ip = ip.key();
        self.count(&self.preview, &ip, "preview", || ip.to_string())
            .await
    }

    pub async fn ws(&self, ip: ClientIp) -> Outcome {
        let ip = ip.key();
        self.count(&self.ws, &ip, "ws", || ip.to_string()).await
    }

    /// Keys currently tracked, all limits together.
    pub fn tracked_keys(&self) -> usize {
        let n = |l: &Option<WindowLimiter<IpAddr>>| l.as_ref().map_or(0, |l| l.len());
        n(&self.general)
            + n(&self.preview)
            + n(&self.ws)
            + self.container.as_ref().map_or(0, |l| l.len())
            + self.auth.tracked()
    }

    pub fn prune(&self) {
        for l in [&self.general, &self.preview, &self.ws]
            .into_iter()
            .flatten()
        {
            l.prune();
        }
        if let Some(l) = &self.container {
            l.prune();
        }
        self.auth.prune();
    }

    /// Prunes every few seconds until shutdown.
    pub fn spawn_pruner(
        self: &std::sync::Arc<Self>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) {
        let this = std::sync::Arc::clone(self);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => this.prune(),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[tokio::test]
    async fn container_operations_count_per_ip_and_session() {
        let l = Limits::new(&RateLimits {
            container: RateLimit::new(2, 60),
            ..Default::default()
        });
        let ip = ClientIp(IpAddr::from([10, 0, 0, 1]));
        assert!(l.container(ip, None).await.is_ok());
        assert!(l.container(ip, None).await.is_ok());
        assert!(l.container(ip, None).await.is_err());
        assert!(l.container(ip, Some("session-a")).await.is_ok());
        assert!(l.container(ip, Some("session-b")).await.is_ok());
        assert!(l
            .container(ClientIp(IpAddr::from([10, 0, 0, 2])), None)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn off_means_no_limit_and_no_headers() {
        let off = RateLimits {
            general: RateLimit(None),
            container: RateLimit(None),
            preview: RateLimit(None),
            ws: RateLimit(None),
            auth: RateLimit(None),
        };
        let l = Limits::new(&off);
        let ip = ClientIp(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..1000 {
            assert_eq!(l.general(ip).await, Ok(None));
        }
    }

    /// A million distinct client IPs through every per-IP limit, as the
    /// front door calls them, with the pruner running as it does in the
    /// server: the number of tracked keys stays under the cap.
    #[tokio::test]
    async fn memory_stays_bounded_under_a_million_ips() {
        const CAP: usize = 20_000;
        let rss_before = rss_kib();
        let l = Limits::with_cap(&RateLimits::default(), CAP);
        let mut most = 0;
        for i in 0..1_000_000u32 {
            let ip = ClientIp(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)));
            let _ = l.general(ip).await;
            let _ = l.ws(ip).await;
            let _ = l.container(ip, Some("session-x")).await;
            if i % 50_000 == 0 {
                l.prune();
                most = most.max(l.tracked_keys());
            }
        }
        most = most.max(l.tracked_keys());
        assert!(
            most <= 3 * (CAP + 1),
            "{most} keys tracked; cap is {CAP} per limit"
        );
        let grown = rss_kib().saturating_sub(rss_before);
        // 3 limits x 20k keys is a few MiB; unbounded maps would be ~200 MiB.
        assert!(grown < 48 * 1024, "resident memory grew by {grown} KiB");
    }

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}
