//! Merging blocks: each input block is read as a stream of record batches
//! (decoded back to the table schema), the sorted streams are k-way merged
//! in block sort order (DataFusion's streaming merge, its memory reserved in
//! the engine's pool), expired rows and duplicates are dropped, and the
//! result is encoded and written as one new block — to a scratch file first,
//! then uploaded — with its bloom index rebuilt from the same batches.
//! Memory holds about one batch per input, one Parquet row group being
//! encoded and the distinct bloom keys, never whole blocks.
//!
//! Duplicates (Mimir's vertical compaction): a sample of the same series at
//! the same timestamp is kept once — the one from the oldest block (first
//! write wins, as in Prometheus); when the values differ it is counted as
//! a conflict. A log entry with the same stream, timestamp and line, and a
//! span with the same trace id and span id are kept once. Log lines matched
//! by deletion requests past their cancel period are dropped as well.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{SortOptions, filter_record_batch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use bytes::Bytes;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{AsyncArrowWriter, ProjectionMask};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::retention::{Expiry, RetentionRules};
use crate::error::{Error, Result};
use crate::model::Signal;
use crate::query::service_graph::block_edges::BlockEdgesBuilder;
use crate::storage::block::{sort_columns, writer_properties};
use crate::storage::bloom::BloomBuilder;
use crate::storage::codec::{BlockLayout, block_layout, decode_columns, encode_for_block};
use crate::storage::deletes::DeleteFilter;
use crate::storage::manifest::{BlockMeta, Layout};
use crate::storage::row_index::RowsSidecarBuilder;
use crate::storage::{Storage, new_block_id};

/// Rows per batch read from each input and produced by the merge.
const MERGE_BATCH_ROWS: usize = 8192;

/// Bytes per part of the output upload.
const UPLOAD_CHUNK_BYTES: usize = 8 << 20;

/// What a merge needs besides its inputs.
pub struct MergeSettings<'a> {
    pub storage: &'a Storage,
    /// The engine's memory pool: the merge reserves its batches there.
    pub pool: Arc<dyn MemoryPool>,
    /// Local directory for the output while it is written.
    pub scratch_dir: PathBuf,
    /// Expired rows are dropped when set.
    pub retention: Option<&'a RetentionRules>,
    /// Log lines of deletion requests are dropped when set.
    pub deletions: Option<&'a DeleteFilter>,
    pub now_ms: i64,
}

/// Row and byte counts of one merge.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct MergeStats {
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_deduplicated: u64,
    /// Duplicate samples whose values differed (one was kept).
    pub samples_conflicting: u64,
    pub rows_expired: u64,
    /// Log lines dropped by deletion requests.
    pub rows_deleted: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The merged block (none when no row survived) and its counts.
#[derive(Debug)]
pub struct MergeOutput {
    pub block: Option<BlockMeta>,
    pub stats: MergeStats,
}

/// Merges `inputs` (blocks of `tenant`'s `signal`) into one new block,
/// written but not published. An unreadable input fails the merge with an
/// error naming it; nothing is left behind.
pub async fn merge_blocks(
    settings: &MergeSettings<'_>,
    tenant: &str,
    signal: Signal,
    inputs: &[BlockMeta],
) -> Result<MergeOutput> {
    let mut merged = merged_stream(
        settings,
        tenant,
        signal,
        inputs,
        block_layout(signal),
        signal.schema(),
    )
    .await?;
    let id = new_block_id();
    std::fs::create_dir_all(&settings.scratch_dir)?;
    let scratch = settings.scratch_dir.join(format!("{id}.parquet"));
    let written = write_merged(settings, signal, &mut merged, &scratch).await;
    let Written {
        stats,
        bloom,
        range,
        edges,
        row_index,
    } = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&scratch);
            // Errors from an input stream already name the block.
            return Err(e);
        }
    };
    let mut stats = stats;
    stats.bytes_in = inputs.iter().map(|b| b.bytes).sum();
    let Some((min_time, max_time)) = range else {
        let _ = std::fs::remove_file(&scratch);
        return Ok(MergeOutput { block: None, stats });
    };
    let (bytes, index_bytes) =
        upload_block_files(settings.storage, tenant, signal, &id, &scratch, bloom).await?;
    stats.bytes_out = bytes;
    let edges_bytes = settings.storage.put_edges(tenant, &id, edges).await?;
    let row_index_bytes = settings
        .storage
        .put_row_index(tenant, signal, &id, row_index)
        .await?;
    Ok(MergeOutput {
        block: Some(BlockMeta {
            id,
            min_time,
            max_time,
            rows: stats.rows_out,
            bytes,
            index_bytes,
            created_at_ms: chrono::Utc::now().timestamp_millis(),
            resolution_ms: 0,
            edges_bytes,
            row_index_bytes,
        }),
        stats,
    })
}

/// The rows of `inputs` (blocks laid out as `layout`, decoded to `schema`)
/// as one stream in block sort order; of rows that tie, the one from the
/// earlier input comes first. An unreadable input fails with its name.
pub(super) async fn merged_stream(
    settings: &MergeSettings<'_>,
    tenant: &str,
    signal: Signal,
    inputs: &[BlockMeta],
    layout: &'static BlockLayout,
    schema: SchemaRef,
) -> Result<SendableRecordBatchStream> {
    let store = settings.storage.object_store();
    let mut streams = Vec::with_capacity(inputs.len());
    for meta in inputs {
        let stream = open_block(store.clone(), tenant, signal, meta, layout, schema.clone())
            .await
            .map_err(|e| unreadable(tenant, signal, &meta.id, e))?;
        streams.push(stream);
    }
    let ordering = LexOrdering::new(sort_columns(signal).iter().map(|name| {
        let column = Column::new_with_schema(name, &schema).expect("sort column of schema");
        PhysicalSortExpr::new(Arc::new(column), SortOptions::default())
    }))
    .expect("non-empty block ordering");
    let metrics = ExecutionPlanMetricsSet::new();
    let reservation =
        MemoryConsumer::new(format!("compactor merge {tenant}/{signal}")).register(&settings.pool);
    Ok(StreamingMergeBuilder::new()
        .with_streams(streams)
        .with_schema(schema)
        .with_expressions(&ordering)
        .with_metrics(BaselineMetrics::new(&metrics, 0))
        .with_batch_size(MERGE_BATCH_ROWS)
        .with_reservation(reservation)
        // Ties go to the lower stream index: the older block.
        .with_round_robin_tie_breaker(false)
        .build()?)
}

fn unreadable(tenant: &str, signal: Signal, id: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!(
        "block {id} of tenant {tenant:?} {signal} is unreadable: {e}"
    ))
}

/// What [`write_merged`] wrote besides the block.
struct Written {
    stats: MergeStats,
    bloom: crate::storage::bloom::Bloom,
    /// The time range of the rows written (None: no rows).
    range: Option<(i64, i64)>,
    /// Spans: the service-graph edges file.
    edges: Option<bytes::Bytes>,
    /// Logs and samples: the row-index sidecar.
    row_index: Option<bytes::Bytes>,
}

/// Streams the merge through expiry and dedupe into a Parquet file.
async fn write_merged(
    settings: &MergeSettings<'_>,
    signal: Signal,
    merged: &mut SendableRecordBatchStream,
    scratch: &Path,
) -> Result<Written> {
    let mut stats = MergeStats::default();
    let mut bloom = BloomBuilder::new(signal);
    let mut edges = (signal == Signal::Spans).then(BlockEdgesBuilder::default);
    let mut row_index = RowsSidecarBuilder::new(signal);
    let mut dedupe = Deduper::new(signal);
    let mut expiry = settings
        .retention
        .filter(|r| !r.keeps_everything())
        .map(|r| Expiry::new(signal, r, settings.now_ms));
    let mut writer: Option<AsyncArrowWriter<tokio::fs::File>> = None;
    let mut range: Option<(i64, i64)> = None;
    while let Some(batch) = merged.next().await {
        let mut batch = batch.map_err(|e| Error::Storage(e.to_string()))?;
        stats.rows_in += batch.num_rows() as u64;
        if let Some(expiry) = expiry.as_mut() {
            let expired = expiry.expired(&batch);
            let n = expired.true_count() as u64;
            if n > 0 {
                stats.rows_expired += n;
                batch = filter_record_batch(&batch, &arrow::compute::not(&expired)?)?;
            }
        }
        if signal == Signal::Logs
            && let Some(deletions) = settings.deletions
            && let Some(deleted) = deletions.deleted(&batch)?
        {
            stats.rows_deleted += deleted.true_count() as u64;
            batch = filter_record_batch(&batch, &arrow::compute::not(&deleted)?)?;
        }
        let (keep, conflicts) = dedupe.keep(&batch);
        let dropped = (batch.num_rows() - keep.true_count()) as u64;
        if dropped > 0 {
            stats.rows_deduplicated += dropped;
            stats.samples_conflicting += conflicts;
            batch = filter_record_batch(&batch, &keep)?;
        }
        if batch.num_rows() == 0 {
            continue;
        }
        stats.rows_out += batch.num_rows() as u64;
        if let Some((lo, hi)) = crate::model::normalize::time_range(signal, &batch) {
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        bloom.add_batch(&batch);
        if let Some(row_index) = row_index.as_mut() {
            row_index.add_batch(&batch)?;
        }
        let stored = encode_for_block(signal, &batch)?;
        if let Some(row_index) = row_index.as_mut() {
            row_index.add_stored(&stored);
        }
        if let Some(edges) = edges.as_mut() {
            edges.push(&stored)?;
        }
        if writer.is_none() {
            let file = tokio::fs::File::create(scratch).await?;
            writer = Some(AsyncArrowWriter::try_new(
                file,
                stored.schema(),
                Some(writer_properties(signal)),
            )?);
        }
        writer
            .as_mut()
            .expect("writer created above")
            .write(&stored)
            .await?;
    }
    if let Some(writer) = writer {
        writer.close().await?;
    }
    let edges = edges.map(BlockEdgesBuilder::finish).transpose()?;
    Ok(Written {
        stats,
        bloom: bloom.finish(),
        range,
        edges,
        row_index: row_index.map(RowsSidecarBuilder::finish),
    })
}

/// Publishes a block written to `scratch` (removed afterwards) as block
/// `id` of `tenant`'s `signal` with its bloom index, not yet listed in any
/// manifest; returns the block's and the index's sizes.
pub(super) async fn upload_block_files(
    storage: &Storage,
    tenant: &str,
    signal: Signal,
    id: &str,
    scratch: &Path,
    bloom: crate::storage::bloom::Bloom,
) -> Result<(u64, u64)> {
    let store = storage.object_store();
    let layout = Layout::new(tenant, signal);
    let uploaded = upload(store.as_ref(), scratch, &StorePath::from(layout.block(id))).await;
    let _ = std::fs::remove_file(scratch);
    let bytes = uploaded?;
    let index = bloom.encode();
    let index_bytes = index.len() as u64;
    store
        .put(&StorePath::from(layout.index(id)), PutPayload::from(index))
        .await?;
    storage.cache_index(id, Arc::new(bloom));
    Ok((bytes, index_bytes))
}

/// Uploads a local file in parts; returns its size.
pub(super) async fn upload(store: &dyn ObjectStore, file: &Path, to: &StorePath) -> Result<u64> {
    let mut source = tokio::fs::File::open(file).await?;
    let mut upload =
        WriteMultipart::new_with_chunk_size(store.put_multipart(to).await?, UPLOAD_CHUNK_BYTES);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let result: Result<()> = async {
        loop {
            let n = source.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            upload.wait_for_capacity(4).await?;
            upload.write(&buf[..n]);
            total += n as u64;
        }
    }
    .await;
    match result {
        Ok(()) => {
            upload.finish().await?;
            Ok(total)
        }
        Err(e) => {
            let _ = upload.abort().await;
            Err(e)
        }
    }
}

/// A block (laid out as `layout`) as a stream of batches in `schema`.
async fn open_block(
    store: Arc<dyn ObjectStore>,
    tenant: &str,
    signal: Signal,
    meta: &BlockMeta,
    layout: &'static BlockLayout,
    schema: SchemaRef,
) -> Result<SendableRecordBatchStream> {
    let path = StorePath::from(Layout::new(tenant, signal).block(&meta.id));
    let reader = BlockReader {
        store,
        path,
        size: meta.bytes,
    };
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let file_schema = builder.schema().clone();
    // Storage columns by name: blocks may carry extra (legacy) columns, and
    // blocks written before a nullable column existed lack it (read as nulls).
    let mut file_indices = Vec::with_capacity(layout.schema.fields().len());
    for (i, field) in layout.schema.fields().iter().enumerate() {
        if layout.is_derived_from_lines(i) {
            // Derived again from the lines when the merged block is written.
            file_indices.push(None);
            continue;
        }
        match file_schema.index_of(field.name()) {
            Ok(i) => file_indices.push(Some(i)),
            Err(_) if field.is_nullable() => file_indices.push(None),
            Err(_) => {
                return Err(Error::Storage(format!(
                    "it has no column {:?}",
                    field.name()
                )));
            }
        }
    }
    let present: Vec<usize> = file_indices.iter().flatten().copied().collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), present.clone());
    // The reader returns projected columns in file order.
    let mut in_file_order = present;
    in_file_order.sort_unstable();
    let position: Vec<Option<usize>> = file_indices
        .iter()
        .map(|i| i.map(|i| in_file_order.binary_search(&i).expect("projected column")))
        .collect();
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    let (storage_projection, decoders) = layout.project(&all);
    let stream = builder
        .with_projection(mask)
        .with_batch_size(MERGE_BATCH_ROWS)
        .build()?;
    let id = meta.id.clone();
    let out_schema = schema.clone();
    let decoded = stream.map(move |batch| {
        let failed = |e: &dyn std::fmt::Display| {
            DataFusionError::External(format!("block {id} is unreadable: {e}").into())
        };
        let batch = batch.map_err(|e| failed(&e))?;
        let columns: Vec<ArrayRef> = storage_projection
            .iter()
            .map(|&s| match position[s] {
                Some(p) => batch.column(p).clone(),
                None => arrow::array::new_null_array(
                    layout.schema.field(s).data_type(),
                    batch.num_rows(),
                ),
            })
            .collect();
        let columns = decode_columns(&columns, &decoders).map_err(|e| failed(&e))?;
        RecordBatch::try_new(out_schema.clone(), columns).map_err(|e| failed(&e))
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, decoded)))
}

/// Reads a block's byte ranges from the object store.
struct BlockReader {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    size: u64,
}

impl AsyncFileReader for BlockReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Drops repeated rows from batches in block order, across batch boundaries.
#[derive(Debug)]
pub struct Deduper {
    signal: Signal,
    /// Samples: series, timestamp and value bits of the last row kept.
    last_sample: Option<(i64, i64, u64)>,
    /// Logs: stream and timestamp of the current run, and its lines.
    last_entry: Option<(i64, i64)>,
    lines: HashSet<String>,
    /// Spans: the current trace and its span ids.
    last_trace: Option<String>,
    span_ids: HashSet<String>,
}

impl Deduper {
    pub fn new(signal: Signal) -> Self {
        Deduper {
            signal,
            last_sample: None,
            last_entry: None,
            lines: HashSet::new(),
            last_trace: None,
            span_ids: HashSet::new(),
        }
    }

    /// Which rows to keep, and how many dropped samples had another value.
    pub fn keep(&mut self, batch: &RecordBatch) -> (BooleanArray, u64) {
        let n = batch.num_rows();
        let mut keep = Vec::with_capacity(n);
        let mut conflicts = 0;
        let int64 = |name: &str| -> ArrayRef {
            arrow::compute::cast(
                batch
                    .column_by_name(name)
                    .expect("column of canonical schema"),
                &DataType::Int64,
            )
            .expect("integer column")
        };
        match self.signal {
            Signal::Samples => {
                let (series, times) = (int64("series_id"), int64("timestamp"));
                let (series, times) = (
                    series.as_primitive::<Int64Type>(),
                    times.as_primitive::<Int64Type>(),
                );
                let values = batch
                    .column_by_name("value")
                    .expect("value column")
                    .as_primitive::<Float64Type>();
                for row in 0..n {
                    let (s, t, v) = (
                        series.value(row),
                        times.value(row),
                        values.value(row).to_bits(),
                    );
                    match self.last_sample {
                        Some((ls, lt, lv)) if ls == s && lt == t => {
                            if lv != v {
                                conflicts += 1;
                            }
                            keep.push(false);
                        }
                        _ => {
                            self.last_sample = Some((s, t, v));
                            keep.push(true);
                        }
                    }
                }
            }
            Signal::Logs => {
                let (streams, times) = (int64("stream_id"), int64("timestamp"));
                let (streams, times) = (
                    streams.as_primitive::<Int64Type>(),
                    times.as_primitive::<Int64Type>(),
                );
                let lines = batch
                    .column_by_name("line")
                    .expect("line column")
                    .as_string::<i32>();
                for row in 0..n {
                    let key = (streams.value(row), times.value(row));
                    let line = lines.value(row);
                    if self.last_entry != Some(key) {
                        self.last_entry = Some(key);
                        self.lines.clear();
                    }
                    keep.push(self.lines.insert(line.to_string()));
                }
            }
            Signal::Spans => {
                let traces = batch
                    .column_by_name("trace_id")
                    .expect("trace_id column")
                    .as_string::<i32>();
                let spans = batch
                    .column_by_name("span_id")
                    .expect("span_id column")
                    .as_string::<i32>();
                for row in 0..n {
                    let trace = traces.value(row);
                    if self.last_trace.as_deref() != Some(trace) {
                        self.last_trace = Some(trace.to_string());
                        self.span_ids.clear();
                    }
                    if spans.is_null(row) {
                        keep.push(true);
                        continue;
                    }
                    keep.push(self.span_ids.insert(spans.value(row).to_string()));
                }
            }
        }
        (BooleanArray::from(keep), conflicts)
    }
}
