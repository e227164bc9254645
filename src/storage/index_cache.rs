//! Per-block indexes held in memory between queries, up to a byte budget
//! (`[query] index_cache_size`).
//!
//! What flows through: a block's bloom (`blocks/<id>.index`, or the one a
//! flush or merge just built), its decoded row index or series directory (`blocks/<id>.rows`)
//! and the label sets of its packed map columns (read from the Parquet
//! dictionary pages, `catalog::label_sets`), each keyed by block id and
//! kind. Each lookup marks its entry as used; an insert that takes the cache
//! over its budget evicts the least recently used entries until it is back
//! under 90 % of it (so a run of inserts does not evict on every one). An
//! evicted index is read again when a query next needs it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Default budget: as Mimir's in-memory index cache (1 GiB).
pub const DEFAULT_INDEX_CACHE_BYTES: u64 = 1 << 30;

/// The kinds of index the storage layer caches.
pub const BLOOM: &str = "bloom";
pub const ROW_INDEX: &str = "row_index";
pub const SERIES_INDEX: &str = "series_index";

/// An index the cache can hold: it knows the memory it takes.
pub trait CachedIndex: Any + Send + Sync {
    fn memory_bytes(&self) -> u64;
}

pub struct IndexCache {
    inner: Mutex<Inner>,
}

struct Inner {
    budget: u64,
    bytes: u64,
    /// Incremented by every lookup and insert: an entry's `used` orders it.
    clock: u64,
    /// By block id, then kind.
    entries: HashMap<String, HashMap<String, Entry>>,
}

struct Entry {
    index: Arc<dyn Any + Send + Sync>,
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

    /// Block `id`'s index of `kind`, if cached (and of type `T`).
    pub fn get<T: CachedIndex>(&self, id: &str, kind: &str) -> Option<Arc<T>> {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(id)?.get_mut(kind)?;
        entry.used = now;
        entry.index.clone().downcast::<T>().ok()
    }

    pub fn insert<T: CachedIndex>(&self, id: &str, kind: &str, index: Arc<T>) {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let entry = Entry {
            bytes: index.memory_bytes() + id.len() as u64,
            index,
            used: inner.clock,
        };
        inner.bytes += entry.bytes;
        let old = inner
            .entries
            .entry(id.to_string())
            .or_default()
            .insert(kind.to_string(), entry);
        if let Some(old) = old {
            inner.bytes -= old.bytes;
        }
        inner.evict_over_budget();
    }

    /// Drops every index of block `id`.
    pub fn remove(&self, id: &str) {
        let mut inner = self.inner.lock();
        if let Some(kinds) = inner.entries.remove(id) {
            inner.bytes -= kinds.values().map(|e| e.bytes).sum::<u64>();
        }
    }

    /// Bytes the cached indexes hold, and how many there are.
    pub fn usage(&self) -> (u64, usize) {
        let inner = self.inner.lock();
        (inner.bytes, inner.entries.values().map(HashMap::len).sum())
    }
}

impl Inner {
    fn evict_over_budget(&mut self) {
        if self.bytes <= self.budget {
            return;
        }
        let target = self.budget / 10 * 9;
        let mut by_use: Vec<(u64, String, String)> = self
            .entries
            .iter()
            .flat_map(|(id, kinds)| {
                kinds
                    .iter()
                    .map(|(kind, e)| (e.used, id.clone(), kind.clone()))
            })
            .collect();
        by_use.sort_unstable();
        for (_, id, kind) in by_use {
            if self.bytes <= target {
                break;
            }
            let Some(kinds) = self.entries.get_mut(&id) else {
                continue;
            };
            if let Some(old) = kinds.remove(&kind) {
                self.bytes -= old.bytes;
            }
            if kinds.is_empty() {
                self.entries.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::bloom::Bloom;

    fn bloom(items: usize) -> Arc<Bloom> {
        Arc::new(Bloom::with_capacity(items))
    }

    #[test]
    fn least_recently_used_blooms_are_evicted_past_the_budget() {
        let size = bloom(10_000).memory_bytes() + 1;
        let cache = IndexCache::new(3 * size + size / 2);
        for id in ["a", "b", "c"] {
            cache.insert(id, BLOOM, bloom(10_000));
        }
        assert_eq!(cache.usage(), (3 * size, 3));
        // "a" is used, so "b" is the least recently used when "d" comes.
        assert!(cache.get::<Bloom>("a", BLOOM).is_some());
        cache.insert("d", BLOOM, bloom(10_000));
        assert!(cache.get::<Bloom>("b", BLOOM).is_none());
        for id in ["a", "c", "d"] {
            assert!(cache.get::<Bloom>(id, BLOOM).is_some(), "{id}");
        }
        assert!(cache.usage().0 <= 3 * size + size / 2);
    }

    #[test]
    fn replacing_removing_and_shrinking_keep_the_byte_count() {
        let cache = IndexCache::new(1 << 30);
        cache.insert("a", BLOOM, bloom(1_000));
        cache.insert("a", BLOOM, bloom(50_000));
        assert_eq!(cache.usage(), (bloom(50_000).memory_bytes() + 1, 1));
        cache.insert("b", BLOOM, bloom(1_000));
        cache.remove("a");
        assert_eq!(cache.usage(), (bloom(1_000).memory_bytes() + 1, 1));
        cache.set_budget(10);
        assert_eq!(cache.usage(), (0, 0));
        // A bloom larger than the whole budget is not kept.
        cache.insert("c", BLOOM, bloom(1_000));
        assert_eq!(cache.usage(), (0, 0));
    }

    #[test]
    fn kinds_of_one_block_are_kept_apart_and_removed_together() {
        let cache = IndexCache::new(1 << 30);
        cache.insert("a", BLOOM, bloom(1_000));
        cache.insert("a", "other", bloom(2_000));
        cache.insert("b", BLOOM, bloom(3_000));
        let a = cache.get::<Bloom>("a", BLOOM).unwrap();
        assert_eq!(a.memory_bytes(), bloom(1_000).memory_bytes());
        assert_eq!(cache.usage().1, 3);
        cache.remove("a");
        assert!(cache.get::<Bloom>("a", "other").is_none());
        assert_eq!(cache.usage(), (bloom(3_000).memory_bytes() + 1, 1));
    }
}
