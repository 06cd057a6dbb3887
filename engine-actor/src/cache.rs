//! Engine caches: quick_cache (unsync: owned by the EngineActor, no locks) with a TTL stored
//! beside each value, counting hits, misses and evictions into [`CacheCounters`] that outlive
//! the actor (so the exported counters never go back after a restart).

use std::{
    hash::Hash,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter, unsync::Cache};
use serde::Serialize;
use tokio::time::Instant;

/// Counters of one cache, as reported in status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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

/// Hits, misses and evictions of one cache since the engine started, and its size now.
#[derive(Debug, Default)]
pub(crate) struct CacheCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    entries: AtomicU64,
}

impl CacheCounters {
    /// (hits, misses, evictions).
    pub(crate) fn read(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.evictions.load(Ordering::Relaxed),
        )
    }

    /// Entries in the cache now.
    pub(crate) fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    fn set_entries(&self, n: usize) {
        self.entries.store(n as u64, Ordering::Relaxed);
    }

    fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    fn evicted(&self, n: u64) {
        if n > 0 {
            self.evictions.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The counters of the engine's caches, kept across EngineActor restarts.
#[derive(Debug, Default)]
pub(crate) struct CacheCounterSet {
    pub(crate) payloads: Arc<CacheCounters>,
    pub(crate) blocks: Arc<CacheCounters>,
    pub(crate) receipts: Arc<CacheCounters>,
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

/// A bounded cache whose entries expire `ttl` after insertion unless pinned.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    inner: Cache<K, Entry<V>, UnitWeighter, DefaultHashBuilder, CountEvictions>,
    ttl: Duration,
    capacity: u64,
    counters: Arc<CacheCounters>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// `capacity` entries at most, each living `ttl`, counting into fresh counters.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self::counting(capacity, ttl, Arc::default())
    }

    /// Like [`TtlCache::new`], counting into `counters` (shared with the metrics and kept
    /// across restarts of the owner).
    pub(crate) fn counting(capacity: usize, ttl: Duration, counters: Arc<CacheCounters>) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Cache::with(
                capacity,
                capacity as u64,
                UnitWeighter,
                DefaultHashBuilder::default(),
                CountEvictions,
            ),
            ttl,
            capacity: capacity as u64,
            counters: {
                // A new owner starts empty.
                counters.set_entries(0);
                counters
            },
        }
    }

    /// The value, if present and not expired (an expired entry is removed and counted).
    pub fn get(&mut self, key: &K) -> Option<V> {
        let expired = match self.inner.get(key) {
            Some(e) if e.pinned || e.inserted.elapsed() < self.ttl => {
                self.counters.hit();
                return Some(e.value.clone());
            }
            Some(_) => true,
            None => false,
        };
        if expired {
            self.inner.remove(key);
            self.counters.evicted(1);
            self.counters.set_entries(self.inner.len());
        }
        self.counters.miss();
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
        self.counters.evicted(evicted);
        self.counters.set_entries(self.inner.len());
    }

    /// Pin an existing entry (no-op if absent).
    pub fn pin(&mut self, key: &K) {
        if let Some(mut e) = self.inner.get_mut(key) {
            e.pinned = true;
        }
    }

    /// Remove an entry.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let removed = self.inner.remove(key).map(|(_, e)| e.value);
        self.counters.set_entries(self.inner.len());
        removed
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
        self.counters.evicted(expired.len() as u64);
        self.counters.set_entries(self.inner.len());
        expired.len()
    }

    /// Counters.
    pub fn stats(&self) -> CacheStats {
        let (hits, misses, evictions) = self.counters.read();
        CacheStats {
            len: self.inner.len(),
            capacity: self.capacity,
            hits,
            misses,
            evictions,
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

    #[test]
    fn counters_outlive_the_cache_that_counted_them() {
        let counters = Arc::new(CacheCounters::default());
        let mut first = TtlCache::counting(4, Duration::from_secs(60), Arc::clone(&counters));
        first.insert(1, 1);
        assert_eq!(first.get(&1), Some(1));
        assert_eq!(first.get(&2), None);
        drop(first);
        // A restarted owner builds a new cache on the same counters: they carry on.
        let mut second: TtlCache<i32, i32> =
            TtlCache::counting(4, Duration::from_secs(60), Arc::clone(&counters));
        assert_eq!(second.get(&1), None);
        assert_eq!(counters.read(), (1, 2, 0));
    }
}
