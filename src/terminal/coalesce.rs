//! When the pump should wait a moment for more output before sending it.
//!
//! A quiet shell's output (a keystroke's echo, a prompt) goes out the moment
//! it is read. A program that prints a lot in small writes (line-buffered
//! programs on a TTY write every line separately) would otherwise become one
//! message per line whenever the server keeps up with it. So once output has
//! been flowing fast — [`BUSY_READS`] reads or [`BUSY_BYTES`] within the last
//! one to two [`WINDOW`]s — the pump keeps reading for a while before it
//! sends: first [`LINGER`], growing with how long the flood has lasted up to
//! [`MAX_LINGER`] (one display frame). A short burst costs at most 2 ms of
//! latency, and a long one becomes at most about 60 messages a second however
//! slowly the machine runs the program. A full read buffer goes out at once,
//! so none of this slows a fast stream down.
//!
//! Output that answers input never waits: the first read after input (see
//! [`InputPending`]) goes out as it comes, so an echo is immediate even when
//! a program types as fast as echoes return.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the pump keeps reading once output starts flowing fast.
pub const LINGER: Duration = Duration::from_millis(2);
/// The longest it keeps reading, once a flood has lasted [`MAX_LINGER`] ×
/// [`GROWTH`].
pub const MAX_LINGER: Duration = Duration::from_millis(16);
/// A flood that has lasted `t` lingers `t / GROWTH` (within the bounds).
const GROWTH: u32 = 8;
/// Reads within one to two windows from which the shell counts as busy
/// (160–320 a second). Every read counts, also those made while lingering,
/// so that coalescing does not hide the flood it is coalescing.
pub const BUSY_READS: usize = 8;
/// Output per window above which the shell counts as busy.
pub const BUSY_BYTES: usize = 1024;
/// Longer than [`MAX_LINGER`], so that a flood keeps its state from one
/// lingering read to the next.
pub const WINDOW: Duration = Duration::from_millis(25);

/// What was read in one window.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    bytes: usize,
    reads: usize,
}

/// Reads in the current and the previous window, and since when output has
/// been flowing fast.
#[derive(Debug)]
pub struct Burst {
    start: Instant,
    current: Tally,
    previous: Tally,
    busy_since: Option<Instant>,
}

impl Burst {
    pub fn new(now: Instant) -> Self {
        Self {
            start: now,
            current: Tally::default(),
            previous: Tally::default(),
            busy_since: None,
        }
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= 2 * WINDOW {
            // Quiet for a whole window: whatever flood there was is over.
            self.previous = Tally::default();
            self.current = Tally::default();
            self.start = now;
            self.busy_since = None;
        } else if elapsed >= WINDOW {
            self.previous = self.current;
            self.current = Tally::default();
            self.start += WINDOW;
        }
    }

    /// One read of `bytes`.
    pub fn record(&mut self, bytes: usize, now: Instant) {
        self.roll(now);
        self.current.bytes += bytes;
        self.current.reads += 1;
    }

    /// How long to keep reading before sending, if output is flowing fast
    /// enough that waiting for more pays.
    pub fn linger(&mut self, now: Instant) -> Option<Duration> {
        self.roll(now);
        let bytes = self.previous.bytes + self.current.bytes;
        let reads = self.previous.reads + self.current.reads;
        if bytes < BUSY_BYTES && reads < BUSY_READS {
            self.busy_since = None;
            return None;
        }
        let lasted = now.saturating_duration_since(*self.busy_since.get_or_insert(now));
        Some((lasted / GROWTH).clamp(LINGER, MAX_LINGER))
    }
}

/// Set when input goes to the shell and taken by the pump's next read: that
/// read answers the input (its echo, a prompt) and goes out at once.
#[derive(Debug, Default)]
pub struct InputPending(AtomicBool);

impl InputPending {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether input came since the last call.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn occasional_output_is_never_busy() {
        let t0 = Instant::now();
        let mut burst = Burst::new(t0);
        // A progress bar redrawn 100 times a second, 40 bytes each time.
        for i in 0..1000 {
            let now = t0 + ms(10 * i);
            assert_eq!(burst.linger(now), None);
            burst.record(40, now);
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
            if burst.linger(now).is_some() {
                busy_reads += 1;
            }
            burst.record(250, now);
        }
        // Only the first few reads, before 1 KiB have been seen, go out alone.
        assert_eq!(busy_reads, 1000 - BUSY_BYTES.div_ceil(250));
    }

    #[test]
    fn many_tiny_reads_are_busy_too() {
        let t0 = Instant::now();
        let mut burst = Burst::new(t0);
        // A slow shell loop: one 11-byte line every 500 µs.
        let busy = (0..200u64)
            .filter(|i| {
                let now = t0 + Duration::from_micros(500 * i);
                let busy = burst.linger(now).is_some();
                burst.record(11, now);
                busy
            })
            .count();
        assert_eq!(busy, 200 - BUSY_READS);
    }

    #[test]
    fn it_calms_down_once_output_stops() {
        let t0 = Instant::now();
        let mut burst = Burst::new(t0);
        burst.record(100_000, t0);
        assert!(burst.linger(t0 + ms(5)).is_some());
        assert!(
            burst.linger(t0 + ms(35)).is_some(),
            "the previous window still counts"
        );
        assert_eq!(burst.linger(t0 + ms(55)), None);
        assert_eq!(burst.linger(t0 + ms(10_000)), None);
    }

    #[test]
    fn a_long_flood_lingers_longer_and_a_new_one_starts_short_again() {
        let t0 = Instant::now();
        let mut burst = Burst::new(t0);
        let mut lingers = Vec::new();
        // An 11-byte line every 200 µs for a second.
        for i in 0..5000u64 {
            let now = t0 + Duration::from_micros(200 * i);
            lingers.push(burst.linger(now));
            burst.record(11, now);
        }
        let busy: Vec<Duration> = lingers.iter().flatten().copied().collect();
        assert!(busy.len() > 4900, "a line every 200 µs is a flood");
        assert_eq!(busy[0], LINGER);
        assert!(busy.windows(2).all(|w| w[0] <= w[1]), "never shrinks");
        assert_eq!(*busy.last().unwrap(), MAX_LINGER);
        // Quiet for a while, then another burst: back to the short wait.
        let later = t0 + ms(2000);
        burst.record(4096, later);
        assert_eq!(burst.linger(later + ms(1)), Some(LINGER));
    }

    #[test]
    fn input_is_answered_once() {
        let pending = InputPending::default();
        assert!(!pending.take(), "no input yet");
        pending.mark();
        pending.mark();
        assert!(pending.take());
        assert!(!pending.take(), "only the next read answers it");
    }
}
