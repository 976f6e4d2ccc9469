//! What a limit tells the client: `X-RateLimit-*` on every limited
//! response, and `Retry-After` on a 429 (whose body `crate::error` makes).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};

use super::spec::{RateLimit, RateSpec};

/// The state of one limit for one client after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// Which limit ("general API", "container operations", …).
    pub name: &'static str,
    pub spec: RateSpec,
    pub remaining: u32,
    /// Until the window ends and the whole budget is back.
    pub reset_in: Duration,
    /// Set when the request was refused.
    pub retry_after: Option<Duration>,
}

impl RateInfo {
    pub fn limit(&self) -> u32 {
        self.spec.count.get()
    }

    /// Unix seconds, rounded up so that a client waiting until then passes.
    pub fn reset_at(&self) -> u64 {
        let at = SystemTime::now() + self.reset_in;
        let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }

    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after.unwrap_or(self.reset_in);
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// Of two limits that apply, the one the client will hit first: the
    /// fewer requests left, then the smaller limit.
    pub fn tightest(a: Option<RateInfo>, b: Option<RateInfo>) -> Option<RateInfo> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if (b.remaining, b.limit()) < (a.remaining, a.limit()) {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        }
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit()));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset_at()));
        if self.retry_after.is_some() {
            headers.insert("retry-after", HeaderValue::from(self.retry_after_secs()));
        }
    }

    /// Why a request was refused, in words.
    pub fn refusal_message(&self) -> String {
        format!(
            "Rate limit exceeded for {}: {} allowed; retry in {} s",
            self.name,
            RateLimit(Some(self.spec)),
            self.retry_after_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn info(remaining: u32, limit: u32, refused: bool) -> RateInfo {
        RateInfo {
            name: "test",
            spec: RateSpec {
                count: NonZeroU32::new(limit).unwrap(),
                per: Duration::from_secs(60),
            },
            remaining,
            reset_in: Duration::from_millis(1500),
            retry_after: refused.then_some(Duration::from_millis(1500)),
        }
    }

    #[test]
    fn tightest_is_the_one_with_fewest_left() {
        let general = info(99, 100, false);
        let container = info(9, 10, false);
        assert_eq!(
            RateInfo::tightest(Some(general), Some(container)),
            Some(container)
        );
        assert_eq!(RateInfo::tightest(Some(container), None), Some(container));
        assert_eq!(RateInfo::tightest(None, None), None);
    }

    #[test]
    fn a_refusal_has_headers() {
        let mut h = HeaderMap::new();
        info(0, 3, true).apply(&mut h);
        assert_eq!(h["x-ratelimit-limit"], "3");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert_eq!(h["retry-after"], "2");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset > now && reset <= now + 3, "{reset} vs {now}");
        assert!(info(0, 3, true).refusal_message().contains("3/1m"));
    }
}
