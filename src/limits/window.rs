//! One keyed limit: at most `N` requests per window, the window opening at
//! a client's first request and the whole budget coming back when it ends.
//!
//! This is the contract's reading of `N/WINDOW` ("100 requests per minute",
//! `X-RateLimit-Remaining` left in the window, `X-RateLimit-Reset` when the
//! limit resets), and why it is not a GCRA (governor): a GCRA refills one
//! request every `WINDOW / N`, so a client spacing its requests gets nearly
//! `2N` through in one window (19 container operations in a minute against
//! a limit of 10), and a test or client that takes a few seconds to use its
//! `N` finds the `N + 1`-th let through.
//!
//! Keys are client addresses, which an attacker chooses, so the map is hard
//! capped: once it holds `cap` keys, a key it does not know yet is counted
//! in one shared overflow window. Clients already tracked keep their own
//! budget (a flood neither resets nor takes it), newcomers during a flood
//! share one, and memory never exceeds `cap + 1` entries. Ended windows are
//! pruned.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::headers::RateInfo;
use super::spec::RateSpec;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot<K> {
    Client(K),
    Overflow,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    ends: Instant,
    used: u32,
}

pub struct WindowLimiter<K: Hash + Eq + Clone> {
    windows: Mutex<HashMap<Slot<K>, Window>>,
    spec: RateSpec,
    name: &'static str,
    cap: usize,
}

impl<K: Hash + Eq + Clone> WindowLimiter<K> {
    pub fn new(name: &'static str, spec: RateSpec, cap: usize) -> Self {
        WindowLimiter {
            windows: Mutex::new(HashMap::new()),
            spec,
            name,
            cap: cap.max(1),
        }
    }

    /// Which limit this is, as the refusal names it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn spec(&self) -> RateSpec {
        self.spec
    }

    /// Counts one request for `key`: `Ok` with the budget left in its
    /// window, or `Err` with the wait until the window ends.
    pub fn check(&self, key: &K) -> Result<RateInfo, RateInfo> {
        self.check_at(key, Instant::now())
    }

    pub fn check_at(&self, key: &K, now: Instant) -> Result<RateInfo, RateInfo> {
        let limit = self.spec.count.get();
        let mut windows = self.windows.lock().unwrap();
        let mut slot = Slot::Client(key.clone());
        if windows.len() >= self.cap && !windows.contains_key(&slot) {
            slot = Slot::Overflow;
        }
        let w = windows.entry(slot).or_insert(Window {
            ends: now + self.spec.per,
            used: 0,
        });
        if now >= w.ends {
            *w = Window {
                ends: now + self.spec.per,
                used: 0,
            };
        }
        let reset_in = w.ends - now;
        if w.used >= limit {
            return Err(self.info(0, reset_in, Some(reset_in)));
        }
        w.used += 1;
        Ok(self.info(limit - w.used, reset_in, None))
    }

    /// The refusal `key` would get now, without counting anything.
    pub fn peek_refusal(&self, key: &K) -> Option<RateInfo> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap();
        let w = windows.get(&Slot::Client(key.clone()))?;
        let reset_in = w
            .ends
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())?;
        (w.used >= self.spec.count.get()).then(|| self.info(0, reset_in, Some(reset_in)))
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

    /// Forgets ended windows (such a key is the same as a new one), and
    /// gives the memory back after a flood.
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    pub fn prune_at(&self, now: Instant) {
        let mut windows = self.windows.lock().unwrap();
        let before = windows.len();
        windows.retain(|_, w| w.ends > now);
        if windows.len() < before / 2 {
            windows.shrink_to_fit();
        }
    }

    pub fn len(&self) -> usize {
        self.windows.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::num::NonZeroU32;

    use super::*;

    fn spec(n: u32, secs: u64) -> RateSpec {
        RateSpec {
            count: NonZeroU32::new(n).unwrap(),
            per: Duration::from_secs(secs),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn n_per_window_however_they_are_spaced_then_all_back_at_once() {
        let l = WindowLimiter::new("test", spec(10, 60), 100);
        let ip = IpAddr::from([10, 0, 0, 1]);
        let t0 = Instant::now();
        // One request every 5 s: ten pass, the eleventh (at 50 s) does not.
        for i in 0..10u32 {
            let info = l.check_at(&ip, t0 + secs(5 * u64::from(i))).unwrap();
            assert_eq!(info.remaining, 9 - i);
            assert_eq!(info.reset_in, secs(60 - 5 * u64::from(i)));
        }
        let refused = l.check_at(&ip, t0 + secs(50)).unwrap_err();
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after, Some(secs(10)));
        assert_eq!(refused.reset_in, secs(10));
        assert!(l.check_at(&ip, t0 + secs(59)).is_err());
        // Another client is not affected.
        assert!(l.check_at(&IpAddr::from([10, 0, 0, 2]), t0).is_ok());
        // The window ends: the whole budget is back.
        assert_eq!(l.check_at(&ip, t0 + secs(60)).unwrap().remaining, 9);
    }

    #[test]
    fn peeking_counts_nothing() {
        let l = WindowLimiter::new("test", spec(2, 900), 100);
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert!(l.peek_refusal(&ip).is_none());
        l.check(&ip).unwrap();
        assert!(l.peek_refusal(&ip).is_none());
        l.check(&ip).unwrap();
        let refusal = l.peek_refusal(&ip).expect("budget used up");
        assert!(refusal.retry_after.unwrap() > secs(890));
        assert!(l.check(&ip).is_err());
    }

    #[test]
    fn a_million_distinct_ips_stay_under_the_cap() {
        const CAP: usize = 10_000;
        let l = WindowLimiter::new("test", spec(100, 60), CAP);
        let t0 = Instant::now();
        let victim = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..60 {
            l.check_at(&victim, t0).unwrap();
        }
        let mut max_len = 0;
        for i in 0..1_000_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let now = t0 + Duration::from_micros(u64::from(i));
            let _ = l.check_at(&ip, now);
            if i % 1000 == 0 {
                max_len = max_len.max(l.len());
            }
            if i % 100_000 == 0 {
                l.prune_at(now);
            }
        }
        max_len = max_len.max(l.len());
        assert!(
            max_len <= CAP + 1,
            "{max_len} keys tracked with a cap of {CAP}"
        );
        // The flood neither reset nor took the budget of a tracked client.
        assert_eq!(l.check_at(&victim, t0 + secs(2)).unwrap().remaining, 39);
        // Newcomers during the flood shared one budget, long used up.
        assert!(l
            .check_at(&IpAddr::from([10, 99, 0, 1]), t0 + secs(2))
            .is_err());
        // Once the windows have ended, pruning gives everything back.
        l.prune_at(t0 + secs(120));
        assert_eq!(l.len(), 0);
    }
}
