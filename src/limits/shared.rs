//! The fleet's windows: the same limits as [`super::window`], counted in
//! Redis so that they hold for a client across every gateway (the seed's
//! per-IP limits are per IP for the whole service).
//!
//! One check is one Lua script, run atomically by Redis: the window's key
//! is created at the client's first request with the window as its expiry
//! (`SET … PX … NX`), a request is counted (`INCR`) only while budget is
//! left, and the reply carries the count and the time left (`PTTL`). So the
//! window opens at the first request, a refusal costs nothing, and the
//! whole budget is back when the key expires; a key never outlives its
//! window, which keeps Redis's memory bounded by the clients of the last
//! window.
//!
//! Keys are `{prefix}:{limit}:{client}`, the client being its limit key
//! (`ClientIp::key`) and, for container operations, a digest of the session
//! id (a client's string of any length never becomes a key).
//!
//! Redis being down must not take the gateways down: every call is bounded
//! by [`REDIS_BOUND`], and a check Redis does not answer in time is counted
//! by this gateway's own [`WindowLimiter`] instead. After a failure the
//! gateway counts locally for [`RETRY_EVERY`] without asking (so an outage
//! does not add the bound to every request), then one check asks again.
//! During an outage each gateway counts alone: a client can get a budget
//! per gateway, the documented price of serving on.

use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::Script;
use sha2::{Digest, Sha256};

use super::headers::RateInfo;
use super::window::WindowLimiter;

/// The longest a check waits for Redis before counting locally.
pub const REDIS_BOUND: Duration = Duration::from_millis(250);
/// After Redis failed to answer, how long checks count locally before one
/// asks it again.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// While Redis stays down, how often that is logged as a warning.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// KEYS[1] the window; ARGV limit, window in ms, `hit` or `peek`.
/// Returns {counted (1/0), used, ms left (-2: no window)}.
const WINDOW_SCRIPT: &str = r"
local limit = tonumber(ARGV[1])
if ARGV[3] == 'peek' then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0')
  return {0, used, redis.call('PTTL', KEYS[1])}
end
local left = tonumber(ARGV[2])
if not redis.call('SET', KEYS[1], 0, 'PX', ARGV[2], 'NX') then
  left = redis.call('PTTL', KEYS[1])
  if left < 0 then
    -- Expired just now (-2; Redis before 7 lets time pass in a script),
    -- or without expiry (-1, written by something else), which would
    -- never reset: a fresh window either way.
    redis.call('SET', KEYS[1], 0, 'PX', ARGV[2])
    left = tonumber(ARGV[2])
  end
end
local used = tonumber(redis.call('GET', KEYS[1])) or 0
if used >= limit then
  return {0, used, left}
end
return {1, redis.call('INCR', KEYS[1]), left}
";

/// The rate-limit windows of a fleet, in one Redis.
pub struct SharedWindows {
    conn: ConnectionManager,
    prefix: String,
    script: Script,
    health: Mutex<Health>,
}

/// Whether Redis answers, for the fallback and its log lines.
#[derive(Default)]
struct Health {
    /// Set after a failure: until then checks count locally without asking.
    retry_at: Option<Instant>,
    down_since: Option<Instant>,
    last_warned: Option<Instant>,
    /// Checks counted locally since the last warning.
    counted_locally: u64,
}

#[derive(Clone, Copy)]
enum Mode {
    Hit,
    Peek,
}

impl SharedWindows {
    pub fn new(conn: ConnectionManager, prefix: String) -> SharedWindows {
        SharedWindows {
            conn,
            prefix,
            script: Script::new(WINDOW_SCRIPT),
            health: Mutex::new(Health::default()),
        }
    }

    /// Counts one request of `client` against the fleet's window for the
    /// limit `slug`, or against `local` (with `local_key`) when Redis does
    /// not answer in time.
    pub async fn check<K: Hash + Eq + Clone>(
        &self,
        local: &WindowLimiter<K>,
        slug: &str,
        client: &str,
        local_key: &K,
    ) -> Result<RateInfo, RateInfo> {
        let Some((counted, used, left)) = self.run(Mode::Hit, local, slug, client).await else {
            return local.check(local_key);
        };
        let limit = local.spec().count.get();
        let info = |remaining, retry_after| RateInfo {
            name: local.name(),
            spec: local.spec(),
            remaining,
            reset_in: left,
            retry_after,
        };
        if counted {
            Ok(info(limit.saturating_sub(used), None))
        } else {
            Err(info(0, Some(left)))
        }
    }

    /// The refusal `client` would get now, counting nothing (see
    /// [`WindowLimiter::peek_refusal`]).
    pub async fn peek_refusal<K: Hash + Eq + Clone>(
        &self,
        local: &WindowLimiter<K>,
        slug: &str,
        client: &str,
        local_key: &K,
    ) -> Option<RateInfo> {
        let Some((_, used, left)) = self.run(Mode::Peek, local, slug, client).await else {
            return local.peek_refusal(local_key);
        };
        (used >= local.spec().count.get() && !left.is_zero()).then_some(RateInfo {
            name: local.name(),
            spec: local.spec(),
            remaining: 0,
            reset_in: left,
            retry_after: Some(left),
        })
    }

    /// Runs the script: `(counted, used, time left)`, or `None` when Redis
    /// did not answer within the bound (or is being left alone after it
    /// did not).
    async fn run<K: Hash + Eq + Clone>(
        &self,
        mode: Mode,
        local: &WindowLimiter<K>,
        slug: &str,
        client: &str,
    ) -> Option<(bool, u32, Duration)> {
        if !self.may_ask() {
            return None;
        }
        let spec = local.spec();
        let mut call = self.script.prepare_invoke();
        call.key(format!("{}:{slug}:{client}", self.prefix))
            .arg(spec.count.get())
            .arg(u64::try_from(spec.per.as_millis()).unwrap_or(u64::MAX))
            .arg(match mode {
                Mode::Hit => "hit",
                Mode::Peek => "peek",
            });
        let mut conn = self.conn.clone();
        let reply =
            tokio::time::timeout(REDIS_BOUND, call.invoke_async::<(i64, i64, i64)>(&mut conn))
                .await;
        match reply {
            Ok(Ok((counted, used, left_ms))) => {
                self.answered();
                let used = u32::try_from(used.max(0)).unwrap_or(u32::MAX);
                let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
                Some((counted == 1, used, left))
            }
            Ok(Err(e)) => {
                self.failed(&e);
                None
            }
            Err(_) => {
                self.failed(&format_args!("no answer within {REDIS_BOUND:?}"));
                None
            }
        }
    }

    /// Whether to ask Redis now. After a failure only one check per
    /// [`RETRY_EVERY`] does; the others count locally meanwhile.
    fn may_ask(&self) -> bool {
        let now = Instant::now();
        let mut h = self.health.lock().unwrap();
        match h.retry_at {
            None => true,
            Some(at) if now < at => {
                h.counted_locally += 1;
                false
            }
            Some(_) => {
                h.retry_at = Some(now + RETRY_EVERY);
                true
            }
        }
    }

    fn answered(&self) {
        let mut h = self.health.lock().unwrap();
        h.retry_at = None;
        if let Some(since) = h.down_since.take() {
            let local = std::mem::take(&mut h.counted_locally);
            h.last_warned = None;
            drop(h);
            tracing::info!(
                down_for = ?since.elapsed(),
                counted_locally = local,
                "Redis answers again: rate limits are counted fleet-wide again"
            );
        }
    }

    fn failed(&self, why: &dyn std::fmt::Display) {
        let now = Instant::now();
        let mut h = self.health.lock().unwrap();
        h.retry_at = Some(now + RETRY_EVERY);
        h.counted_locally += 1;
        h.down_since.get_or_insert(now);
        let warn = h.last_warned.is_none_or(|t| now - t >= WARN_EVERY);
        let local = h.counted_locally;
        if warn {
            h.last_warned = Some(now);
            h.counted_locally = 0;
        }
        drop(h);
        if warn {
            tracing::warn!(
                error = %why,
                counted_locally = local,
                "Redis does not answer: rate limits are counted per gateway until it does"
            );
        } else {
            tracing::debug!(error = %why, "rate-limit check counted locally: Redis did not answer");
        }
    }
}

/// A fixed-length key part for a session id: the same on every gateway.
pub fn session_digest(session_id: &str) -> String {
    Sha256::digest(session_id.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::SystemTime;

    use super::*;
    use crate::limits::{ClientIp, Limits, RateLimit, RateLimits};

    /// A `redis-server` of this test's own, on a free loopback port, with
    /// no persistence; killed on drop.
    struct RedisServer {
        child: Option<Child>,
        port: u16,
        dir: std::path::PathBuf,
    }

    impl RedisServer {
        fn start() -> RedisServer {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = std::env::temp_dir()
                .join(format!("studio-limits-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let mut server = RedisServer {
                child: None,
                port,
                dir,
            };
            server.restart();
            server
        }

        /// Starts the server (again, on the same port: empty, as after a
        /// crash without persistence) and waits until it answers.
        fn restart(&mut self) {
            self.kill();
            let port = self.port.to_string();
            let child = Command::new("/usr/bin/redis-server")
                .args(["--port", &port, "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start /usr/bin/redis-server");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.answers_ping() {
                let exited = self.child.as_mut().unwrap().try_wait().unwrap();
                assert!(exited.is_none(), "redis-server exited: {exited:?}");
                assert!(Instant::now() < deadline, "redis-server does not answer");
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        fn answers_ping(&self) -> bool {
            use std::io::{Read, Write};
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 7];
            s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut buf).is_ok()
                && &buf == b"+PONG\r\n"
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        async fn connection(&self) -> ConnectionManager {
            redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
                .unwrap()
                .get_connection_manager()
                .await
                .expect("connect to the test's redis-server")
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            self.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Two gateways of one fleet.
    async fn gateways(redis: &RedisServer, cfg: RateLimits) -> (Limits, Limits) {
        let prefix = || "studio:{fleet}:rl".to_string();
        (
            Limits::shared(&cfg, redis.connection().await, prefix()),
            Limits::shared(&cfg, redis.connection().await, prefix()),
        )
    }

    fn only_general(limit: RateLimit) -> RateLimits {
        RateLimits {
            general: limit,
            ..Default::default()
        }
    }

    fn ip(last: u8) -> ClientIp {
        ClientIp(IpAddr::from([10, 0, 0, last]))
    }

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[tokio::test]
    async fn two_gateways_count_together() {
        let redis = RedisServer::start();
        let (a, b) = gateways(&redis, only_general(RateLimit::new(3, 60))).await;
        let client = ip(1);
        assert_eq!(a.general(client).await.unwrap().unwrap().remaining, 2);
        assert_eq!(a.general(client).await.unwrap().unwrap().remaining, 1);
        let last = b.general(client).await.unwrap().unwrap();
        assert_eq!((last.limit(), last.remaining), (3, 0));
        assert!(last.retry_after.is_none());
        for gateway in [&a, &b] {
            let refused = gateway.general(client).await.unwrap_err();
            assert_eq!((refused.limit(), refused.remaining), (3, 0));
            let wait = refused.retry_after.expect("a refusal says when to retry");
            assert_eq!(wait, refused.reset_in);
            assert!(
                wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
                "{wait:?}"
            );
            assert_eq!(refused.retry_after_secs(), 60);
            let reset = refused.reset_at();
            assert!(
                reset > unix_now() + 55 && reset <= unix_now() + 61,
                "{reset}"
            );
        }
        // Another client has its own budget, on either gateway.
        assert_eq!(b.general(ip(2)).await.unwrap().unwrap().remaining, 2);
        // The window's key expires with the window.
        let mut conn = redis.connection().await;
        let left: i64 = redis::cmd("PTTL")
            .arg("studio:{fleet}:rl:general:10.0.0.1")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(left > 55_000 && left <= 60_000, "{left}");
    }

    #[tokio::test]
    async fn container_and_auth_limits_hold_across_gateways() {
        let redis = RedisServer::start();
        let cfg = RateLimits {
            container: RateLimit::new(2, 60),
            auth: RateLimit::new(3, 900),
            ..Default::default()
        };
        let (a, b) = gateways(&redis, cfg).await;
        let client = ip(1);
        let session = Some("ses_0123456789abcdef");
        assert!(a.container(client, session).await.is_ok());
        assert!(b.container(client, session).await.is_ok());
        assert!(a.container(client, session).await.is_err());
        // Per session: another session, or none yet, has its own budget.
        assert!(b.container(client, Some("ses_other")).await.is_ok());
        assert!(b.container(client, None).await.is_ok());

        let addr = client.key();
        assert_eq!(a.auth.failed(addr).await.unwrap().unwrap().remaining, 2);
        assert!(b.auth.blocked(addr).await.is_none());
        assert_eq!(b.auth.failed(addr).await.unwrap().unwrap().remaining, 1);
        assert_eq!(a.auth.failed(addr).await.unwrap().unwrap().remaining, 0);
        for gateway in [&a, &b] {
            let locked = gateway.auth.blocked(addr).await.expect("locked out");
            assert_eq!(locked.name, "authentication");
            assert!(locked.retry_after_secs() > 890 && locked.retry_after_secs() <= 900);
        }
        assert!(a.auth.blocked(ip(2).key()).await.is_none());
    }

    #[tokio::test]
    async fn the_budget_is_back_when_the_window_ends() {
        let redis = RedisServer::start();
        let (a, b) = gateways(&redis, only_general(RateLimit::new(2, 1))).await;
        let client = ip(1);
        assert!(a.general(client).await.is_ok());
        assert!(b.general(client).await.is_ok());
        let refused = a.general(client).await.unwrap_err();
        let wait = refused.retry_after.unwrap();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        tokio::time::sleep(wait).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let info = loop {
            match b.general(client).await {
                Ok(info) => break info.unwrap(),
                Err(_) => assert!(Instant::now() < deadline, "the window never ended"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(info.remaining, 1, "the whole budget is back");
    }

    #[tokio::test]
    async fn redis_down_counts_locally_within_the_bound_then_shared_again() {
        let mut redis = RedisServer::start();
        let (a, b) = gateways(&redis, only_general(RateLimit::new(3, 60))).await;
        assert_eq!(a.general(ip(1)).await.unwrap().unwrap().remaining, 2);

        redis.kill();
        // Each gateway counts alone now: a fresh budget of 3 on A.
        let client = ip(2);
        for left in [2, 1, 0] {
            let started = Instant::now();
            let info = a.general(client).await.expect("counted locally").unwrap();
            assert_eq!(info.remaining, left);
            let took = started.elapsed();
            assert!(took < REDIS_BOUND + Duration::from_millis(500), "{took:?}");
        }
        let refused = a.general(client).await.unwrap_err();
        assert!(refused.retry_after_secs() > 55);
        assert!(b.general(client).await.is_ok(), "B counts on its own");
        // The auth limit falls back too.
        assert!(a.auth.failed(client.key()).await.unwrap().is_ok());

        redis.restart();
        // Shared again once both gateways have reconnected: a new client's
        // requests through A and B count together.
        let deadline = Instant::now() + Duration::from_secs(20);
        for last in 10.. {
            let c = ip(last);
            let first = a.general(c).await.unwrap().unwrap();
            let second = b.general(c).await.unwrap().unwrap();
            if (first.remaining, second.remaining) == (2, 1) {
                break;
            }
            assert!(Instant::now() < deadline, "the gateways never shared again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A window key that lost its expiry would never reset: the next
    /// check opens a fresh window on it.
    #[tokio::test]
    async fn a_key_without_expiry_gets_a_fresh_window() {
        let redis = RedisServer::start();
        let (a, _) = gateways(&redis, only_general(RateLimit::new(3, 60))).await;
        let key = "studio:{fleet}:rl:general:10.0.0.1";
        let mut conn = redis.connection().await;
        let () = redis::cmd("SET")
            .arg(key)
            .arg(3)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(a.general(ip(1)).await.unwrap().unwrap().remaining, 2);
        let left: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(left > 55_000, "{left}");
    }

    /// A Redis that takes connections but does not answer (stopped, as a
    /// swapped-out or overloaded host would be) costs a check at most the
    /// bound, and only one check a second pays even that.
    #[tokio::test]
    async fn a_redis_that_does_not_answer_costs_at_most_the_bound() {
        let redis = RedisServer::start();
        let (a, _) = gateways(&redis, only_general(RateLimit::new(100, 60))).await;
        assert_eq!(a.general(ip(1)).await.unwrap().unwrap().remaining, 99);
        let pid = redis.child.as_ref().unwrap().id() as libc::pid_t;
        let signal = |sig| assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        signal(libc::SIGSTOP);
        let mut slowest = Duration::ZERO;
        let mut waited = 0;
        let started = Instant::now();
        for _ in 0..20 {
            let t = Instant::now();
            assert!(a.general(ip(2)).await.is_ok());
            slowest = slowest.max(t.elapsed());
            waited += u32::from(t.elapsed() >= REDIS_BOUND);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let elapsed = started.elapsed();
        signal(libc::SIGCONT);
        assert!(
            slowest < REDIS_BOUND + Duration::from_millis(500),
            "{slowest:?}"
        );
        let most = elapsed.as_secs() as u32 + 2;
        assert!(
            (1..=most).contains(&waited),
            "{waited} of 20 checks waited for Redis in {elapsed:?}"
        );
    }

    #[test]
    fn session_digests_are_short_and_stable() {
        let d = session_digest(&"x".repeat(10_000));
        assert_eq!(d.len(), 16);
        assert_eq!(d, session_digest(&"x".repeat(10_000)));
        assert_ne!(d, session_digest("y"));
    }
}
