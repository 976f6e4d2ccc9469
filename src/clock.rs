//! Wall-clock time as the protocol carries it (Unix milliseconds and
//! seconds). Durations and deadlines use `Instant`; these are for values a
//! client or a label sees.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn now_secs() -> i64 {
    (now_millis() / 1000) as i64
}
