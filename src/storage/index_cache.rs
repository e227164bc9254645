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
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
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
    cache: BlockCache<String, Arc<dyn Any + Send + Sync>>,
}

impl IndexCache {
    pub fn new(budget: u64) -> Self {
        IndexCache {
            cache: BlockCache::new(budget),
        }
    }

    /// Changes the budget, evicting what no longer fits.
    pub fn set_budget(&self, budget: u64) {
        self.cache.set_budget(budget);
    }

    /// Block `id`'s index of `kind`, if cached (and of type `T`).
    pub fn get<T: CachedIndex>(&self, id: &str, kind: &str) -> Option<Arc<T>> {
        self.cache.get(id, kind)?.downcast::<T>().ok()
    }

    pub fn insert<T: CachedIndex>(&self, id: &str, kind: &str, index: Arc<T>) {
        let bytes = index.memory_bytes() + id.len() as u64;
        self.cache.insert(id, kind.to_string(), index, bytes);
    }

    /// Drops every index of block `id`.
    pub fn remove(&self, id: &str) {
        self.cache.remove(id);
    }

    /// Bytes the cached indexes hold, and how many there are.
    pub fn usage(&self) -> (u64, usize) {
        self.cache.usage()
    }
}

/// Values of blocks (by block id, then `K`) up to a byte budget, the least
/// recently used evicted first: the shape of the index cache and of the
/// decoded samples cache (`super::samples_cache`).
pub struct BlockCache<K, V, S = RandomState> {
    inner: Mutex<Inner<K, V, S>>,
}

struct Inner<K, V, S> {
    budget: u64,
    bytes: u64,
    /// Incremented by every lookup and insert: an entry's `used` orders it.
    clock: u64,
    /// By block id, then key.
    entries: HashMap<String, HashMap<K, Entry<V>, S>>,
}

struct Entry<V> {
    value: V,
    bytes: u64,
    used: u64,
}

impl<K: Hash + Eq + Clone, V: Clone, S: BuildHasher + Default> BlockCache<K, V, S> {
    pub fn new(budget: u64) -> Self {
        BlockCache {
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

    /// The budget in bytes (0: nothing is kept).
    pub fn budget(&self) -> u64 {
        self.inner.lock().budget
    }

    /// Block `id`'s value under `key`, if cached.
    pub fn get<Q: Hash + Eq + ?Sized>(&self, id: &str, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.get_many(id, std::slice::from_ref(&key))
            .pop()
            .flatten()
    }

    /// Block `id`'s values under `keys`, each if cached (one lock for all).
    pub fn get_many<Q: Hash + Eq + ?Sized>(&self, id: &str, keys: &[&Q]) -> Vec<Option<V>>
    where
        K: Borrow<Q>,
    {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let now = inner.clock;
        let Some(block) = inner.entries.get_mut(id) else {
            return vec![None; keys.len()];
        };
        keys.iter()
            .map(|key| {
                let entry = block.get_mut(*key)?;
                entry.used = now;
                Some(entry.value.clone())
            })
            .collect()
    }

    /// Keeps `value` (taking `bytes` of memory) as block `id`'s `key`.
    pub fn insert(&self, id: &str, key: K, value: V, bytes: u64) {
        self.insert_many(id, std::iter::once((key, value, bytes)));
    }

    /// [`BlockCache::insert`] of several values of block `id` (one lock).
    pub fn insert_many(&self, id: &str, values: impl IntoIterator<Item = (K, V, u64)>) {
        let mut inner = self.inner.lock();
        if inner.budget == 0 {
            return;
        }
        inner.clock += 1;
        let used = inner.clock;
        let mut added = 0u64;
        let mut replaced = 0u64;
        let block = inner.entries.entry(id.to_string()).or_default();
        for (key, value, bytes) in values {
            added += bytes;
            if let Some(old) = block.insert(key, Entry { value, bytes, used }) {
                replaced += old.bytes;
            }
        }
        inner.bytes = inner.bytes + added - replaced;
        inner.evict_over_budget();
    }

    /// Drops every value of block `id`.
    pub fn remove(&self, id: &str) {
        let mut inner = self.inner.lock();
        if let Some(values) = inner.entries.remove(id) {
            inner.bytes -= values.values().map(|e| e.bytes).sum::<u64>();
        }
    }

    /// Bytes the cached values hold, and how many there are.
    pub fn usage(&self) -> (u64, usize) {
        let inner = self.inner.lock();
        (inner.bytes, inner.entries.values().map(HashMap::len).sum())
    }
}

impl<K: Hash + Eq + Clone, V, S: BuildHasher> Inner<K, V, S> {
    fn evict_over_budget(&mut self) {
        if self.bytes <= self.budget {
            return;
        }
        let target = self.budget / 10 * 9;
        let mut by_use: Vec<(u64, &String, &K)> = self
            .entries
            .iter()
            .flat_map(|(id, values)| values.iter().map(move |(key, e)| (e.used, id, key)))
            .collect();
        by_use.sort_unstable_by_key(|(used, _, _)| *used);
        let mut bytes = self.bytes;
        let mut evicted: Vec<(String, K)> = Vec::new();
        for (_, id, key) in by_use {
            if bytes <= target {
                break;
            }
            bytes -= self.entries[id][key].bytes;
            evicted.push((id.clone(), key.clone()));
        }
        for (id, key) in evicted {
            let Some(values) = self.entries.get_mut(&id) else {
                continue;
            };
            if let Some(old) = values.remove(&key) {
                self.bytes -= old.bytes;
            }
            if values.is_empty() {
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
