//! The warm pool: hardened containers created and started ahead of demand,
//! so a `create` without a `workspaceDir` only has to start a shell.
//!
//! Each pooled container is made exactly like a session's (same spec, same
//! hardening), with its session id chosen at creation and never shown to
//! anyone before hand-out. A container is handed out once and never returns
//! to the pool. Sessions with a `workspaceDir` cannot use the pool: Docker
//! cannot add a bind mount to a running container, and pre-mounting a whole
//! workspace root would let one session see another's files.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::terminal::Terminal;

#[derive(Clone)]
pub struct Pooled {
    pub container_id: String,
    pub session_id: String,
    /// Its shell is already running.
    pub terminal: Arc<Terminal>,
}

/// What the pool holds needs only to say which container it is.
pub trait PoolEntry {
    fn container_id(&self) -> &str;
}

impl PoolEntry for Pooled {
    fn container_id(&self) -> &str {
        &self.container_id
    }
}

pub struct WarmPool<T = Pooled> {
    /// Ready containers per (normalized) image.
    ready: Mutex<HashMap<String, VecDeque<T>>>,
    /// Wakes the refill task after a hand-out.
    pub refill: Notify,
}

impl<T> Default for WarmPool<T> {
    fn default() -> Self {
        WarmPool {
            ready: Mutex::new(HashMap::new()),
            refill: Notify::new(),
        }
    }
}

impl<T: PoolEntry> WarmPool<T> {
    pub fn take(&self, image: &str) -> Option<T> {
        let taken = self
            .ready
            .lock()
            .unwrap()
            .get_mut(image)
            .and_then(|q| q.pop_front());
        if taken.is_some() {
            self.refill.notify_one();
        }
        taken
    }

    pub fn put(&self, image: &str, p: T) {
        self.ready
            .lock()
            .unwrap()
            .entry(image.to_string())
            .or_default()
            .push_back(p);
    }

    pub fn ready(&self, image: &str) -> usize {
        self.ready.lock().unwrap().get(image).map_or(0, |q| q.len())
    }

    pub fn total(&self) -> usize {
        self.ready.lock().unwrap().values().map(|q| q.len()).sum()
    }

    pub fn contains(&self, container_id: &str) -> bool {
        self.ready
            .lock()
            .unwrap()
            .values()
            .any(|q| q.iter().any(|p| p.container_id() == container_id))
    }

    pub fn drain(&self) -> Vec<T> {
        self.ready
            .lock()
            .unwrap()
            .drain()
            .flat_map(|(_, q)| q)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Entry(String);
    impl PoolEntry for Entry {
        fn container_id(&self) -> &str {
            &self.0
        }
    }

    fn p(id: &str) -> Entry {
        Entry(id.into())
    }

    #[test]
    fn hands_out_each_container_once_in_order() {
        let pool = WarmPool::<Entry>::default();
        pool.put("img:1", p("a"));
        pool.put("img:1", p("b"));
        assert_eq!(pool.ready("img:1"), 2);
        assert!(pool.contains("a"));
        assert_eq!(pool.take("img:1").unwrap().0, "a");
        assert!(!pool.contains("a"));
        assert!(pool.take("img:2").is_none());
        assert_eq!(pool.take("img:1").unwrap().0, "b");
        assert!(pool.take("img:1").is_none());
    }
}
