//! How big the warm pool may grow: what `--warm-pool`, `--warm-pool-min`
//! and `--warm-pool-memory` say, or, with `auto` (the default), what the
//! machine allows. The pool itself (`session::pool`) follows demand inside
//! these bounds.

use std::time::Duration;

/// A setting that is either chosen from the machine or given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto<T> {
    Auto,
    Set(T),
}

/// `auto` or a count.
pub fn count(s: &str) -> Result<Auto<usize>, String> {
    match s.trim() {
        t if t.eq_ignore_ascii_case("auto") => Ok(Auto::Auto),
        t => t
            .parse()
            .map(Auto::Set)
            .map_err(|_| format!("invalid count {s:?}: use a number or auto")),
    }
}

/// `auto` or a size (`256m`).
pub fn size(s: &str) -> Result<Auto<u64>, String> {
    match s.trim() {
        t if t.eq_ignore_ascii_case("auto") => Ok(Auto::Auto),
        t => super::parse::bytes(t).map(Auto::Set),
    }
}

/// What the machine the server runs on has.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    pub cpus: usize,
    pub memory_bytes: u64,
}

impl Machine {
    /// The CPUs this process may use and the memory `/proc/meminfo` reports
    /// (4 GiB when it cannot be read).
    pub fn detect() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(4 << 30, |kb| kb << 10);
        Machine { cpus, memory_bytes }
    }
}

/// The warm pool's bounds, resolved once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan {
    /// Most ready containers per pooled image; 0: no pool.
    pub max: usize,
    /// Ready containers kept per image when nobody has asked for one lately.
    pub min: usize,
    /// Memory the waiting containers may hold together, as the engine
    /// measures each.
    pub memory: u64,
    /// Containers made at once while refilling.
    pub parallel: usize,
    /// How long a create is remembered as demand: after this long without
    /// one, the pool is back to `min`.
    pub idle: Duration,
}

const MIB: u64 = 1 << 20;

impl PoolPlan {
    /// `auto` means: at most 4 containers per CPU, between 4 and 16; at
    /// least 2 (or the most, when that is less); memory a 32nd of the
    /// machine's, between 64 MiB and 1 GiB; as many made at once as there
    /// are CPUs, between 2 and 8.
    pub fn new(
        max: Auto<usize>,
        min: Auto<usize>,
        memory: Auto<u64>,
        idle: Duration,
        machine: &Machine,
    ) -> PoolPlan {
        let max = match max {
            Auto::Auto => (4 * machine.cpus).clamp(4, 16),
            Auto::Set(n) => n,
        };
        let min = match min {
            Auto::Auto => max.min(2),
            Auto::Set(n) => n.min(max),
        };
        let memory = match memory {
            Auto::Auto => (machine.memory_bytes / 32).clamp(64 * MIB, 1024 * MIB),
            Auto::Set(b) => b,
        };
        PoolPlan {
            max,
            min,
            memory,
            parallel: machine.cpus.clamp(2, 8).min(max.max(1)),
            idle,
        }
    }

    /// Ready containers wanted for an image after `recent` creates of it
    /// within `idle`: the floor plus one for each, up to the most.
    pub fn target(&self, recent: usize) -> usize {
        (self.min + recent).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(120);

    fn machine(cpus: usize, gib: u64) -> Machine {
        Machine {
            cpus,
            memory_bytes: gib << 30,
        }
    }

    #[test]
    fn auto_follows_the_machine() {
        let p = PoolPlan::new(Auto::Auto, Auto::Auto, Auto::Auto, IDLE, &machine(2, 23));
        assert_eq!((p.max, p.min, p.parallel), (8, 2, 2));
        assert_eq!(p.memory, (23 << 30) / 32);
        let p = PoolPlan::new(Auto::Auto, Auto::Auto, Auto::Auto, IDLE, &machine(1, 1));
        assert_eq!((p.max, p.min, p.parallel, p.memory), (4, 2, 2, 64 * MIB));
        let p = PoolPlan::new(Auto::Auto, Auto::Auto, Auto::Auto, IDLE, &machine(64, 512));
        assert_eq!((p.max, p.min, p.parallel, p.memory), (16, 2, 8, 1024 * MIB));
    }

    #[test]
    fn zero_is_off_and_the_floor_never_passes_the_most() {
        let m = machine(4, 8);
        let off = PoolPlan::new(Auto::Set(0), Auto::Auto, Auto::Auto, IDLE, &m);
        assert_eq!((off.max, off.min, off.target(10)), (0, 0, 0));
        let one = PoolPlan::new(Auto::Set(1), Auto::Set(5), Auto::Auto, IDLE, &m);
        assert_eq!((one.max, one.min, one.parallel), (1, 1, 1));
    }

    #[test]
    fn demand_raises_the_target_up_to_the_most() {
        let p = PoolPlan::new(Auto::Set(6), Auto::Set(1), Auto::Auto, IDLE, &machine(2, 8));
        assert_eq!(p.target(0), 1);
        assert_eq!(p.target(3), 4);
        assert_eq!(p.target(20), 6);
    }

    #[test]
    fn counts_and_sizes_read_auto() {
        assert_eq!(count("auto"), Ok(Auto::Auto));
        assert_eq!(count(" 3 "), Ok(Auto::Set(3)));
        assert!(count("some").is_err());
        assert_eq!(size("AUTO"), Ok(Auto::Auto));
        assert_eq!(size("64m"), Ok(Auto::Set(64 * MIB)));
        assert!(size("lots").is_err());
    }
}
