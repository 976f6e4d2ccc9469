//! Rate-limit settings: the `N/DURATION` (or `off`) values of the
//! `--rate-limit-*` flags, and the defaults from the seed's table.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// One limit: at most `count` requests per `per`, or no limit at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit(pub Option<RateSpec>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSpec {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl RateLimit {
    pub const fn new(count: u32, per_secs: u64) -> RateLimit {
        match NonZeroU32::new(count) {
            Some(count) => RateLimit(Some(RateSpec {
                count,
                per: Duration::from_secs(per_secs),
            })),
            None => RateLimit(None),
        }
    }

    /// `10/1m`, `5/15m`, `100/60s`, `7/90` (seconds), `3/1h`, or `off`.
    pub fn parse(s: &str) -> Result<RateLimit, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(RateLimit(None));
        }
        let bad = |why: &str| {
            format!("invalid rate limit {s:?}: {why}; use N/DURATION (e.g. 10/1m, 5/15m) or off")
        };
        let (n, d) = t.split_once('/').ok_or_else(|| bad("missing '/'"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("N must be a whole number"))?;
        let count = NonZeroU32::new(count).ok_or_else(|| bad("N must be at least 1"))?;
        // A bare number is seconds, as in every other duration setting.
        let d = d.trim();
        let per = match d.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => humantime::parse_duration(d).map_err(|_| bad("bad duration"))?,
        };
        if per < Duration::from_secs(1) {
            return Err(bad("the duration must be at least 1s"));
        }
        Ok(RateLimit(Some(RateSpec { count, per })))
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("off"),
            Some(s) => write!(f, "{}/{}", s.count, humantime::format_duration(s.per)),
        }
    }
}

/// The five limits of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Every `/api/*` request but `/api/health`, per IP.
    pub general: RateLimit,
    /// `POST`/`DELETE /api/containers…` and WebSocket `create`, per IP and session.
    pub container: RateLimit,
    /// REST and WebSocket preview configuration, per IP.
    pub preview: RateLimit,
    /// WebSocket upgrades, per IP.
    pub ws: RateLimit,
    /// Failed token checks, per IP.
    pub auth: RateLimit,
}

impl Default for RateLimits {
    /// The seed's table.
    fn default() -> Self {
        RateLimits {
            general: RateLimit::new(100, 60),
            container: RateLimit::new(10, 60),
            preview: RateLimit::new(20, 60),
            ws: RateLimit::new(5, 60),
            auth: RateLimit::new(5, 15 * 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_durations_and_off() {
        assert_eq!(RateLimit::parse("10/1m").unwrap(), RateLimit::new(10, 60));
        assert_eq!(RateLimit::parse(" 5/15m ").unwrap(), RateLimit::new(5, 900));
        assert_eq!(
            RateLimit::parse("100/60s").unwrap(),
            RateLimit::new(100, 60)
        );
        assert_eq!(RateLimit::parse("3/1h").unwrap(), RateLimit::new(3, 3600));
        assert_eq!(RateLimit::parse("7/90").unwrap(), RateLimit::new(7, 90));
        assert_eq!(RateLimit::parse("off").unwrap(), RateLimit(None));
        assert_eq!(RateLimit::parse("OFF").unwrap(), RateLimit(None));
        for bad in [
            "", "10", "0/1m", "-1/1m", "x/1m", "10/", "10/soon", "10/100ms", "1.5/1m", "10/0",
        ] {
            let err = RateLimit::parse(bad).unwrap_err();
            assert!(err.contains("N/DURATION"), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_are_the_seed_table() {
        let d = RateLimits::default();
        assert_eq!(d.general.to_string(), "100/1m");
        assert_eq!(d.container.to_string(), "10/1m");
        assert_eq!(d.preview.to_string(), "20/1m");
        assert_eq!(d.ws.to_string(), "5/1m");
        assert_eq!(d.auth.to_string(), "5/15m");
    }
}
