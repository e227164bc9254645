//! Downsampling, as Thanos does it: old raw samples blocks → blocks of
//! 5-minute aggregates, old 5-minute blocks → 1-hour aggregates, per series
//! and aligned window. The source blocks stay (retention removes them); a
//! downsampled block covers the same time range as its sources and is
//! listed in the same manifest with its `resolution_ms`.
//!
//! Per series and window a row keeps `count`, `sum`, `min` and `max` of the
//! window's samples (stale markers are skipped) and Thanos' `counter`: the
//! reset-adjusted counter value at the window's last sample, counted from the
//! series' first raw value in the block. With it go `counter_last`, the raw
//! value of that last sample, and, on a series' first row, `counter_first_time`
//! and `counter_first`, its first raw sample — what Thanos keeps in its
//! counter chunks so that [`CounterStitcher`] can join blocks (and raw data)
//! without mistaking a block boundary for a counter reset, and rate/increase
//! over downsampled data match raw within extrapolation error. A row's
//! timestamp is the timestamp of the window's last raw sample.
//!
//! Inputs are read as one stream in block order (series, then time), raw
//! inputs deduplicated as in a merge, so memory holds one batch per input
//! and one batch of output rows.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, AsArray, Float64Array, Int64Array, MapArray, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimestampMillisecondType,
};
use futures::StreamExt;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde::Serialize;

use super::merge::{Deduper, MergeSettings, merged_stream, upload_block_files};
use super::retention::Expiry;
use crate::error::{Error, Result};
use crate::model::labels::{build_string_map, map_row};
use crate::model::{STALE_NAN_BITS, Signal};
use crate::storage::bloom::{Bloom, BloomBuilder};
use crate::storage::codec::{BlockLayout, Stored, block_layout, pack_map, packed_map_type};
use crate::storage::manifest::BlockMeta;
use crate::storage::new_block_id;

/// Raw samples.
pub const RAW: i64 = 0;
/// 5-minute aggregates (Thanos `ResLevel1`).
pub const RES_5M: i64 = 5 * 60 * 1000;
/// 1-hour aggregates (Thanos `ResLevel2`).
pub const RES_1H: i64 = 60 * 60 * 1000;

/// Output rows per written batch.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// `raw`, `5m`, `1h` (or the window in ms).
pub fn resolution_name(resolution_ms: i64) -> String {
    match resolution_ms {
        RAW => "raw".into(),
        RES_5M => "5m".into(),
        RES_1H => "1h".into(),
        other => format!("{other}ms"),
    }
}

/// The columns of a downsampled block, decoded.
pub const COLUMNS: [&str; 12] = [
    "timestamp",
    "metric",
    "labels",
    "series_id",
    "count",
    "sum",
    "min",
    "max",
    "counter",
    "counter_last",
    "counter_first_time",
    "counter_first",
];

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let samples = Signal::Samples.schema();
    let mut fields: Vec<Field> = ["timestamp", "metric", "labels", "series_id"]
        .iter()
        .map(|n| samples.field_with_name(n).expect("samples column").clone())
        .collect();
    for name in ["count", "sum", "min", "max", "counter", "counter_last"] {
        fields.push(Field::new(name, DataType::Float64, false));
    }
    fields.push(Field::new("counter_first_time", DataType::Int64, true));
    fields.push(Field::new("counter_first", DataType::Float64, true));
    Arc::new(Schema::new(fields))
});

static LAYOUT: LazyLock<BlockLayout> = LazyLock::new(|| {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (i, f) in SCHEMA.fields().iter().enumerate() {
        if f.name() == "labels" {
            fields.push(Field::new(f.name(), packed_map_type(), f.is_nullable()));
            columns.push(Stored::PackedMap(i));
        } else {
            fields.push(f.as_ref().clone());
            columns.push(Stored::Plain(i));
        }
    }
    let schema = Arc::new(Schema::new(fields));
    BlockLayout {
        read_schema: schema.clone(),
        schema,
        columns,
        template: None,
        variables: Vec::new(),
    }
});

/// The decoded schema of downsampled blocks (the order of [`COLUMNS`]).
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// How downsampled blocks are laid out: labels packed, everything else as is.
pub fn layout() -> &'static BlockLayout {
    &LAYOUT
}

fn writer_properties() -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(9).expect("valid zstd level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1024 * 1024))
        .set_dictionary_enabled(true);
    for name in ["timestamp", "counter_first_time"] {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    for name in [
        "sum",
        "min",
        "max",
        "counter",
        "counter_last",
        "counter_first",
    ] {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(name), false)
            .set_column_encoding(ColumnPath::from(name), Encoding::BYTE_STREAM_SPLIT);
    }
    builder.build()
}

/// One series' aggregates over one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggrRow {
    /// The window's last raw sample.
    pub t: i64,
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Reset-adjusted counter at `t`, from the series' first raw value in the block.
    pub counter: f64,
    /// The raw value at `t`.
    pub counter_last: f64,
    /// The series' first raw sample in the block (its first row only).
    pub first: Option<(i64, f64)>,
}

/// Joins counter values across blocks and raw data into one monotonic
/// series, as Thanos' `ApplyCounterResetsSeriesIterator`: the first value
/// starts the total; each later value adds its increase over the previous
/// (all of it after a reset); [`CounterStitcher::set_last_raw`] tells it
/// the true raw value where aggregated data of one block ends, so the next
/// block's first raw value is compared with that.
#[derive(Debug, Default, Clone)]
pub struct CounterStitcher {
    started: bool,
    last_t: i64,
    last_v: f64,
    total: f64,
}

impl CounterStitcher {
    /// Adds a sample; returns the running total when it advanced in time
    /// (NaN values and samples not after the last are skipped).
    pub fn push(&mut self, t: i64, v: f64) -> Option<f64> {
        if v.is_nan() {
            return None;
        }
        if !self.started {
            self.started = true;
            (self.last_t, self.last_v, self.total) = (t, v, v);
            return Some(self.total);
        }
        if t <= self.last_t {
            return None;
        }
        self.total += if v >= self.last_v { v - self.last_v } else { v };
        (self.last_t, self.last_v) = (t, v);
        Some(self.total)
    }

    /// The raw value of the last sample pushed (aggregated values are adjusted).
    pub fn set_last_raw(&mut self, v: f64) {
        if self.started && !v.is_nan() {
            self.last_v = v;
        }
    }

    pub fn total(&self) -> f64 {
        self.total
    }
}

/// What one downsampling wrote.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct DownsampleStats {
    pub resolution: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub series: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The written (unpublished) block and its counts.
#[derive(Debug)]
pub struct DownsampleOutput {
    pub block: BlockMeta,
    pub stats: DownsampleStats,
}

/// Aggregates `inputs` (raw blocks, or 5m blocks for `resolution` 1h) of
/// one tenant's samples into one block of `resolution`, written but not
/// published. The block covers the inputs' whole time range, even when no
/// sample was left to aggregate, so a later run knows the range is done.
pub async fn downsample_blocks(
    settings: &MergeSettings<'_>,
    tenant: &str,
    inputs: &[BlockMeta],
    resolution: i64,
) -> Result<DownsampleOutput> {
    let source = inputs.first().map_or(RAW, |b| b.resolution_ms);
    if inputs.iter().any(|b| b.resolution_ms != source) || source >= resolution {
        return Err(Error::Storage(format!(
            "cannot downsample blocks of resolution {} to {}",
            resolution_name(source),
            resolution_name(resolution)
        )));
    }
    let signal = Signal::Samples;
    let mut stream = if source == RAW {
        merged_stream(
            settings,
            tenant,
            signal,
            inputs,
            block_layout(signal),
            signal.schema(),
        )
        .await?
    } else {
        merged_stream(settings, tenant, signal, inputs, layout(), schema()).await?
    };
    let id = new_block_id();
    std::fs::create_dir_all(&settings.scratch_dir)?;
    let scratch = settings.scratch_dir.join(format!("{id}.parquet"));
    let written = async {
        let mut out = Output::create(&scratch).await?;
        let mut dedupe = Deduper::new(signal);
        let mut expiry = settings
            .retention
            .filter(|r| !r.keeps_everything())
            .map(|r| Expiry::new(signal, r, settings.now_ms));
        let mut series = SeriesAggregator::new(resolution);
        let mut rows_in = 0u64;
        while let Some(batch) = stream.next().await {
            let mut batch = batch.map_err(|e| Error::Storage(e.to_string()))?;
            rows_in += batch.num_rows() as u64;
            if source == RAW {
                if let Some(expiry) = expiry.as_mut() {
                    let expired = expiry.expired(&batch);
                    if expired.true_count() > 0 {
                        batch = filter_record_batch(&batch, &arrow::compute::not(&expired)?)?;
                    }
                }
                let (keep, _) = dedupe.keep(&batch);
                if keep.false_count() > 0 {
                    batch = filter_record_batch(&batch, &keep)?;
                }
                series.add_raw(&batch, &mut out).await?;
            } else {
                series.add_aggregated(&batch, &mut out).await?;
            }
        }
        series.finish(&mut out).await?;
        let (rows_out, series_count, bloom) = out.close().await?;
        Ok::<_, Error>((rows_in, rows_out, series_count, bloom))
    }
    .await;
    let (rows_in, rows_out, series_count, bloom) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&scratch);
            return Err(e);
        }
    };
    let (bytes, index_bytes) =
        upload_block_files(settings.storage, tenant, signal, &id, &scratch, bloom).await?;
    let min_time = inputs.iter().map(|b| b.min_time).min().unwrap_or(0);
    let max_time = inputs.iter().map(|b| b.max_time).max().unwrap_or(0);
    Ok(DownsampleOutput {
        block: BlockMeta {
            id,
            min_time,
            max_time,
            rows: rows_out,
            bytes,
            index_bytes,
            created_at_ms: chrono::Utc::now().timestamp_millis(),
            resolution_ms: resolution,
            edges_bytes: None,
            row_index_bytes: None,
        },
        stats: DownsampleStats {
            resolution: resolution_name(resolution),
            rows_in,
            rows_out,
            series: series_count,
            bytes_in: inputs.iter().map(|b| b.bytes).sum(),
            bytes_out: bytes,
        },
    })
}

/// The series being aggregated: identity and the open window.
struct Current {
    id: i64,
    metric: Arc<str>,
    labels: Arc<Vec<(String, String)>>,
    window: Option<i64>,
    acc: Option<AggrRow>,
    /// Raw input: counter state across windows (Thanos' aggregator).
    total_samples: u64,
    counter: f64,
    last_raw: f64,
    first: Option<(i64, f64)>,
    /// Aggregated input: stitches the counters of its blocks.
    stitcher: CounterStitcher,
    pending_last: Option<f64>,
    emitted: bool,
}

struct SeriesAggregator {
    resolution: i64,
    current: Option<Current>,
}

impl SeriesAggregator {
    fn new(resolution: i64) -> Self {
        SeriesAggregator {
            resolution,
            current: None,
        }
    }

    /// Starts series `id` unless it is the current one; emits the one before.
    async fn enter(
        &mut self,
        id: i64,
        metric: &str,
        labels: &MapArray,
        row: usize,
        out: &mut Output,
    ) -> Result<()> {
        if self.current.as_ref().is_some_and(|c| c.id == id) {
            return Ok(());
        }
        self.finish(out).await?;
        let pairs = map_row(labels, row)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.current = Some(Current {
            id,
            metric: Arc::from(metric),
            labels: Arc::new(pairs),
            window: None,
            acc: None,
            total_samples: 0,
            counter: 0.0,
            last_raw: 0.0,
            first: None,
            stitcher: CounterStitcher::default(),
            pending_last: None,
            emitted: false,
        });
        out.series += 1;
        Ok(())
    }

    /// Emits the open window of the current series if `window` starts another.
    async fn roll(&mut self, window: i64, out: &mut Output) -> Result<()> {
        let c = self.current.as_mut().expect("a series is current");
        if c.window != Some(window) {
            if let Some(mut row) = c.acc.take() {
                if c.emitted {
                    row.first = None;
                }
                c.emitted = true;
                out.push(&c.metric, &c.labels, c.id, row).await?;
            }
            c.window = Some(window);
        }
        Ok(())
    }

    /// Adds raw samples (block order, deduplicated).
    async fn add_raw(&mut self, batch: &RecordBatch, out: &mut Output) -> Result<()> {
        let ids = column(batch, "series_id")?
            .as_primitive::<Int64Type>()
            .clone();
        let times = column(batch, "timestamp")?
            .as_primitive::<TimestampMillisecondType>()
            .clone();
        let values = column(batch, "value")?
            .as_primitive::<Float64Type>()
            .clone();
        let metrics = column(batch, "metric")?.as_string::<i32>().clone();
        let labels = column(batch, "labels")?.as_map().clone();
        // Native histograms are not downsampled (the raw blocks keep them).
        let histograms = batch.column_by_name("histogram").cloned();
        for row in 0..batch.num_rows() {
            let v = values.value(row);
            if v.to_bits() == STALE_NAN_BITS || histograms.as_ref().is_some_and(|h| h.is_valid(row))
            {
                continue;
            }
            self.enter(ids.value(row), metrics.value(row), &labels, row, out)
                .await?;
            let t = times.value(row);
            self.roll(t.div_euclid(self.resolution), out).await?;
            let c = self.current.as_mut().expect("entered above");
            if c.total_samples == 0 {
                c.counter = v;
                c.first = Some((t, v));
            } else if v < c.last_raw {
                c.counter += v;
            } else {
                c.counter += v - c.last_raw;
            }
            c.last_raw = v;
            c.total_samples += 1;
            let (counter, first) = (c.counter, c.first);
            match c.acc.as_mut() {
                None => {
                    c.acc = Some(AggrRow {
                        t,
                        count: 1.0,
                        sum: v,
                        min: v,
                        max: v,
                        counter,
                        counter_last: v,
                        first,
                    })
                }
                Some(a) => {
                    a.t = t;
                    a.count += 1.0;
                    a.sum += v;
                    a.min = a.min.min(v);
                    a.max = a.max.max(v);
                    a.counter = counter;
                    a.counter_last = v;
                }
            }
        }
        Ok(())
    }

    /// Adds rows of a finer resolution (block order).
    async fn add_aggregated(&mut self, batch: &RecordBatch, out: &mut Output) -> Result<()> {
        let rows = AggrColumns::of(batch)?;
        let metrics = column(batch, "metric")?.as_string::<i32>().clone();
        let labels = column(batch, "labels")?.as_map().clone();
        for row in 0..batch.num_rows() {
            self.enter(rows.ids.value(row), metrics.value(row), &labels, row, out)
                .await?;
            let r = rows.row(row);
            self.roll(r.t.div_euclid(self.resolution), out).await?;
            let c = self.current.as_mut().expect("entered above");
            let first_of_series = c.total_samples == 0;
            if let Some((ft, fv)) = r.first {
                if let Some(last) = c.pending_last.take() {
                    c.stitcher.set_last_raw(last);
                }
                c.stitcher.push(ft, fv);
            }
            c.stitcher.push(r.t, r.counter);
            c.pending_last = Some(r.counter_last);
            c.total_samples += 1;
            let counter = c.stitcher.total();
            match c.acc.as_mut() {
                None => {
                    c.acc = Some(AggrRow {
                        counter,
                        first: r.first.filter(|_| first_of_series),
                        ..r
                    });
                }
                Some(a) => {
                    a.t = r.t;
                    a.count += r.count;
                    a.sum += r.sum;
                    a.min = a.min.min(r.min);
                    a.max = a.max.max(r.max);
                    a.counter = counter;
                    a.counter_last = r.counter_last;
                }
            }
        }
        Ok(())
    }

    /// Emits the current series' open window.
    async fn finish(&mut self, out: &mut Output) -> Result<()> {
        if let Some(mut c) = self.current.take()
            && let Some(mut row) = c.acc.take()
        {
            if c.emitted {
                row.first = None;
            }
            out.push(&c.metric, &c.labels, c.id, row).await?;
        }
        Ok(())
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Storage(format!("downsampling input has no column {name:?}")))
}

/// The aggregate columns of a batch in the downsampled schema.
pub struct AggrColumns {
    pub ids: Int64Array,
    times: TimestampMillisecondArray,
    values: [Float64Array; 6],
    first_time: Int64Array,
    first: Float64Array,
}

impl AggrColumns {
    pub fn of(batch: &RecordBatch) -> Result<AggrColumns> {
        let float = |name: &str| -> Result<Float64Array> {
            Ok(column(batch, name)?.as_primitive::<Float64Type>().clone())
        };
        Ok(AggrColumns {
            ids: column(batch, "series_id")?
                .as_primitive::<Int64Type>()
                .clone(),
            times: column(batch, "timestamp")?
                .as_primitive::<TimestampMillisecondType>()
                .clone(),
            values: [
                float("count")?,
                float("sum")?,
                float("min")?,
                float("max")?,
                float("counter")?,
                float("counter_last")?,
            ],
            first_time: column(batch, "counter_first_time")?
                .as_primitive::<Int64Type>()
                .clone(),
            first: float("counter_first")?,
        })
    }

    pub fn row(&self, i: usize) -> AggrRow {
        use arrow::array::Array;
        let [count, sum, min, max, counter, last] = &self.values;
        AggrRow {
            t: self.times.value(i),
            count: count.value(i),
            sum: sum.value(i),
            min: min.value(i),
            max: max.value(i),
            counter: counter.value(i),
            counter_last: last.value(i),
            first: (!self.first_time.is_null(i) && !self.first.is_null(i))
                .then(|| (self.first_time.value(i), self.first.value(i))),
        }
    }
}

/// One output row: metric, labels, series id and the window's aggregates.
type OutputRow = (Arc<str>, Arc<Vec<(String, String)>>, i64, AggrRow);

/// Output rows → batches → the scratch Parquet file and the bloom.
struct Output {
    writer: AsyncArrowWriter<tokio::fs::File>,
    bloom: BloomBuilder,
    rows: Vec<OutputRow>,
    written: u64,
    series: u64,
}

impl Output {
    async fn create(path: &Path) -> Result<Output> {
        let file = tokio::fs::File::create(path).await?;
        let writer =
            AsyncArrowWriter::try_new(file, layout().schema.clone(), Some(writer_properties()))?;
        Ok(Output {
            writer,
            bloom: BloomBuilder::new(Signal::Samples),
            rows: Vec::with_capacity(OUTPUT_BATCH_ROWS),
            written: 0,
            series: 0,
        })
    }

    async fn push(
        &mut self,
        metric: &Arc<str>,
        labels: &Arc<Vec<(String, String)>>,
        id: i64,
        row: AggrRow,
    ) -> Result<()> {
        self.rows.push((metric.clone(), labels.clone(), id, row));
        if self.rows.len() >= OUTPUT_BATCH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let batch = aggregates_batch(&rows)?;
        self.bloom.add_batch(&batch);
        let labels = pack_map(batch.column(2).as_map())?;
        let mut columns = batch.columns().to_vec();
        columns[2] = labels;
        let stored = RecordBatch::try_new(layout().schema.clone(), columns)?;
        self.writer.write(&stored).await?;
        self.written += rows.len() as u64;
        Ok(())
    }

    /// Rows written, series seen and the bloom.
    async fn close(mut self) -> Result<(u64, u64, Bloom)> {
        self.flush().await?;
        self.writer.close().await?;
        Ok((self.written, self.series, self.bloom.finish()))
    }
}

/// Rows in the downsampled schema.
fn aggregates_batch(rows: &[OutputRow]) -> Result<RecordBatch> {
    let f = |get: fn(&AggrRow) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, _, _, r)| get(r)),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(|(_, _, _, r)| r.t))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(m, _, _, _)| m.as_ref()),
        )),
        Arc::new(build_string_map(rows.iter().map(|(_, l, _, _)| {
            l.iter().map(|(k, v)| (k.as_str(), v.as_str()))
        }))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, _, id, _)| *id),
        )),
        f(|r| r.count),
        f(|r| r.sum),
        f(|r| r.min),
        f(|r| r.max),
        f(|r| r.counter),
        f(|r| r.counter_last),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|(_, _, _, r)| r.first.map(|f| f.0)),
        )),
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|(_, _, _, r)| r.first.map(|f| f.1)),
        )),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stitching_hides_block_boundaries_and_keeps_resets() {
        // Block 1: raw 10, 12, 3 (reset), 5 → adjusted 10, 12, 15, 17; last raw 5.
        // Block 2 starts at raw 8 (no reset since 5), then resets to 1.
        let mut s = CounterStitcher::default();
        let mut out = Vec::new();
        out.push(s.push(1, 10.0));
        out.push(s.push(2, 12.0));
        out.push(s.push(4, 17.0));
        s.set_last_raw(5.0);
        out.push(s.push(5, 8.0));
        out.push(s.push(6, 1.0));
        out.push(s.push(6, 99.0)); // not after the last: skipped
        out.push(s.push(7, f64::NAN));
        assert_eq!(
            out,
            vec![
                Some(10.0),
                Some(12.0),
                Some(17.0),
                Some(20.0),
                Some(21.0),
                None,
                None
            ]
        );
    }

    #[test]
    fn layouts_agree_with_the_schema() {
        assert_eq!(schema().fields().len(), COLUMNS.len());
        for (f, name) in schema().fields().iter().zip(COLUMNS) {
            assert_eq!(f.name(), name);
        }
        assert_eq!(layout().schema.field(2).data_type(), &packed_map_type());
        assert_eq!(resolution_name(RES_5M), "5m");
        assert_eq!(resolution_name(RAW), "raw");
    }
}
