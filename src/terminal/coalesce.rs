//! When the pump should wait a moment for more output before sending it.
//!
//! A quiet shell's output (a keystroke's echo, a prompt) goes out the moment
//! it is read. A program that prints a lot in small writes (line-buffered
//! programs on a TTY write every line separately) would otherwise become one
//! message per line whenever the server keeps up with it. So once output has
//! been flowing at more than [`BUSY_BYTES`] within the last one to two
//! [`WINDOW`]s, the pump keeps reading for up to [`LINGER`] before it sends:
//! a flood becomes a few hundred messages a second at most, and nothing
//! waits longer than [`LINGER`].

use std::time::{Duration, Instant};

/// How long the pump keeps reading while output is flowing fast.
pub const LINGER: Duration = Duration::from_millis(2);
/// Output per window above which the shell counts as busy.
pub const BUSY_BYTES: usize = 2 * 1024;
pub const WINDOW: Duration = Duration::from_millis(10);

/// Bytes read in the current and the previous window.
#[derive(Debug)]
pub struct Burst {
    start: Instant,
    current: usize,
    previous: usize,
}

impl Burst {
    pub fn new(now: Instant) -> Self {
        Self {
            start: now,
            current: 0,
            previous: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= 2 * WINDOW {
            self.previous = 0;
            self.current = 0;
            self.start = now;
        } else if elapsed >= WINDOW {
            self.previous = self.current;
            self.current = 0;
            self.start += WINDOW;
        }
    }

    pub fn record(&mut self, bytes: usize, now: Instant) {
        self.roll(now);
        self.current += bytes;
    }

    /// Whether output is flowing fast enough that waiting for more pays.
    pub fn busy(&mut self, now: Instant) -> bool {
        self.roll(now);
        self.previous + self.current >= BUSY_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn keystrokes_never_make_it_busy() {
        let t0 = Instant::now();
        let mut burst = Burst::new(t0);
        // A fast typist's echo: a few bytes every millisecond for a second.
        for i in 0..1000 {
            burst.record(4, t0 + ms(i));
            assert!(!burst.busy(t0 + ms(i)));
        }
    }

    #[test]
    fn a_flood_of_small_writes_is_busy_and_stays_busy_across_windows() {
        let t0 = Instant::now();
        let mut burst = Burst::new(t0);
        let mut busy_reads = 0;
        // 250-byte reads every 100 µs for 100 ms.
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(100 * i);
            if burst.busy(now) {
                busy_reads += 1;
            }
            burst.record(250, now);
        }
        // Only the first few reads, before 2 KiB have been seen, go out alone.
        assert_eq!(busy_reads, 1000 - BUSY_BYTES.div_ceil(250));
    }

    #[test]
    fn it_calms_down_once_output_stops() {
        let t0 = Instant::now();
        let mut burst = Burst::new(t0);
        burst.record(100_000, t0);
        assert!(burst.busy(t0 + ms(5)));
        assert!(burst.busy(t0 + ms(15)), "the previous window still counts");
        assert!(!burst.busy(t0 + ms(25)));
        assert!(!burst.busy(t0 + ms(10_000)));
    }
}
