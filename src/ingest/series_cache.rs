//! Series a tenant has already sent, by the exact protobuf bytes of their
//! labels: remote write repeats every series' labels in every request, so a
//! series seen before skips label decoding, UTF-8 and name validation,
//! sorting and hashing, and goes straight to its canonical labels and series
//! id. Only series that passed validation are kept, under the limits they
//! were checked against; new limits (a reloaded override) empty the cache.
//! The cache is bounded in bytes and starts over when full.

use std::sync::Arc;

use parking_lot::RwLock;

use super::limits::Limits;
use crate::model::labels::SeriesIdMap;

/// Upper bound of one tenant's cache (keys, labels and bookkeeping).
const MAX_CACHE_BYTES: usize = 64 << 20;

/// A validated series in canonical form.
#[derive(Debug)]
pub struct KnownSeries {
    pub metric: Box<str>,
    /// Sorted label pairs without `__name__`.
    pub labels: Box<[(Box<str>, Box<str>)]>,
    pub series_id: i64,
}

impl KnownSeries {
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.metric.len()
            + self
                .labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2 * std::mem::size_of::<Box<str>>())
                .sum::<usize>()
    }
}

#[derive(Default)]
struct Entries {
    /// The limits the entries were validated under.
    limits: Option<Arc<Limits>>,
    /// By the xxh3 hash of the label bytes (hashed in one call, not through
    /// `Hasher`), each entry with its bytes to compare: a second set of
    /// label bytes with the same hash is simply never cached.
    by_label_bytes: SeriesIdMap<(Box<[u8]>, Arc<KnownSeries>)>,
    bytes: usize,
}

fn key_hash(label_bytes: &[u8]) -> i64 {
    xxhash_rust::xxh3::xxh3_64(label_bytes) as i64
}

/// One tenant's validated series; shared by its concurrent requests.
#[derive(Default)]
pub struct SeriesCache {
    entries: RwLock<Entries>,
}

impl std::fmt::Debug for SeriesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesCache")
            .field("series", &self.entries.read().by_label_bytes.len())
            .finish()
    }
}

/// What one request learnt: looked up under one read lock, new series
/// added under one write lock at the end.
pub struct CacheView<'c> {
    cache: &'c SeriesCache,
    entries: parking_lot::RwLockReadGuard<'c, Entries>,
    valid: bool,
    learnt: Vec<(Box<[u8]>, Arc<KnownSeries>)>,
}

impl SeriesCache {
    /// Starts a request checked against `limits`.
    pub fn view(&self, limits: &Arc<Limits>) -> CacheView<'_> {
        let entries = self.entries.read();
        let valid = entries
            .limits
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, limits));
        CacheView {
            cache: self,
            entries,
            valid,
            learnt: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().by_label_bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CacheView<'_> {
    /// The series whose labels were encoded as `label_bytes`, if validated before.
    pub fn get(&self, label_bytes: &[u8]) -> Option<&Arc<KnownSeries>> {
        if !self.valid {
            return None;
        }
        match self.entries.by_label_bytes.get(&key_hash(label_bytes)) {
            Some((bytes, series)) if **bytes == *label_bytes => Some(series),
            _ => None,
        }
    }

    /// Remembers a series that passed validation.
    pub fn learn(&mut self, label_bytes: &[u8], series: Arc<KnownSeries>) {
        self.learnt.push((label_bytes.into(), series));
    }

    /// Adds what the request learnt; entries of other limits are dropped.
    pub fn finish(self, limits: &Arc<Limits>) {
        let CacheView {
            cache,
            entries,
            valid,
            learnt,
        } = self;
        drop(entries);
        if learnt.is_empty() && valid {
            return;
        }
        let mut entries = cache.entries.write();
        let current = entries
            .limits
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, limits));
        if !current {
            *entries = Entries {
                limits: Some(limits.clone()),
                ..Entries::default()
            };
        }
        for (key, series) in learnt {
            let bytes = key.len() + series.bytes() + 32;
            if entries.bytes + bytes > MAX_CACHE_BYTES {
                entries.by_label_bytes.clear();
                entries.bytes = 0;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) =
                entries.by_label_bytes.entry(key_hash(&key))
            {
                slot.insert((key, series));
                entries.bytes += bytes;
            }
        }
    }
}
