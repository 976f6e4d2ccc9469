//! The config file and the setting values: `Settings::from_file_text` (the
//! TOML file read with the flags' parsers and checked as at start-up), and
//! each value parser on its own: rate limits (`RateLimit::parse`),
//! durations, sizes, switches, addresses, egress rules.
//!
//! Invariants: never a panic; a rate limit prints as something that parses
//! back to it; a duration is never zero and a size never 0; settings the
//! file gives pass the checks the server relies on.
#![no_main]

use claude_studio::config::{parse, Settings};
use claude_studio::limits::RateLimit;
use claude_studio::runtime::firewall::{Allow, EgressMode};
use libfuzzer_sys::fuzz_target;

fn check_rate_limit(s: &str) {
    let Ok(r) = RateLimit::parse(s) else {
        return;
    };
    if let Some(spec) = r.0 {
        assert!(spec.per >= std::time::Duration::from_secs(1), "{s:?}");
    }
    let shown = r.to_string();
    assert_eq!(RateLimit::parse(&shown), Ok(r), "{s:?} shows as {shown:?}");
}

fn check_values(s: &str) {
    check_rate_limit(s);
    if let Ok(d) = parse::duration(s) {
        assert!(!d.is_zero(), "{s:?}");
    }
    if let Ok(n) = parse::bytes(s) {
        assert!(n > 0, "{s:?}");
    }
    let _ = parse::switch(s);
    let _ = parse::addr(s);
    let _ = parse::number::<f64>(s);
    let _ = EgressMode::parse(s);
    if let Ok(a) = Allow::parse(s) {
        let _ = a.port;
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Each line on its own, as a flag's value would be.
    for line in text.lines().take(16) {
        check_values(line);
    }
    let Ok(s) = Settings::from_file_text(text) else {
        return;
    };
    assert!(s.cpus.is_finite() && s.cpus > 0.0);
    assert!(s.pids_limit >= 1 && s.max_sessions_per_owner >= 1 && s.max_connections >= 1);
    assert!(!s.session_timeout.is_zero() && !s.heartbeat_interval.is_zero());
    assert!(s.memory > 0 && s.max_file_size > 0);
    let limits = s.rate_limits();
    for r in [
        limits.general,
        limits.container,
        limits.preview,
        limits.ws,
        limits.auth,
    ] {
        assert_eq!(RateLimit::parse(&r.to_string()), Ok(r));
    }
    claude_studio::image::ImageRef::parse(&s.default_image).expect("checked");
    let _ = s.container_limits();
    let _ = s.egress_policy();
    let _ = s.instance_state_dir();
});
