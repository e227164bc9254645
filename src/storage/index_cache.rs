//! Block bloom indexes held in memory between queries, up to a byte budget
//! (`[query] index_cache_size`).
//!
//! What flows through: blooms a flush or a merge just built and blooms read
//! from `blocks/<id>.index` files, keyed by block id. Each lookup marks its
//! entry as used; an insert that takes the cache over its budget evicts the
//! least recently used entries until it is back under 90 % of it (so a run
//! of inserts does not evict on every one). An evicted bloom is read from
//! the store again when a query next needs it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::bloom::Bloom;

/// Default budget: as Mimir's in-memory index cache (1 GiB).
pub const DEFAULT_INDEX_CACHE_BYTES: u64 = 1 << 30;

pub struct IndexCache {
    inner: Mutex<Inner>,
}

struct Inner {
    budget: u64,
    bytes: u64,
    /// Incremented by every lookup and insert: an entry's `used` orders it.
    clock: u64,
    entries: HashMap<String, Entry>,
}

struct Entry {
    bloom: Arc<Bloom>,
    bytes: u64,
    used: u64,
}

impl IndexCache {
    pub fn new(budget: u64) -> Self {
        IndexCache {
            inner: Mutex::new(Inner {
                budget,
                bytes: 0,
                clock: 0,
                entries: HashMap::new(),
            }),
        }
    }

    /// Changes the budget, evicting what no longer fits.
    pub fn set_budget(&self, budget: u64) {
        let mut inner = self.inner.lock();
        inner.budget = budget;
        inner.evict_over_budget();
    }

    pub fn get(&self, id: &str) -> Option<Arc<Bloom>> {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(id)?;
        entry.used = now;
        Some(entry.bloom.clone())
    }

    pub fn insert(&self, id: String, bloom: Arc<Bloom>) {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let entry = Entry {
            bytes: bloom.memory_bytes() + id.len() as u64,
            bloom,
            used: inner.clock,
        };
        inner.bytes += entry.bytes;
        if let Some(old) = inner.entries.insert(id, entry) {
            inner.bytes -= old.bytes;
        }
        inner.evict_over_budget();
    }

    pub fn remove(&self, id: &str) {
        let mut inner = self.inner.lock();
        if let Some(old) = inner.entries.remove(id) {
            inner.bytes -= old.bytes;
        }
    }

    /// Bytes the cached blooms hold, and how many there are.
    pub fn usage(&self) -> (u64, usize) {
        let inner = self.inner.lock();
        (inner.bytes, inner.entries.len())
    }
}

impl Inner {
    fn evict_over_budget(&mut self) {
        if self.bytes <= self.budget {
            return;
        }
        let target = self.budget / 10 * 9;
        let mut by_use: Vec<(u64, String)> = self
            .entries
            .iter()
            .map(|(id, e)| (e.used, id.clone()))
            .collect();
        by_use.sort_unstable();
        for (_, id) in by_use {
            if self.bytes <= target {
                break;
            }
            if let Some(old) = self.entries.remove(&id) {
                self.bytes -= old.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bloom(items: usize) -> Arc<Bloom> {
        Arc::new(Bloom::with_capacity(items))
    }

    #[test]
    fn least_recently_used_blooms_are_evicted_past_the_budget() {
        let size = bloom(10_000).memory_bytes() + 1;
        let cache = IndexCache::new(3 * size + size / 2);
        for id in ["a", "b", "c"] {
            cache.insert(id.into(), bloom(10_000));
        }
        assert_eq!(cache.usage(), (3 * size, 3));
        // "a" is used, so "b" is the least recently used when "d" comes.
        assert!(cache.get("a").is_some());
        cache.insert("d".into(), bloom(10_000));
        assert!(cache.get("b").is_none());
        for id in ["a", "c", "d"] {
            assert!(cache.get(id).is_some(), "{id}");
        }
        assert!(cache.usage().0 <= 3 * size + size / 2);
    }

    #[test]
    fn replacing_removing_and_shrinking_keep_the_byte_count() {
        let cache = IndexCache::new(1 << 30);
        cache.insert("a".into(), bloom(1_000));
        cache.insert("a".into(), bloom(50_000));
        assert_eq!(cache.usage(), (bloom(50_000).memory_bytes() + 1, 1));
        cache.insert("b".into(), bloom(1_000));
        cache.remove("a");
        assert_eq!(cache.usage(), (bloom(1_000).memory_bytes() + 1, 1));
        cache.set_budget(10);
        assert_eq!(cache.usage(), (0, 0));
        // A bloom larger than the whole budget is not kept.
        cache.insert("c".into(), bloom(1_000));
        assert_eq!(cache.usage(), (0, 0));
    }
}
