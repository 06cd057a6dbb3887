//! Engine caches: quick_cache (unsync: owned by the EngineActor, no locks) with a TTL stored
//! beside each value, and hit/miss/eviction counters.

use std::{hash::Hash, time::Duration};

use quick_cache::{Lifecycle, Weighter, unsync::Cache};
use serde::Serialize;
use tokio::time::Instant;

/// Counters of one cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Entries now.
    pub len: usize,
    /// Capacity.
    pub capacity: u64,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups not answered (absent or expired).
    pub misses: u64,
    /// Entries dropped for capacity or expiry.
    pub evictions: u64,
}

#[derive(Debug, Clone)]
struct Entry<V> {
    value: V,
    inserted: Instant,
    pinned: bool,
}

#[derive(Debug, Clone, Default)]
struct CountEvictions;

impl<K, V> Lifecycle<K, Entry<V>> for CountEvictions {
    type RequestState = u64;

    fn begin_request(&self) -> Self::RequestState {
        0
    }

    fn on_evict(&self, state: &mut Self::RequestState, _key: K, _val: Entry<V>) {
        *state += 1;
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct UnitWeight;

impl<K, V> Weighter<K, Entry<V>> for UnitWeight {
    fn weight(&self, _key: &K, _val: &Entry<V>) -> u64 {
        1
    }
}

/// A bounded cache whose entries expire `ttl` after insertion unless pinned.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    inner: Cache<K, Entry<V>, UnitWeight, quick_cache::DefaultHashBuilder, CountEvictions>,
    ttl: Duration,
    capacity: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// `capacity` entries at most, each living `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Cache::with(
                capacity,
                capacity as u64,
                UnitWeight,
                Default::default(),
                CountEvictions,
            ),
            ttl,
            capacity: capacity as u64,
            hits: 0,
            misses: 0,
            evictions: 0,
        }
    }

    /// The value, if present and not expired (an expired entry is removed and counted).
    pub fn get(&mut self, key: &K) -> Option<V> {
        let expired = match self.inner.get(key) {
            Some(e) if e.pinned || e.inserted.elapsed() < self.ttl => {
                self.hits += 1;
                return Some(e.value.clone());
            }
            Some(_) => true,
            None => false,
        };
        if expired {
            self.inner.remove(key);
            self.evictions += 1;
        }
        self.misses += 1;
        None
    }

    /// Look without counting a hit or miss.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.inner
            .peek(key)
            .filter(|e| e.pinned || e.inserted.elapsed() < self.ttl)
            .map(|e| &e.value)
    }

    /// Insert (or replace) with a fresh TTL.
    pub fn insert(&mut self, key: K, value: V) {
        self.insert_entry(key, value, false);
    }

    /// Insert an entry that never expires (still bounded by capacity), e.g. a finalized block.
    pub fn insert_pinned(&mut self, key: K, value: V) {
        self.insert_entry(key, value, true);
    }

    fn insert_entry(&mut self, key: K, value: V, pinned: bool) {
        let evicted = self.inner.insert_with_lifecycle(
            key,
            Entry {
                value,
                inserted: Instant::now(),
                pinned,
            },
        );
        self.evictions += evicted;
    }

    /// Pin an existing entry (no-op if absent).
    pub fn pin(&mut self, key: &K) {
        if let Some(mut e) = self.inner.get_mut(key) {
            e.pinned = true;
        }
    }

    /// Remove an entry.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.inner.remove(key).map(|(_, e)| e.value)
    }

    /// Drop every expired entry; returns how many.
    pub fn sweep(&mut self) -> usize {
        let ttl = self.ttl;
        let expired: Vec<K> = self
            .inner
            .iter()
            .filter(|(_, e)| !e.pinned && e.inserted.elapsed() >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.inner.remove(k);
        }
        self.evictions += expired.len() as u64;
        expired.len()
    }

    /// Counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            len: self.inner.len(),
            capacity: self.capacity,
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_ttl_unless_pinned() {
        let mut c = TtlCache::new(10, Duration::from_secs(60));
        c.insert(1, "a");
        c.insert_pinned(2, "b");
        assert_eq!(c.get(&1), Some("a"));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(c.get(&1), None);
        assert_eq!(c.get(&2), Some("b"));
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.evictions, s.len), (2, 1, 1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn sweep_removes_expired_and_capacity_bounds_size() {
        let mut c = TtlCache::new(4, Duration::from_secs(1));
        for i in 0..20 {
            c.insert(i, i);
        }
        assert!(c.stats().len <= 4, "{:?}", c.stats());
        assert!(c.stats().evictions >= 16, "{:?}", c.stats());
        tokio::time::advance(Duration::from_secs(2)).await;
        let before = c.stats().len;
        assert_eq!(c.sweep(), before);
        assert_eq!(c.stats().len, 0);
    }
}
