//! The in-memory head: per (tenant, signal), the batches that are durable in
//! the WAL but not yet in a block. Queries read a snapshot of it; the flusher
//! freezes it, writes the frozen part into a block and then drops it in the
//! same step that installs the new manifest, so every row is visible in
//! exactly one place at any time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use parking_lot::{Mutex, RwLock};

use crate::model::Signal;
use crate::model::normalize::time_range;

/// Head batches with their (min, max) event time.
pub type TimedBatches = Vec<(RecordBatch, (i64, i64))>;

/// Batches buffered in a head, with their time range for pruning.
#[derive(Debug, Clone, Default)]
pub struct HeadPart {
    pub batches: TimedBatches,
    pub rows: usize,
    pub bytes: usize,
    /// Highest LSN whose data is in this part.
    pub max_lsn: Option<u64>,
    /// Lowest WAL segment holding data of this part.
    pub min_segment: Option<u64>,
    pub created: Option<Instant>,
    /// Batches before this index are already merged (see [`HeadPart::coalesce`]).
    coalesced: usize,
}

/// Small batches merged into one once this many have been appended.
const COALESCE_BATCHES: usize = 512;

/// Batches of at least this many rows on average are left as they are:
/// scans handle them well, and copying them again would cost ingest about a
/// tenth of its CPU (remote write sends 2,000 samples per request).
const COALESCE_BELOW_AVERAGE_ROWS: usize = 1024;

impl HeadPart {
    fn push(&mut self, signal: Signal, batch: RecordBatch, lsn: u64, segment: u64) {
        if batch.num_rows() == 0 {
            return;
        }
        let range = time_range(signal, &batch).unwrap_or((i64::MIN, i64::MAX));
        self.rows += batch.num_rows();
        self.bytes += batch.get_array_memory_size();
        self.max_lsn = Some(self.max_lsn.map_or(lsn, |m| m.max(lsn)));
        self.min_segment = Some(self.min_segment.map_or(segment, |m| m.min(segment)));
        self.created.get_or_insert_with(Instant::now);
        self.batches.push((batch, range));
        let pending = self.batches.len() - self.coalesced;
        if pending >= COALESCE_BATCHES {
            let pending_rows: usize = self.batches[self.coalesced..]
                .iter()
                .map(|(b, _)| b.num_rows())
                .sum();
            if pending_rows / pending < COALESCE_BELOW_AVERAGE_ROWS {
                self.coalesce(signal);
            } else {
                self.coalesced = self.batches.len();
            }
        }
    }

    /// Merges the small batches appended since the last merge into one, so
    /// scans do not pay per-batch overhead. Earlier merged batches are left
    /// alone: each row is copied once, not once per merge.
    fn coalesce(&mut self, signal: Signal) {
        let tail: Vec<RecordBatch> = self.batches[self.coalesced..]
            .iter()
            .map(|(b, _)| b.clone())
            .collect();
        if let Ok(merged) = arrow::compute::concat_batches(&signal.schema(), &tail) {
            let tail_bytes: usize = tail.iter().map(|b| b.get_array_memory_size()).sum();
            let range = time_range(signal, &merged).unwrap_or((i64::MIN, i64::MAX));
            self.bytes = self.bytes.saturating_sub(tail_bytes) + merged.get_array_memory_size();
            self.batches.truncate(self.coalesced);
            self.batches.push((merged, range));
            self.coalesced = self.batches.len();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

#[derive(Debug, Default)]
struct HeadState {
    active: HeadPart,
    /// The part being written to a block, still served to queries.
    frozen: Option<Arc<HeadPart>>,
}

/// The head of one tenant's signal.
#[derive(Debug)]
pub struct Head {
    pub signal: Signal,
    state: Mutex<HeadState>,
}

impl Head {
    fn new(signal: Signal) -> Self {
        Head {
            signal,
            state: Mutex::new(HeadState::default()),
        }
    }

    pub fn push(&self, batch: RecordBatch, lsn: u64, segment: u64) {
        self.state
            .lock()
            .active
            .push(self.signal, batch, lsn, segment);
    }

    /// The batches a query should see, with their time ranges, together with
    /// whatever `with` reads (the manifest) under the same lock that
    /// [`Head::complete_flush`] installs a manifest under.
    pub fn snapshot_with<T>(&self, with: impl FnOnce() -> T) -> (TimedBatches, T) {
        let state = self.state.lock();
        let mut out = Vec::new();
        if let Some(frozen) = &state.frozen {
            out.extend(frozen.batches.iter().cloned());
        }
        out.extend(state.active.batches.iter().cloned());
        (out, with())
    }

    /// Moves the active part aside for flushing. Returns `None` when there is
    /// nothing to flush or a flush is already under way.
    pub fn freeze(&self) -> Option<Arc<HeadPart>> {
        let mut state = self.state.lock();
        if state.frozen.is_some() || state.active.is_empty() {
            return None;
        }
        let part = Arc::new(std::mem::take(&mut state.active));
        state.frozen = Some(part.clone());
        Some(part)
    }

    /// Drops the frozen part once its block is in the manifest. `install` runs
    /// under the head lock, so no query sees the rows twice or not at all.
    pub fn complete_flush(&self, install: impl FnOnce()) {
        let mut state = self.state.lock();
        install();
        state.frozen = None;
    }

    /// Puts a frozen part back after a failed flush; it is retried later.
    pub fn abort_flush(&self) {
        let mut state = self.state.lock();
        if let Some(frozen) = state.frozen.take() {
            let mut part = Arc::unwrap_or_clone(frozen);
            let active = std::mem::take(&mut state.active);
            part.rows += active.rows;
            part.bytes += active.bytes;
            part.max_lsn = part.max_lsn.max(active.max_lsn);
            part.min_segment = match (part.min_segment, active.min_segment) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            part.batches.extend(active.batches);
            state.active = part;
        }
    }

    /// Size, age and WAL needs of the head, for flush decisions.
    pub fn stats(&self) -> HeadStats {
        let state = self.state.lock();
        let frozen_segment = state.frozen.as_ref().and_then(|f| f.min_segment);
        HeadStats {
            rows: state.active.rows + state.frozen.as_ref().map_or(0, |f| f.rows),
            active_bytes: state.active.bytes,
            frozen_bytes: state.frozen.as_ref().map_or(0, |f| f.bytes),
            age: state.active.created.map(|c| c.elapsed()),
            min_segment: match (state.active.min_segment, frozen_segment) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct HeadStats {
    pub rows: usize,
    pub active_bytes: usize,
    /// Bytes of the part being flushed (still in memory until its block is published).
    pub frozen_bytes: usize,
    pub age: Option<std::time::Duration>,
    pub min_segment: Option<u64>,
}

impl HeadStats {
    /// Bytes the head holds in memory, flushing or not.
    pub fn memory_bytes(&self) -> usize {
        self.active_bytes + self.frozen_bytes
    }
}

/// All heads, keyed by tenant and signal.
#[derive(Debug, Default)]
pub struct Heads {
    map: RwLock<HashMap<(String, Signal), Arc<Head>>>,
}

impl Heads {
    pub fn get(&self, tenant: &str, signal: Signal) -> Option<Arc<Head>> {
        self.map.read().get(&(tenant.to_string(), signal)).cloned()
    }

    pub fn get_or_create(&self, tenant: &str, signal: Signal) -> Arc<Head> {
        if let Some(h) = self.get(tenant, signal) {
            return h;
        }
        self.map
            .write()
            .entry((tenant.to_string(), signal))
            .or_insert_with(|| Arc::new(Head::new(signal)))
            .clone()
    }

    pub fn all(&self) -> Vec<((String, Signal), Arc<Head>)> {
        self.map
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Bytes all heads hold in memory (what `max_head_bytes` bounds).
    pub fn memory_bytes(&self) -> u64 {
        self.map
            .read()
            .values()
            .map(|h| h.stats().memory_bytes() as u64)
            .sum()
    }

    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self.map.read().keys().map(|(t, _)| t.clone()).collect();
        t.sort();
        t.dedup();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::builders::SamplesBuilder;

    #[test]
    fn small_batches_are_merged_once_each() {
        let mut part = HeadPart::default();
        let n = 2 * COALESCE_BATCHES + 10;
        for i in 0..n {
            let mut b = SamplesBuilder::new();
            b.push_series("up", &[("job", "api")], &[(i as i64, 1.0)]);
            part.push(Signal::Samples, b.finish(), i as u64, 1);
        }
        // Two merged batches of COALESCE_BATCHES rows, then the 10 newest as they came.
        let sizes: Vec<usize> = part.batches.iter().map(|(b, _)| b.num_rows()).collect();
        assert_eq!(&sizes[..2], &[COALESCE_BATCHES, COALESCE_BATCHES]);
        assert_eq!(sizes.len(), 12);
        assert_eq!(part.rows, n);
        assert_eq!(
            part.batches[1].1,
            (COALESCE_BATCHES as i64, 2 * COALESCE_BATCHES as i64 - 1)
        );
        let expected: usize = part
            .batches
            .iter()
            .map(|(b, _)| b.get_array_memory_size())
            .sum();
        assert_eq!(part.bytes, expected);
    }
}
