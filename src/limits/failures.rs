//! The authentication limit: failed token checks per IP.
//!
//! Only failures are counted, but once an IP has used its budget every
//! attempt from it is refused with 429 until its window ends, the right
//! token included. Otherwise a guesser would still see which guess is right
//! (200 instead of 429) and the limit would not slow guessing at all.
//!
//! In a fleet the failures are counted in Redis like the other limits
//! (`super::shared`), so a guesser cannot spread guesses over gateways.

use std::net::IpAddr;
use std::sync::Arc;

use super::headers::RateInfo;
use super::shared::SharedWindows;
use super::spec::RateLimit;
use super::window::WindowLimiter;

pub struct AuthFailures {
    limiter: Option<WindowLimiter<IpAddr>>,
    shared: Option<Arc<SharedWindows>>,
}

const SLUG: &str = "auth";

impl AuthFailures {
    pub fn new(limit: RateLimit, cap: usize) -> AuthFailures {
        AuthFailures {
            limiter: limit
                .0
                .map(|spec| WindowLimiter::new("authentication", spec, cap)),
            shared: None,
        }
    }

    /// Counts failures fleet-wide from now on.
    pub(super) fn share(&mut self, shared: Arc<SharedWindows>) {
        self.shared = Some(shared);
    }

    /// Checked before looking at the token: `Some` while `ip` is locked out.
    pub async fn blocked(&self, ip: IpAddr) -> Option<RateInfo> {
        let limiter = self.limiter.as_ref()?;
        match &self.shared {
            Some(s) => s.peek_refusal(limiter, SLUG, &ip.to_string(), &ip).await,
            None => limiter.peek_refusal(&ip),
        }
    }

    /// Counts a failed check: `Ok` (answer 401) while budget was left,
    /// `Err` (answer 429) once it is used up. `None` when the limit is off.
    pub async fn failed(&self, ip: IpAddr) -> Option<Result<RateInfo, RateInfo>> {
        let limiter = self.limiter.as_ref()?;
        Some(match &self.shared {
            Some(s) => s.check(limiter, SLUG, &ip.to_string(), &ip).await,
            None => limiter.check(&ip),
        })
    }

    pub fn prune(&self) {
        if let Some(l) = &self.limiter {
            l.prune();
        }
    }

    /// IPs with failures on record.
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn five_failures_then_locked_out() {
        let f = AuthFailures::new(RateLimit::new(5, 900), 100);
        let ip = IpAddr::from([10, 1, 1, 1]);
        for left in (0..5).rev() {
            assert!(f.blocked(ip).await.is_none());
            assert_eq!(f.failed(ip).await.unwrap().unwrap().remaining, left);
        }
        let locked = f.blocked(ip).await.expect("locked after five failures");
        assert_eq!(locked.remaining, 0);
        assert!(
            locked.retry_after_secs() > 890 && locked.retry_after_secs() <= 900,
            "locked until the 15-minute window ends: {locked:?}"
        );
        assert!(f.failed(ip).await.unwrap().is_err());
        assert!(f.blocked(IpAddr::from([10, 1, 1, 2])).await.is_none());
    }

    #[tokio::test]
    async fn off_counts_nothing() {
        let f = AuthFailures::new(RateLimit(None), 100);
        assert!(f.failed(IpAddr::from([10, 1, 1, 1])).await.is_none());
        assert!(f.blocked(IpAddr::from([10, 1, 1, 1])).await.is_none());
    }
}
