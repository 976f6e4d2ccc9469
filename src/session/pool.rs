//! The warm pool: hardened containers created and started ahead of demand,
//! so a `create` has nothing to start.
//!
//! Each pooled container is made exactly like a session's (same spec, same
//! hardening), with its session id chosen at creation and never shown to
//! anyone before hand-out. A container is handed out once and never returns
//! to the pool. Sessions with a `workspaceDir` take from a pool of their
//! own (see [`key`]), whose containers get the workspace at hand-out
//! through a slot (`session::slot`): Docker cannot add a bind mount to a
//! running container, and pre-mounting a whole workspace root would let one
//! session see another's files.
//!
//! The pool remembers when each image was asked for (hit or miss), so the
//! refill task (`session::refill`) can follow demand: one more ready
//! container per recent request, up to the plan's most, back to its floor
//! once requests stop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::terminal::Terminal;

/// The pool a create takes from: an image's, or (`workspace`) that of the
/// image's containers with a workspace slot (`session::slot`).
pub fn key(image: &str, workspace: bool) -> String {
    if workspace {
        format!("{image}#workspace")
    } else {
        image.to_string()
    }
}

#[derive(Clone)]
pub struct Pooled {
    pub container_id: String,
    pub session_id: String,
    /// Its shell is already running.
    pub terminal: Arc<Terminal>,
    /// Bytes the engine measured the container to use once its shell ran.
    pub memory: u64,
}

/// What the pool holds needs only to say which container it is and what
/// memory it holds.
pub trait PoolEntry {
    fn container_id(&self) -> &str;
    fn session_id(&self) -> &str;
    fn memory(&self) -> u64;
}

impl PoolEntry for Pooled {
    fn container_id(&self) -> &str {
        &self.container_id
    }
    fn session_id(&self) -> &str {
        &self.session_id
    }
    fn memory(&self) -> u64 {
        self.memory
    }
}

/// Requests remembered per image: no more than the largest pool needs.
const REMEMBERED: usize = 64;

struct State<T> {
    /// Ready containers per (normalized) image, oldest first.
    ready: HashMap<String, VecDeque<T>>,
    /// When each image was last asked for, oldest first.
    requests: HashMap<String, VecDeque<Instant>>,
    /// Set by `drain` (shutdown): nothing enters the pool after it.
    closed: bool,
}

pub struct WarmPool<T = Pooled> {
    state: Mutex<State<T>>,
    /// Wakes the refill task: after a request, and when creates that
    /// kept it waiting are done.
    pub refill: Notify,
}

impl<T> Default for WarmPool<T> {
    fn default() -> Self {
        WarmPool {
            state: Mutex::new(State {
                ready: HashMap::new(),
                requests: HashMap::new(),
                closed: false,
            }),
            refill: Notify::new(),
        }
    }
}

impl<T: PoolEntry> WarmPool<T> {
    /// A ready container of `image`, if one waits; either way the request
    /// counts as demand for the image.
    pub fn take(&self, image: &str) -> Option<T> {
        let taken = {
            let mut s = self.state.lock().unwrap();
            // Only pooled images are remembered: the map is not keyed by
            // whatever clients name.
            let asked = s.requests.get_mut(image)?;
            if asked.len() == REMEMBERED {
                asked.pop_front();
            }
            asked.push_back(Instant::now());
            s.ready.get_mut(image).and_then(|q| q.pop_front())
        };
        self.refill.notify_one();
        taken
    }

    /// Makes `image` one the pool keeps and counts requests for.
    pub fn register(&self, image: &str) {
        let mut s = self.state.lock().unwrap();
        s.requests.entry(image.to_string()).or_default();
    }

    /// Adds a ready container; gives it back when the pool is closed.
    pub fn put(&self, image: &str, p: T) -> Result<(), T> {
        let mut s = self.state.lock().unwrap();
        if s.closed {
            return Err(p);
        }
        s.ready.entry(image.to_string()).or_default().push_back(p);
        Ok(())
    }

    /// Takes the oldest ready container of `image` when more than `keep`
    /// wait (the pool shrinking).
    pub fn surplus(&self, image: &str, keep: usize) -> Option<T> {
        let mut s = self.state.lock().unwrap();
        let q = s.ready.get_mut(image)?;
        (q.len() > keep).then(|| q.pop_front()).flatten()
    }

    /// Requests for `image` within `window` of `now`, and when the oldest
    /// of them leaves the window (the next time the count can fall).
    pub fn recent(&self, image: &str, window: Duration, now: Instant) -> (usize, Option<Instant>) {
        let mut s = self.state.lock().unwrap();
        let Some(asked) = s.requests.get_mut(image) else {
            return (0, None);
        };
        while asked
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            asked.pop_front();
        }
        (asked.len(), asked.front().map(|t| *t + window))
    }

    pub fn ready(&self, image: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.ready.get(image).map_or(0, |q| q.len())
    }

    pub fn total(&self) -> usize {
        let s = self.state.lock().unwrap();
        s.ready.values().map(|q| q.len()).sum()
    }

    /// Memory the waiting containers hold together.
    pub fn memory(&self) -> u64 {
        let s = self.state.lock().unwrap();
        s.ready.values().flatten().map(PoolEntry::memory).sum()
    }

    /// The most one waiting container holds (an estimate of the next one).
    pub fn largest(&self) -> u64 {
        let s = self.state.lock().unwrap();
        s.ready
            .values()
            .flatten()
            .map(PoolEntry::memory)
            .max()
            .unwrap_or(0)
    }

    /// Whether a waiting container has the session id `session_id`.
    pub fn holds_session(&self, session_id: &str) -> bool {
        let s = self.state.lock().unwrap();
        s.ready
            .values()
            .any(|q| q.iter().any(|p| p.session_id() == session_id))
    }

    pub fn contains(&self, container_id: &str) -> bool {
        let s = self.state.lock().unwrap();
        s.ready
            .values()
            .any(|q| q.iter().any(|p| p.container_id() == container_id))
    }

    /// Empties and closes the pool (at shutdown).
    pub fn drain(&self) -> Vec<T> {
        let mut s = self.state.lock().unwrap();
        s.closed = true;
        s.ready.drain().flat_map(|(_, q)| q).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Entry(String, u64);
    impl PoolEntry for Entry {
        fn container_id(&self) -> &str {
            &self.0
        }
        fn session_id(&self) -> &str {
            &self.0
        }
        fn memory(&self) -> u64 {
            self.1
        }
    }

    fn p(id: &str) -> Entry {
        Entry(id.into(), 10)
    }

    #[test]
    fn hands_out_each_container_once_in_order() {
        let pool = WarmPool::<Entry>::default();
        pool.register("img:1");
        assert!(pool.put("img:1", p("a")).is_ok());
        assert!(pool.put("img:1", p("b")).is_ok());
        assert_eq!(pool.ready("img:1"), 2);
        assert_eq!((pool.memory(), pool.largest()), (20, 10));
        assert!(pool.contains("a"));
        assert_eq!(pool.take("img:1").unwrap().0, "a");
        assert!(!pool.contains("a"));
        assert!(pool.take("img:2").is_none());
        assert_eq!(pool.take("img:1").unwrap().0, "b");
        assert!(pool.take("img:1").is_none());
    }

    #[test]
    fn requests_count_as_demand_until_they_age_out() {
        let pool = WarmPool::<Entry>::default();
        let window = Duration::from_secs(60);
        let t0 = Instant::now();
        assert_eq!(pool.recent("img", window, t0), (0, None));
        pool.register("img");
        // Hits and misses alike; images not pooled are not remembered.
        pool.take("unpooled");
        assert_eq!(pool.recent("unpooled", window, t0), (0, None));
        pool.put("img", p("a")).ok();
        pool.take("img");
        pool.take("img");
        let (n, expires) = pool.recent("img", window, Instant::now());
        assert_eq!(n, 2);
        assert!(expires.unwrap() > t0 + window - Duration::from_secs(1));
        assert_eq!(pool.recent("img", window, t0 + 2 * window).0, 0);
        assert_eq!(pool.recent("other", window, t0).0, 0);
    }

    #[test]
    fn shrinks_oldest_first_and_closes_at_shutdown() {
        let pool = WarmPool::<Entry>::default();
        for id in ["a", "b", "c"] {
            pool.put("img", p(id)).ok();
        }
        assert_eq!(pool.surplus("img", 1).unwrap().0, "a");
        assert_eq!(pool.surplus("img", 1).unwrap().0, "b");
        assert!(pool.surplus("img", 1).is_none());
        assert_eq!(pool.drain().len(), 1);
        assert!(pool.put("img", p("d")).is_err(), "closed");
        assert_eq!(pool.total(), 0);
    }
}
