//! Decoded samples of samples blocks, held in memory between queries up to
//! a byte budget (`[query] samples_cache_size`).
//!
//! What flows through: a PromQL selector reads each matching series of a
//! block in chunks of [`CHUNK_ROWS`] rows of the series' run (counted from
//! the run's first row, so every query cuts a run the same way). A chunk
//! decoded from Parquet is kept here as a [`SampleChunk`] — its float
//! samples' times as offsets from the first, their values, and its native
//! histograms decoded — keyed by block id and the chunk's first row. The
//! next query over the same series and block copies the samples in its
//! time range out of memory instead of decompressing and decoding pages
//! again. Blocks never change once written, so an entry is only ever
//! evicted (least recently used first, see [`super::index_cache::BlockCache`])
//! or dropped with its block.

use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::Arc;

use super::index_cache::BlockCache;
use crate::model::histogram::FloatHistogram;

/// Rows of a series' run per chunk: four marks of the series directory
/// (`series_index::MARK_ROWS`), so a narrow time range still reads little
/// more than the directory's stretches on a miss.
pub const CHUNK_ROWS: u64 = 256;

/// Default budget: the decoded samples of ~40 M samples (12 bytes each).
pub const DEFAULT_SAMPLES_CACHE_BYTES: u64 = 512 << 20;

/// A native histogram sample.
pub type HistogramSample = (i64, Arc<FloatHistogram>);

/// The samples of one chunk of a series' rows in a block, in row order.
#[derive(Debug)]
pub struct SampleChunk {
    /// Time of the first float sample (0 when there is none).
    first_time: i64,
    times: Times,
    values: Box<[f64]>,
    histograms: Box<[HistogramSample]>,
    /// Whether the float times never decrease (blocks are sorted by time
    /// within a series): a range is then cut by binary search.
    sorted: bool,
}

/// Float sample times: milliseconds after the chunk's first, or as they
/// are when the chunk spans more than `u32` milliseconds (~49 days).
#[derive(Debug)]
enum Times {
    Offsets(Box<[u32]>),
    Millis(Box<[i64]>),
}

impl SampleChunk {
    /// A chunk of float samples (`times` and `values` alike long) and
    /// native histogram samples.
    pub fn new(times: &[i64], values: Vec<f64>, histograms: Vec<HistogramSample>) -> Self {
        debug_assert_eq!(times.len(), values.len());
        let first_time = times.first().copied().unwrap_or(0);
        let fits = times
            .iter()
            .all(|&t| u32::try_from(t.wrapping_sub(first_time)).is_ok());
        let times_kept = match fits {
            true => Times::Offsets(times.iter().map(|&t| (t - first_time) as u32).collect()),
            false => Times::Millis(times.into()),
        };
        SampleChunk {
            first_time,
            times: times_kept,
            values: values.into(),
            histograms: histograms.into(),
            sorted: times.is_sorted(),
        }
    }

    /// Float and histogram samples.
    pub fn len(&self) -> usize {
        self.values.len() + self.histograms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Memory the chunk takes, as the cache counts it.
    pub fn memory_bytes(&self) -> u64 {
        let times = match &self.times {
            Times::Offsets(t) => t.len() * 4,
            Times::Millis(t) => t.len() * 8,
        };
        let histograms: usize = self
            .histograms
            .iter()
            .map(|(_, h)| {
                std::mem::size_of::<HistogramSample>()
                    + std::mem::size_of::<FloatHistogram>()
                    + 8 * (h.positive_spans.len()
                        + h.negative_spans.len()
                        + h.positive_buckets.len()
                        + h.negative_buckets.len()
                        + h.custom_values.len())
            })
            .sum();
        (std::mem::size_of::<Self>() + times + self.values.len() * 8 + histograms) as u64
    }

    /// The time of float sample `i`.
    fn time(&self, i: usize) -> i64 {
        match &self.times {
            Times::Offsets(t) => self.first_time + i64::from(t[i]),
            Times::Millis(t) => t[i],
        }
    }

    /// Index range of the float samples in `[min_ms, max_ms]`, found by
    /// binary search; `None` when the times are not sorted.
    fn sorted_floats_between(&self, (min_ms, max_ms): (i64, i64)) -> Option<Range<usize>> {
        if !self.sorted {
            return None;
        }
        let len = self.values.len();
        // Most chunks of a range query lie wholly inside it.
        if len == 0 || (self.first_time >= min_ms && self.time(len - 1) <= max_ms) {
            return Some(0..len);
        }
        let (lo, hi) = match &self.times {
            Times::Offsets(t) => {
                let offset = |ms: i64| ms.saturating_sub(self.first_time);
                let (min, max) = (offset(min_ms), offset(max_ms));
                (
                    t.partition_point(|&o| i64::from(o) < min),
                    t.partition_point(|&o| i64::from(o) <= max),
                )
            }
            Times::Millis(t) => (
                t.partition_point(|&x| x < min_ms),
                t.partition_point(|&x| x <= max_ms),
            ),
        };
        Some(lo..hi.max(lo))
    }

    /// How many samples are in `[min_ms, max_ms]`: histograms, and floats
    /// too with `floats`.
    pub fn samples_between(&self, (min_ms, max_ms): (i64, i64), floats: bool) -> usize {
        let histograms = self
            .histograms
            .iter()
            .filter(|(t, _)| (min_ms..=max_ms).contains(t))
            .count();
        match floats {
            true => histograms + self.floats_between((min_ms, max_ms)),
            false => histograms,
        }
    }

    /// How many float samples are in `[min_ms, max_ms]`.
    pub fn floats_between(&self, (min_ms, max_ms): (i64, i64)) -> usize {
        match self.sorted_floats_between((min_ms, max_ms)) {
            Some(range) => range.len(),
            None => (0..self.values.len())
                .filter(|&i| (min_ms..=max_ms).contains(&self.time(i)))
                .count(),
        }
    }

    /// Appends the float samples in `[min_ms, max_ms]` to `times` and
    /// `values`; returns how many.
    pub fn append_floats(
        &self,
        (min_ms, max_ms): (i64, i64),
        times: &mut Vec<i64>,
        values: &mut Vec<f64>,
    ) -> usize {
        let Some(range) = self.sorted_floats_between((min_ms, max_ms)) else {
            let before = times.len();
            for (i, &v) in self.values.iter().enumerate() {
                let t = self.time(i);
                if (min_ms..=max_ms).contains(&t) {
                    times.push(t);
                    values.push(v);
                }
            }
            return times.len() - before;
        };
        match &self.times {
            Times::Offsets(t) => {
                let first = self.first_time;
                times.extend(t[range.clone()].iter().map(|&o| first + i64::from(o)));
            }
            Times::Millis(t) => times.extend_from_slice(&t[range.clone()]),
        }
        values.extend_from_slice(&self.values[range.clone()]);
        range.len()
    }

    /// Appends the histogram samples in `[min_ms, max_ms]` to `out`;
    /// returns how many.
    pub fn append_histograms(
        &self,
        (min_ms, max_ms): (i64, i64),
        out: &mut Vec<HistogramSample>,
    ) -> usize {
        let before = out.len();
        out.extend(
            self.histograms
                .iter()
                .filter(|(t, _)| (min_ms..=max_ms).contains(t))
                .cloned(),
        );
        out.len() - before
    }
}

/// The chunks of every block, by block id and the chunk's first row.
pub struct SamplesCache {
    chunks: BlockCache<u64, Arc<SampleChunk>, BuildHasherDefault<RowHasher>>,
}

/// A row number's hash: one multiplication (Fibonacci hashing), which
/// spreads consecutive rows over the high bits the hash table probes by.
#[derive(Default)]
pub struct RowHasher(u64);

impl Hasher for RowHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, row: u64) {
        self.0 = row.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl SamplesCache {
    pub fn new(budget: u64) -> Self {
        SamplesCache {
            chunks: BlockCache::new(budget),
        }
    }

    /// Changes the budget (0: nothing is kept), evicting what no longer fits.
    pub fn set_budget(&self, budget: u64) {
        self.chunks.set_budget(budget);
    }

    /// Block `id`'s chunks starting at `rows`, each if cached.
    pub fn get_many(&self, id: &str, rows: &[u64]) -> Vec<Option<Arc<SampleChunk>>> {
        let keys: Vec<&u64> = rows.iter().collect();
        self.chunks.get_many(id, &keys)
    }

    /// Keeps block `id`'s chunks, each by its first row.
    pub fn insert_many(&self, id: &str, chunks: impl IntoIterator<Item = (u64, Arc<SampleChunk>)>) {
        self.chunks.insert_many(
            id,
            chunks.into_iter().map(|(row, chunk)| {
                let bytes = chunk.memory_bytes() + 48;
                (row, chunk, bytes)
            }),
        );
    }

    /// Drops block `id`'s chunks.
    pub fn remove(&self, id: &str) {
        self.chunks.remove(id);
    }

    /// Bytes the cached chunks hold, and how many there are.
    pub fn usage(&self) -> (u64, usize) {
        self.chunks.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(chunk: &SampleChunk, range: (i64, i64)) -> (Vec<i64>, Vec<f64>) {
        let (mut t, mut v) = (Vec::new(), Vec::new());
        let n = chunk.append_floats(range, &mut t, &mut v);
        assert_eq!(n, t.len());
        (t, v)
    }

    #[test]
    fn floats_in_a_range_come_out_as_they_went_in() {
        let times: Vec<i64> = (0..10).map(|i| 1_700_000_000_000 + i * 15_000).collect();
        let values: Vec<f64> = (0..10).map(f64::from).collect();
        let chunk = SampleChunk::new(&times, values.clone(), Vec::new());
        assert_eq!(
            floats(&chunk, (i64::MIN, i64::MAX)),
            (times.clone(), values)
        );
        // Bounds are inclusive; a range between samples or outside is empty.
        assert_eq!(chunk.samples_between((times[2], times[4]), true), 3);
        assert_eq!(chunk.samples_between((times[2], times[4]), false), 0);
        let (t, v) = floats(&chunk, (times[2], times[4]));
        assert_eq!((t, v), (times[2..=4].to_vec(), vec![2.0, 3.0, 4.0]));
        assert_eq!(
            floats(&chunk, (times[2] + 1, times[3] - 1)).0,
            Vec::<i64>::new()
        );
        assert_eq!(floats(&chunk, (0, times[0] - 1)).0, Vec::<i64>::new());
        assert_eq!(
            floats(&chunk, (times[9] + 1, i64::MAX)).0,
            Vec::<i64>::new()
        );
        // A chunk spanning more than u32 milliseconds keeps whole times.
        let wide = [-5, 10_000_000_000, 20_000_000_000];
        let chunk = SampleChunk::new(&wide, vec![1.0, 2.0, 3.0], Vec::new());
        assert!(matches!(chunk.times, Times::Millis(_)));
        assert_eq!(floats(&chunk, (0, i64::MAX)).0, wide[1..].to_vec());
        // Unsorted times (not what blocks hold) are filtered one by one.
        let chunk = SampleChunk::new(&[30, 10, 20], vec![3.0, 1.0, 2.0], Vec::new());
        assert_eq!(floats(&chunk, (15, 30)), (vec![30, 20], vec![3.0, 2.0]));
        assert_eq!(chunk.samples_between((15, 30), true), 2);
    }

    #[test]
    fn histograms_are_cut_by_time_and_counted() {
        let h = Arc::new(FloatHistogram::default());
        let chunk = SampleChunk::new(&[5], vec![1.0], vec![(10, h.clone()), (20, h)]);
        assert_eq!(chunk.len(), 3);
        let mut out = Vec::new();
        assert_eq!(chunk.append_histograms((11, 25), &mut out), 1);
        assert_eq!(chunk.samples_between((0, 25), false), 2);
        assert_eq!(chunk.samples_between((0, 25), true), 3);
        assert_eq!(out[0].0, 20);
        assert!(chunk.memory_bytes() > SampleChunk::new(&[5], vec![1.0], vec![]).memory_bytes());
    }

    #[test]
    fn chunks_are_kept_per_block_and_evicted_past_the_budget() {
        let chunk = |n: i64| {
            let times: Vec<i64> = (0..n).collect();
            Arc::new(SampleChunk::new(&times, vec![0.0; n as usize], Vec::new()))
        };
        let size = chunk(1_000).memory_bytes() + 48;
        let cache = SamplesCache::new(3 * size + size / 2);
        cache.insert_many("a", [(0, chunk(1_000)), (256, chunk(1_000))]);
        cache.insert_many("b", [(0, chunk(1_000))]);
        assert_eq!(cache.usage(), (3 * size, 3));
        let got = cache.get_many("a", &[0, 256, 512]);
        assert!(got[0].is_some() && got[1].is_some() && got[2].is_none());
        // "b" is the least recently used when another chunk comes.
        cache.insert_many("c", [(0, chunk(1_000))]);
        assert!(cache.get_many("b", &[0])[0].is_none());
        assert!(cache.get_many("c", &[0])[0].is_some());
        cache.remove("a");
        assert_eq!(cache.usage(), (size, 1));
        // A budget of 0 keeps nothing.
        cache.set_budget(0);
        cache.insert_many("d", [(0, chunk(10))]);
        assert_eq!(cache.usage(), (0, 0));
    }
}
