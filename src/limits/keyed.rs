//! One keyed limit: governor's GCRA limiter over a [`BoundedStore`],
//! answering with what the `X-RateLimit-*` headers need.
//!
//! GCRA reads `N/WINDOW` as a burst of `N` that refills one request every
//! `WINDOW / N`: the `N + 1`-th request of a burst is refused, and a client
//! that keeps knocking gets through at the sustained rate, never faster.

use std::hash::Hash;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::{Quota, RateLimiter};

use super::headers::RateInfo;
use super::spec::RateSpec;
use super::store::BoundedStore;

pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    inner: RateLimiter<K, BoundedStore<K>, C, StateInformationMiddleware>,
    spec: RateSpec,
    name: &'static str,
    /// Time for one request's worth of budget to come back.
    period: Duration,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(name: &'static str, spec: RateSpec, cap: usize) -> Self {
        Self::with_clock(name, spec, cap, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> KeyedLimiter<K, C> {
    pub fn with_clock(name: &'static str, spec: RateSpec, cap: usize, clock: C) -> Self {
        let period = (spec.per / spec.count.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("period is non-zero")
            .allow_burst(spec.count);
        let inner = RateLimiter::<K, _, C, NoOpMiddleware<C::Instant>>::new(
            quota,
            BoundedStore::new(cap),
            clock,
        )
        .with_middleware::<StateInformationMiddleware>();
        KeyedLimiter {
            inner,
            spec,
            name,
            period,
        }
    }

    /// Counts one request for `key`: `Ok` with the budget left, or `Err`
    /// with the wait before the next request would pass.
    pub fn check(&self, key: &K) -> Result<RateInfo, RateInfo> {
        let limit = self.spec.count.get();
        match self.inner.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(limit);
                Ok(self.info(remaining, self.period * (limit - remaining), None))
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.inner.clock().now());
                Err(self.info(0, wait, Some(wait)))
            }
        }
    }

    /// What a refusal of `wait` looks like, for verdicts kept outside governor.
    pub fn refusal(&self, wait: Duration) -> RateInfo {
        self.info(0, wait, Some(wait))
    }

    /// Time for one request's worth of budget to come back.
    pub fn period(&self) -> Duration {
        self.period
    }

    fn info(&self, remaining: u32, reset_in: Duration, retry_after: Option<Duration>) -> RateInfo {
        RateInfo {
            name: self.name,
            spec: self.spec,
            remaining,
            reset_in,
            retry_after,
        }
    }

    /// Forgets keys whose budget is full again (they are indistinguishable
    /// from new ones), and gives the memory back.
    pub fn prune(&self) {
        let before = self.inner.len();
        self.inner.retain_recent();
        if self.inner.len() < before / 2 {
            self.inner.shrink_to_fit();
        }
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::num::NonZeroU32;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn spec(n: u32, secs: u64) -> RateSpec {
        RateSpec {
            count: NonZeroU32::new(n).unwrap(),
            per: Duration::from_secs(secs),
        }
    }

    #[test]
    fn refuses_exactly_after_n_and_refills_at_the_rate() {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimiter::with_clock("test", spec(3, 60), 100, clock.clone());
        let ip = IpAddr::from([10, 0, 0, 1]);
        let remaining: Vec<u32> = (0..3).map(|_| l.check(&ip).unwrap().remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = l.check(&ip).unwrap_err();
        assert_eq!(refused.retry_after, Some(Duration::from_secs(20)));
        // Another client is not affected.
        assert!(l.check(&IpAddr::from([10, 0, 0, 2])).is_ok());
        clock.advance(Duration::from_secs(20));
        assert_eq!(l.check(&ip).unwrap().remaining, 0);
        assert!(l.check(&ip).is_err());
    }

    #[test]
    fn a_million_distinct_ips_stay_under_the_cap() {
        const CAP: usize = 10_000;
        let clock = FakeRelativeClock::default();
        let l = KeyedLimiter::with_clock("test", spec(100, 60), CAP, clock.clone());
        let victim = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..100 {
            l.check(&victim).unwrap();
        }
        let mut max_len = 0;
        for i in 0..1_000_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let _ = l.check(&ip);
            if i % 1000 == 0 {
                max_len = max_len.max(l.len());
            }
            if i % 100_000 == 0 {
                // What the pruner task does every few seconds.
                clock.advance(Duration::from_secs(1));
                l.prune();
            }
        }
        max_len = max_len.max(l.len());
        assert!(
            max_len <= CAP + 1,
            "{max_len} keys tracked with a cap of {CAP}"
        );
        // The flood neither reset nor took the budget of a tracked client.
        assert!(l.check(&victim).unwrap().remaining < 50);
        // Once the flood is over, pruning gives everything back.
        clock.advance(Duration::from_secs(61));
        l.prune();
        assert_eq!(l.len(), 0);
    }
}
