//! A governor state store with a hard cap on the number of keys.
//!
//! governor's keyed limiters keep one 8-byte cell per key and forget a key
//! only when [`retain_recent`](governor::RateLimiter::retain_recent) finds it
//! fully replenished. Keys are client addresses, which an attacker chooses:
//! a million IPs inside one window would all be "recent". So once the map
//! holds `cap` keys, a key it does not know yet is counted in one shared
//! overflow cell instead. Clients already tracked keep their own budget (a
//! flood neither resets nor steals it), newcomers during a flood share one
//! budget, and memory never exceeds `cap + 1` cells.

use std::hash::Hash;

use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot<K> {
    Client(K),
    Overflow,
}

pub struct BoundedStore<K: Hash + Eq + Clone> {
    map: DashMapStateStore<Slot<K>>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    pub fn new(cap: usize) -> Self {
        BoundedStore {
            map: DashMapStateStore::default(),
            cap: cap.max(1),
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let slot = Slot::Client(key.clone());
        // `len` and `contains_key` race with other inserts, so the cap can be
        // overshot by the number of concurrent first requests: a handful.
        if self.map.len() >= self.cap && !self.map.contains_key(&slot) {
            return self.map.measure_and_replace(&Slot::Overflow, f);
        }
        self.map.measure_and_replace(&slot, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.map, drop_below)
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit()
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
