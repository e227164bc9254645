//! The series directory of a samples block: its row-index sidecar
//! (`blocks/<id>.rows`, the path log blocks use for their segment blooms).
//! It answers "which series does this block hold, with which labels, and
//! on which rows?" so that a PromQL selector matches its matchers against
//! the block's series in memory and reads only the rows of those that
//! match, in the selector's time range, without decoding the block's
//! `metric` and `labels` columns at all.
//!
//! What flows through: the block's rows in block order (sorted by metric,
//! series id and time, so each series is one run of rows) go into
//! [`SeriesIndexBuilder`]; out comes, per run, the series (id, metric,
//! label pairs), its first row and row count, its first and last sample
//! time, and the time of every [`MARK_ROWS`]th row of the run, which
//! narrows a time range to rows ([`SeriesRun::rows_between`]).
//!
//! File format: magic `O11SIX01`, then a zstd frame of the body, then a
//! crc32 of everything before it. Body: `rows` varint, `mark_rows` varint,
//! series count varint, per series `id` (i64 LE), metric and packed label
//! pairs (each a varint length and bytes, pairs as
//! [`super::codec::pack_pairs`]); run count varint, per run the series'
//! ordinal, the row count, the first time (i64 LE), then the last time
//! and each mark as varint increases over the time before it.

use std::collections::HashMap;
use std::ops::Range;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};

use super::codec::{pack_pairs, read_varint, unpack_pairs, write_varint};
use crate::error::{Error, Result};
use crate::model::labels::{Labels, map_row};

const MAGIC: &[u8; 8] = b"O11SIX01";

/// Every this many rows of a run, the directory keeps the row's time: a
/// time range is narrowed to whole stretches of this many rows.
pub const MARK_ROWS: u32 = 64;

/// zstd level of the directory: written once per block, read once per
/// block into the index cache.
const ZSTD_LEVEL: i32 = 3;

/// One series of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedSeries {
    pub id: i64,
    pub metric: String,
    /// The label pairs as stored (sorted by name, without the metric).
    pub labels: Vec<(String, String)>,
    /// The label set a query answers with (metric as `__name__`, empty
    /// values dropped), built once when the directory is read, so that
    /// every query over a cached directory shares it.
    pub label_set: Labels,
}

impl IndexedSeries {
    pub fn new(id: i64, metric: String, labels: Vec<(String, String)>) -> Self {
        let label_set = Labels::of_series(&metric, &labels);
        IndexedSeries {
            id,
            metric,
            labels,
            label_set,
        }
    }

    /// The value of label `name` (`__name__` is the metric), "" when absent.
    pub fn label(&self, name: &str) -> &str {
        if name == "__name__" {
            return &self.metric;
        }
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// One run of a series' rows.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRun {
    /// Ordinal of the series in [`SeriesIndex::series`].
    pub series: u32,
    pub first_row: u64,
    pub rows: u64,
    pub min_time: i64,
    pub max_time: i64,
    /// The time of row `first_row + (k + 1) * MARK_ROWS`, for each k.
    marks: Vec<i64>,
}

impl SeriesRun {
    /// The rows of this run that can hold a sample in `[min_ms, max_ms]`
    /// (whole stretches of [`MARK_ROWS`] rows), or `None` when none can.
    pub fn rows_between(&self, min_ms: i64, max_ms: i64, mark_rows: u64) -> Option<Range<u64>> {
        if self.max_time < min_ms || self.min_time > max_ms {
            return None;
        }
        // Rows before mark k are no later than its time: the stretch
        // before the last mark earlier than `min_ms` can be skipped...
        let skipped = self.marks.partition_point(|&t| t < min_ms);
        // ...and from the first mark later than `max_ms` on, every row is.
        let kept = self.marks.partition_point(|&t| t <= max_ms);
        let start = self.first_row + skipped as u64 * mark_rows;
        let end = if kept < self.marks.len() {
            self.first_row + (kept as u64 + 1) * mark_rows
        } else {
            self.first_row + self.rows
        };
        (start < end).then_some(start..end)
    }

    /// Whether the run surely holds a sample in `[min_ms, max_ms]`: its
    /// first, last or a marked row's time is in it.
    pub fn surely_has_sample_between(&self, min_ms: i64, max_ms: i64) -> bool {
        let within = |t: i64| (min_ms..=max_ms).contains(&t);
        within(self.min_time) || within(self.max_time) || self.marks.iter().any(|&t| within(t))
    }
}

/// A samples block's series directory, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesIndex {
    rows: u64,
    mark_rows: u32,
    series: Vec<IndexedSeries>,
    /// In block order.
    runs: Vec<SeriesRun>,
    /// Whether `runs` are sorted by their series' metric (as blocks are):
    /// a metric's runs are then found by binary search.
    sorted_by_metric: bool,
}

impl super::index_cache::CachedIndex for SeriesIndex {
    fn memory_bytes(&self) -> u64 {
        let series: usize = self
            .series
            .iter()
            .map(|s| {
                std::mem::size_of::<IndexedSeries>()
                    + s.metric.len()
                    + [&s.labels, &*s.label_set]
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| k.len() + v.len() + 48)
                        .sum::<usize>()
            })
            .sum();
        let runs: usize = self
            .runs
            .iter()
            .map(|r| std::mem::size_of::<SeriesRun>() + r.marks.len() * 8)
            .sum();
        (series + runs + std::mem::size_of::<SeriesIndex>()) as u64
    }
}

impl SeriesIndex {
    /// The rows of the block the directory was built over.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn mark_rows(&self) -> u64 {
        u64::from(self.mark_rows)
    }

    pub fn series(&self, ordinal: u32) -> &IndexedSeries {
        &self.series[ordinal as usize]
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The runs of the series whose metric is `metric` (every run when
    /// `None`), in block order.
    pub fn runs_of(&self, metric: Option<&str>) -> &[SeriesRun] {
        match metric {
            Some(name) if self.sorted_by_metric => {
                let metric_of = |r: &SeriesRun| self.series[r.series as usize].metric.as_str();
                let start = self.runs.partition_point(|r| metric_of(r) < name);
                let end = self.runs.partition_point(|r| metric_of(r) <= name);
                &self.runs[start..end]
            }
            _ => &self.runs,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        write_varint(&mut body, self.rows);
        write_varint(&mut body, u64::from(self.mark_rows));
        write_varint(&mut body, self.series.len() as u64);
        let mut packed = Vec::new();
        for s in &self.series {
            body.extend_from_slice(&s.id.to_le_bytes());
            write_bytes(&mut body, s.metric.as_bytes());
            packed.clear();
            let pairs: Vec<(&str, &str)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            pack_pairs(&pairs, &mut packed);
            write_bytes(&mut body, &packed);
        }
        write_varint(&mut body, self.runs.len() as u64);
        for r in &self.runs {
            write_varint(&mut body, u64::from(r.series));
            write_varint(&mut body, r.rows);
            body.extend_from_slice(&r.min_time.to_le_bytes());
            let mut previous = r.min_time;
            for &t in r.marks.iter().chain(std::iter::once(&r.max_time)) {
                write_varint(&mut body, t.wrapping_sub(previous) as u64);
                previous = t;
            }
        }
        let mut out = MAGIC.to_vec();
        out.extend(zstd::bulk::compress(&body, ZSTD_LEVEL).expect("zstd compresses a buffer"));
        super::checksum::append_crc32(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<SeriesIndex> {
        let bad = |why: &str| Error::Storage(format!("corrupt series index: {why}"));
        if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("bad header"));
        }
        let file = super::checksum::verified_body(bytes).ok_or_else(|| bad("checksum mismatch"))?;
        let body = zstd::stream::decode_all(&file[MAGIC.len()..]).map_err(|_| bad("zstd"))?;
        let mut at = 0usize;
        let varint = |at: &mut usize| read_varint(&body, at).ok_or_else(|| bad("truncated"));
        let fixed = |at: &mut usize| -> Result<i64> {
            let v = body
                .get(*at..*at + 8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .ok_or_else(|| bad("truncated"))?;
            *at += 8;
            Ok(v)
        };
        let text = |at: &mut usize| -> Result<&[u8]> {
            let len = read_varint(&body, at).ok_or_else(|| bad("truncated"))? as usize;
            let end = at.checked_add(len).filter(|&e| e <= body.len());
            let bytes = &body[*at..end.ok_or_else(|| bad("truncated"))?];
            *at += len;
            Ok(bytes)
        };
        let rows = varint(&mut at)?;
        let mark_rows = u32::try_from(varint(&mut at)?)
            .ok()
            .filter(|&m| m > 0)
            .ok_or_else(|| bad("mark interval"))?;
        let series_count = varint(&mut at)? as usize;
        let mut series = Vec::with_capacity(series_count.min(body.len()));
        for _ in 0..series_count {
            let id = fixed(&mut at)?;
            let metric = std::str::from_utf8(text(&mut at)?)
                .map_err(|_| bad("metric is not UTF-8"))?
                .to_string();
            let labels = unpack_pairs(text(&mut at)?)?
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            series.push(IndexedSeries::new(id, metric, labels));
        }
        let run_count = varint(&mut at)? as usize;
        let mut runs = Vec::with_capacity(run_count.min(body.len()));
        let mut first_row = 0u64;
        for _ in 0..run_count {
            let ordinal = varint(&mut at)?;
            if ordinal >= series.len() as u64 {
                return Err(bad("run of an unknown series"));
            }
            let run_rows = varint(&mut at)?;
            if run_rows == 0 {
                return Err(bad("empty run"));
            }
            let min_time = fixed(&mut at)?;
            let mut previous = min_time;
            let mut marks = Vec::with_capacity(((run_rows - 1) / u64::from(mark_rows)) as usize);
            for _ in 0..(run_rows - 1) / u64::from(mark_rows) {
                previous = previous.wrapping_add(varint(&mut at)? as i64);
                marks.push(previous);
            }
            let max_time = previous.wrapping_add(varint(&mut at)? as i64);
            runs.push(SeriesRun {
                series: ordinal as u32,
                first_row,
                rows: run_rows,
                min_time,
                max_time,
                marks,
            });
            first_row += run_rows;
        }
        if first_row != rows {
            return Err(bad("runs do not cover the rows"));
        }
        if at != body.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(SeriesIndex::new(rows, mark_rows, series, runs))
    }

    fn new(rows: u64, mark_rows: u32, series: Vec<IndexedSeries>, runs: Vec<SeriesRun>) -> Self {
        let sorted_by_metric = runs
            .windows(2)
            .all(|w| series[w[0].series as usize].metric <= series[w[1].series as usize].metric);
        SeriesIndex {
            rows,
            mark_rows,
            series,
            runs,
            sorted_by_metric,
        }
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Builds a samples block's series directory from its rows in block order
/// (the table schema), a batch at a time.
#[derive(Debug, Default)]
pub struct SeriesIndexBuilder {
    rows: u64,
    series: Vec<IndexedSeries>,
    ordinals: HashMap<i64, u32>,
    runs: Vec<SeriesRun>,
    /// The series id of the last run.
    current: Option<i64>,
}

impl SeriesIndexBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a batch of the samples table (series_id, metric, labels and
    /// timestamp are read).
    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| Error::Storage(format!("series index: no `{name}` column")))
        };
        let ids = column("series_id")?.as_primitive::<Int64Type>();
        let metrics = column("metric")?.as_string::<i32>();
        let labels = column("labels")?.as_map();
        let times = column("timestamp")?.as_primitive::<TimestampMillisecondType>();
        let mark_rows = u64::from(MARK_ROWS);
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            let t = times.value(row);
            if self.current != Some(id) {
                let ordinal = match self.ordinals.get(&id) {
                    Some(&o) => o,
                    None => {
                        let o = self.series.len() as u32;
                        self.series.push(IndexedSeries::new(
                            id,
                            metrics.value(row).to_string(),
                            map_row(labels, row)
                                .into_iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                        ));
                        self.ordinals.insert(id, o);
                        o
                    }
                };
                self.runs.push(SeriesRun {
                    series: ordinal,
                    first_row: self.rows,
                    rows: 0,
                    min_time: t,
                    max_time: t,
                    marks: Vec::new(),
                });
                self.current = Some(id);
            }
            let run = self.runs.last_mut().expect("a run was opened above");
            if run.rows > 0 && run.rows.is_multiple_of(mark_rows) {
                run.marks.push(t);
            }
            run.rows += 1;
            run.max_time = t;
            self.rows += 1;
        }
        Ok(())
    }

    pub fn finish(self) -> SeriesIndex {
        SeriesIndex::new(self.rows, MARK_ROWS, self.series, self.runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Signal;
    use crate::model::builders::SamplesBuilder;

    /// Series `a` (200 samples at t = 10·i), `b` (3), in block order.
    fn block_rows() -> RecordBatch {
        let mut b = SamplesBuilder::new();
        let a: Vec<(i64, f64)> = (0..200).map(|i| (10 * i, i as f64)).collect();
        b.push_series("up", &[("job", "a")], &a);
        b.push_series(
            "down",
            &[("job", "b"), ("zone", "z")],
            &[(5, 1.0), (6, 2.0), (7, 3.0)],
        );
        let batch = crate::model::normalize::normalize(Signal::Samples, &b.finish()).unwrap();
        crate::storage::block::sort_for_block(Signal::Samples, &batch).unwrap()
    }

    #[test]
    fn runs_narrow_time_ranges_to_marked_stretches() {
        let rows = block_rows();
        let mut builder = SeriesIndexBuilder::new();
        // Split mid-series: a run continues across batches.
        builder.add_batch(&rows.slice(0, 50)).unwrap();
        builder
            .add_batch(&rows.slice(50, rows.num_rows() - 50))
            .unwrap();
        let index = builder.finish();
        let decoded = SeriesIndex::decode(&index.encode()).unwrap();
        assert_eq!(decoded, index);
        assert_eq!(decoded.rows(), 203);
        assert_eq!(decoded.series_count(), 2);
        // Sorted by metric: `down` (3 rows) first, then `up`.
        let [down] = decoded.runs_of(Some("down")) else {
            panic!("one run of down");
        };
        assert_eq!((down.first_row, down.rows), (0, 3));
        assert_eq!(decoded.series(down.series).label("zone"), "z");
        assert_eq!(decoded.series(down.series).label("__name__"), "down");
        assert_eq!(decoded.series(down.series).label("missing"), "");
        let [up] = decoded.runs_of(Some("up")) else {
            panic!("one run of up");
        };
        assert_eq!(
            (up.first_row, up.rows, up.min_time, up.max_time),
            (3, 200, 0, 1990)
        );
        assert!(decoded.runs_of(Some("sideways")).is_empty());
        assert_eq!(decoded.runs_of(None).len(), 2);
        // Marks at run rows 64, 128, 192 (times 640, 1280, 1920).
        let m = decoded.mark_rows();
        assert_eq!(up.rows_between(0, 1990, m), Some(3..203));
        assert_eq!(up.rows_between(1000, 1100, m), Some(3 + 64..3 + 128));
        assert_eq!(up.rows_between(1950, 5000, m), Some(3 + 192..203));
        assert_eq!(up.rows_between(-50, 100, m), Some(3..3 + 64));
        assert_eq!(up.rows_between(2000, 5000, m), None);
        assert!(up.surely_has_sample_between(1280, 1281));
        assert!(!up.surely_has_sample_between(1000, 1100));
        // Every row whose time is in a range is in its narrowed rows.
        let times = rows
            .column_by_name("timestamp")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>()
            .clone();
        for (lo, hi) in [(0, 0), (635, 645), (1279, 1281), (1919, 1990), (300, 301)] {
            let kept = up.rows_between(lo, hi, m).unwrap();
            for row in 3..203u64 {
                let t = times.value(row as usize);
                if (lo..=hi).contains(&t) {
                    assert!(kept.contains(&row), "row {row} for [{lo}, {hi}]");
                }
            }
        }
    }

    #[test]
    fn damaged_or_truncated_files_are_refused() {
        let mut builder = SeriesIndexBuilder::new();
        builder.add_batch(&block_rows()).unwrap();
        let bytes = builder.finish().encode();
        let mut damaged = bytes.clone();
        damaged[12] ^= 1;
        assert!(SeriesIndex::decode(&damaged).is_err());
        assert!(SeriesIndex::decode(&bytes[..bytes.len() - 3]).is_err());
        assert!(SeriesIndex::decode(b"O11SIX01").is_err());
        assert!(SeriesIndex::decode(b"O11RIX01\0\0\0\0\0\0\0\0").is_err());
    }
}
