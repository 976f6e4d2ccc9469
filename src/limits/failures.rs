//! The authentication limit: failed token checks per IP.
//!
//! Only failures are counted, but once an IP has used its budget every
//! attempt from it is refused with 429 until the budget refills, the right
//! token included. Otherwise a guesser would still see which guess is right
//! (200 instead of 429) and the limit would not slow guessing at all.
//! governor has no "peek", so the lock-out verdict it gave is remembered
//! here, in a map as bounded as the limiter's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use super::headers::RateInfo;
use super::keyed::KeyedLimiter;
use super::spec::RateLimit;

pub struct AuthFailures {
    limiter: Option<KeyedLimiter<IpAddr>>,
    locked: Mutex<HashMap<IpAddr, Instant>>,
    cap: usize,
}

impl AuthFailures {
    pub fn new(limit: RateLimit, cap: usize) -> AuthFailures {
        AuthFailures {
            limiter: limit
                .0
                .map(|spec| KeyedLimiter::new("authentication", spec, cap)),
            locked: Mutex::new(HashMap::new()),
            cap,
        }
    }

    /// Checked before looking at the token: `Some` while `ip` is locked out.
    pub fn blocked(&self, ip: IpAddr) -> Option<RateInfo> {
        let limiter = self.limiter.as_ref()?;
        let until = *self.locked.lock().unwrap().get(&ip)?;
        let wait = until.checked_duration_since(Instant::now())?;
        Some(limiter.refusal(wait))
    }

    /// Counts a failed check: `Ok` (answer 401) while budget was left,
    /// `Err` (answer 429) once it is used up. `None` when the limit is off.
    pub fn failed(&self, ip: IpAddr) -> Option<Result<RateInfo, RateInfo>> {
        let limiter = self.limiter.as_ref()?;
        let verdict = limiter.check(&ip);
        let lock_for = match &verdict {
            Ok(info) if info.remaining == 0 => Some(limiter.period()),
            Ok(_) => None,
            Err(info) => info.retry_after,
        };
        if let Some(d) = lock_for {
            let mut locked = self.locked.lock().unwrap();
            if locked.len() >= self.cap {
                let now = Instant::now();
                locked.retain(|_, until| *until > now);
            }
            // Still full: the limiter itself keeps refusing wrong tokens.
            if locked.len() < self.cap {
                locked.insert(ip, Instant::now() + d);
            }
        }
        Some(verdict)
    }

    pub fn prune(&self) {
        if let Some(l) = &self.limiter {
            l.prune();
        }
        let now = Instant::now();
        self.locked.lock().unwrap().retain(|_, until| *until > now);
    }

    /// IPs with failures on record.
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_then_locked_out() {
        let f = AuthFailures::new(RateLimit::new(5, 900), 100);
        let ip = IpAddr::from([10, 1, 1, 1]);
        for left in (0..5).rev() {
            assert!(f.blocked(ip).is_none());
            assert_eq!(f.failed(ip).unwrap().unwrap().remaining, left);
        }
        let locked = f.blocked(ip).expect("locked after five failures");
        assert_eq!(locked.remaining, 0);
        assert!(
            locked.retry_after_secs() > 170 && locked.retry_after_secs() <= 180,
            "{locked:?}"
        );
        assert!(f.failed(ip).unwrap().is_err());
        assert!(f.blocked(IpAddr::from([10, 1, 1, 2])).is_none());
    }

    #[test]
    fn off_counts_nothing() {
        let f = AuthFailures::new(RateLimit(None), 100);
        assert!(f.failed(IpAddr::from([10, 1, 1, 1])).is_none());
        assert!(f.blocked(IpAddr::from([10, 1, 1, 1])).is_none());
    }
}
