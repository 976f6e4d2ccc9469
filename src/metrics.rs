//! The server's own counters, updated on hot paths as plain atomics and
//! rendered by `GET /metrics` (`crate::api::metrics`) in Prometheus text.

use std::fmt::Write;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Default)]
pub struct Metrics {
    pub ws_connections: AtomicU64,
    pub ws_connections_total: AtomicU64,
    pub ws_messages_total: AtomicU64,
}

/// One series: name, type, help, value.
pub type Series<'a> = (&'a str, &'a str, &'a str, u64);

/// Prometheus text exposition of `series`.
pub fn render(series: &[Series<'_>]) -> String {
    let mut out = String::new();
    for (name, kind, help, value) in series {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out
}
