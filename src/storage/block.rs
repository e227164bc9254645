//! Turning a frozen head into a block: sort the rows by metric, series and
//! time (or stream/trace and time), encode them in the storage schema and write Parquet with
//! zstd, page-level statistics (so the page index is written), dictionary
//! encoding where values repeat, delta encoding for timestamps and bloom
//! filters on trace ids.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::compute::{
    SortColumn, SortOptions, concat, interleave_record_batch, lexsort_to_indices,
};
use arrow::datatypes::{
    DataType, Int64Type, TimeUnit, TimestampMillisecondType, TimestampNanosecondType,
};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use super::codec::encode_for_block;
use crate::error::Result;
use crate::model::Signal;
use xxhash_rust::xxh3::Xxh3Builder;

/// Rows per Parquet row group: small enough that statistics prune well.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows per row group of samples blocks (pages still prune within them).
const SAMPLES_ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Rows per data page of a log block (a divisor of the row index's
/// segment): a needle decompresses, of each column it returns, the pages
/// that hold its lines — 512 lines of ~230 bytes rather than 2,048.
const LOG_PAGE_ROWS: usize = super::row_index::SEGMENT_ROWS / 4;

/// The columns a block is sorted by, most significant first.
pub fn sort_columns(signal: Signal) -> &'static [&'static str] {
    match signal {
        // Metric first: a metric's rows are contiguous, so the page index
        // on `metric` lets a scan for one metric skip every other page.
        Signal::Samples => &["metric", "series_id", "timestamp"],
        Signal::Logs => &["stream_id", "timestamp"],
        Signal::Spans => &["trace_id", "start_time"],
    }
}

/// Sorts a batch into block order (see [`sort_batches_for_block`]).
pub fn sort_for_block(signal: Signal, batch: &RecordBatch) -> Result<RecordBatch> {
    sort_batches_for_block(signal, std::slice::from_ref(batch))
}

/// Sorts the rows of several batches (a frozen head) into one batch in
/// block order, gathering each row once from where it is (no concatenated
/// copy first). Samples and logs sort on one integer tuple per row (a
/// metric becomes the rank of its name among the distinct names: a block
/// has a few hundred, not millions); spans sort with Arrow's multi-column
/// sort on trace id and start time. Equal keys keep their arrival order.
pub fn sort_batches_for_block(signal: Signal, batches: &[RecordBatch]) -> Result<RecordBatch> {
    if batches.is_empty() {
        return Ok(RecordBatch::new_empty(signal.schema()));
    }
    let order: Vec<(usize, usize)> = match integer_sort_keys(signal, batches) {
        Some(keys) => sorted_row_order(keys),
        None => {
            // The sort columns alone are concatenated; each sorted row is
            // then found again in its batch by the batches' first rows.
            let starts: Vec<usize> = batches
                .iter()
                .scan(0, |rows, b| {
                    let start = *rows;
                    *rows += b.num_rows();
                    Some(start)
                })
                .collect();
            let columns = sort_columns(signal)
                .iter()
                .map(|name| {
                    let parts: Vec<&dyn Array> = batches
                        .iter()
                        .map(|b| {
                            b.column_by_name(name)
                                .expect("sort column of canonical schema")
                                .as_ref()
                        })
                        .collect();
                    Ok(SortColumn {
                        values: concat(&parts)?,
                        options: Some(SortOptions::default()),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            lexsort_to_indices(&columns, None)?
                .values()
                .iter()
                .map(|&row| {
                    let row = row as usize;
                    let batch = starts.partition_point(|&start| start <= row) - 1;
                    (batch, row - starts[batch])
                })
                .collect()
        }
    };
    let parts: Vec<&RecordBatch> = batches.iter().collect();
    Ok(interleave_record_batch(&parts, &order)?)
}

/// The sort keys of samples (metric rank, series id, time) and logs
/// (stream id, time) as integers, one tuple per row with the row's batch
/// and its row in it; `None` for spans, whose trace ids are sorted as text.
fn integer_sort_keys(signal: Signal, batches: &[RecordBatch]) -> Option<Vec<SortKey>> {
    let column = |batch: &RecordBatch, name: &str| {
        batch
            .column_by_name(name)
            .expect("sort column of canonical schema")
            .clone()
    };
    let ranks = match signal {
        Signal::Samples => {
            let metrics: Vec<_> = batches.iter().map(|b| column(b, "metric")).collect();
            let metrics: Vec<&StringArray> = metrics.iter().map(|m| m.as_string()).collect();
            Some(text_ranks(&metrics))
        }
        Signal::Logs => None,
        Signal::Spans => return None,
    };
    let id_column = match signal {
        Signal::Samples => "series_id",
        _ => "stream_id",
    };
    let mut keys = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for (index, batch) in batches.iter().enumerate() {
        let id = column(batch, id_column);
        let time = column(batch, "timestamp");
        let ids = id.as_primitive_opt::<Int64Type>()?.values();
        let times: &[i64] = match time.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                time.as_primitive::<TimestampMillisecondType>().values()
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                time.as_primitive::<TimestampNanosecondType>().values()
            }
            _ => return None,
        };
        for row in 0..batch.num_rows() {
            let rank = ranks.as_ref().map_or(0, |r| r[keys.len()]);
            keys.push(((rank, ids[row], times[row]), index as u32, row as u32));
        }
    }
    Some(keys)
}

/// A row's integer sort key, then its batch and row (which also keep equal
/// keys in arrival order).
type SortKey = ((u32, i64, i64), u32, u32);

/// (batch, row) pairs in key order.
fn sorted_row_order(mut keys: Vec<SortKey>) -> Vec<(usize, usize)> {
    keys.sort_unstable();
    keys.into_iter()
        .map(|(_, batch, row)| (batch as usize, row as usize))
        .collect()
}

/// Each row's rank among the distinct values of `texts` (which have no
/// nulls), the rows of all arrays in order. Rows of one metric usually
/// arrive together, so the previous row's rank is tried before the map.
fn text_ranks(texts: &[&StringArray]) -> Vec<u32> {
    let mut seen: HashMap<&str, u32, Xxh3Builder> = HashMap::with_hasher(Xxh3Builder::new());
    let mut first_seen = Vec::with_capacity(texts.iter().map(|t| t.len()).sum());
    let mut last: Option<(&str, u32)> = None;
    for v in texts.iter().flat_map(|t| t.iter()) {
        let v = v.unwrap_or_default();
        let index = match last {
            Some((l, i)) if l == v => i,
            _ => {
                let next = seen.len() as u32;
                let i = *seen.entry(v).or_insert(next);
                last = Some((v, i));
                i
            }
        };
        first_seen.push(index);
    }
    let mut distinct: Vec<(&str, u32)> = seen.into_iter().collect();
    distinct.sort_unstable();
    let mut rank_of = vec![0u32; distinct.len()];
    for (rank, (_, index)) in distinct.iter().enumerate() {
        rank_of[*index as usize] = rank as u32;
    }
    first_seen
        .into_iter()
        .map(|i| rank_of[i as usize])
        .collect()
}

/// How blocks of a signal are encoded (also used by the compactor's writer).
pub fn writer_properties(signal: Signal) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(true);
    let delta = |b: parquet::file::properties::WriterPropertiesBuilder, col: &str| {
        b.set_column_dictionary_enabled(ColumnPath::from(col), false)
            .set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED)
    };
    match signal {
        Signal::Samples => {
            // Samples are written once and read many times: spend more CPU at
            // flush for ~8 % smaller blocks, and keep each label set's
            // dictionary in one row group per million rows.
            builder = builder
                .set_compression(Compression::ZSTD(
                    ZstdLevel::try_new(9).expect("valid zstd level"),
                ))
                .set_max_row_group_row_count(Some(SAMPLES_ROW_GROUP_ROWS));
            builder = delta(builder, "timestamp");
            builder = delta(builder, "value_mantissa");
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from("value_float"), false)
                .set_column_encoding(ColumnPath::from("value_float"), Encoding::BYTE_STREAM_SPLIT);
        }
        Signal::Logs => {
            builder = delta(builder, "timestamp");
            // Lines are stored PLAIN: DELTA_BYTE_ARRAY (the default without
            // a dictionary) saves nothing under zstd but rebuilds every line
            // from its prefix when read. Pages hold at most a row segment
            // of the row index, so a trace-id needle decompresses only the
            // pages of the segments whose bloom may hold it.
            builder = builder
                .set_data_page_row_count_limit(LOG_PAGE_ROWS)
                .set_write_batch_size(LOG_PAGE_ROWS)
                .set_column_bloom_filter_enabled(ColumnPath::from("trace_id"), true)
                // Trace ids are nearly all distinct within a row group: a
                // dictionary would overflow its page (~32 k ids) and a
                // needle would decode that whole page to read one row.
                .set_column_dictionary_enabled(ColumnPath::from("trace_id"), false)
                .set_column_encoding(ColumnPath::from("trace_id"), Encoding::PLAIN)
                .set_column_dictionary_enabled(ColumnPath::from("line"), false)
                .set_column_encoding(ColumnPath::from("line"), Encoding::PLAIN)
                // Structured metadata carries per-line values (trace and
                // span ids): a dictionary overflows its 1 MB page within a
                // few thousand lines, and every read of a row group — one
                // needle's line included — then decoded that page, and
                // rebuilt the rest of the values from DELTA_BYTE_ARRAY
                // prefixes. PLAIN under zstd costs about the same bytes.
                .set_column_dictionary_enabled(ColumnPath::from("structured_metadata"), false)
                .set_column_encoding(ColumnPath::from("structured_metadata"), Encoding::PLAIN);
        }
        Signal::Spans => {
            // `end_time` is not stored (start_time + duration_ns, see codec).
            builder = delta(builder, "start_time");
            builder = delta(builder, "duration_ns");
            // Random span ids barely compress (16 hex digits → ~8.5 bytes
            // under zstd, ~16 under LZ4) but every join reads them: LZ4
            // decodes them about a third faster than zstd, for ~15 bytes a span.
            builder = builder
                .set_column_bloom_filter_enabled(ColumnPath::from("trace_id"), true)
                .set_column_dictionary_enabled(ColumnPath::from("trace_id"), false)
                .set_column_dictionary_enabled(ColumnPath::from("span_id"), false)
                .set_column_dictionary_enabled(ColumnPath::from("parent_span_id"), false)
                .set_column_compression(ColumnPath::from("span_id"), Compression::LZ4_RAW)
                .set_column_compression(ColumnPath::from("parent_span_id"), Compression::LZ4_RAW);
        }
    }
    builder.build()
}

/// Sorts and encodes a block; returns the Parquet bytes.
pub fn write_block(signal: Signal, batch: &RecordBatch) -> Result<Bytes> {
    write_sorted_block(signal, &sort_for_block(signal, batch)?)
}

/// How a flush encodes a block: as [`writer_properties`], except that logs
/// and spans are compressed with zstd level 1 rather than 3. A flush
/// competes with ingest for the CPU (at level 3, zstd took about a sixth of
/// it under a sustained Loki push), and the compactor writes level 3 when
/// it merges a window's blocks.
pub fn flush_writer_properties(signal: Signal) -> WriterProperties {
    let properties = writer_properties(signal);
    match signal {
        Signal::Samples => properties,
        Signal::Logs | Signal::Spans => properties
            .into_builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).expect("valid zstd level"),
            ))
            .build(),
    }
}

/// Encodes rows already in block order (see [`sort_batches_for_block`]) as
/// a flushed block.
pub fn write_sorted_block(signal: Signal, sorted: &RecordBatch) -> Result<Bytes> {
    write_stored_block(signal, &encode_for_block(signal, sorted)?)
}

/// Encodes a block already in the storage schema (see [`encode_for_block`]).
pub fn write_stored_block(signal: Signal, stored: &RecordBatch) -> Result<Bytes> {
    let mut buf = Vec::with_capacity(stored.get_array_memory_size() / 4 + 1024);
    let mut writer = ArrowWriter::try_new(
        &mut buf,
        stored.schema(),
        Some(flush_writer_properties(signal)),
    )?;
    writer.write(stored)?;
    writer.close()?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::build_string_map;
    use arrow::array::{AsArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::Int64Type;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    #[test]
    fn samples_block_is_sorted_and_readable() {
        let batch = RecordBatch::try_new(
            Signal::Samples.schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![3, 1, 2]).with_timezone("UTC")),
                Arc::new(StringArray::from(vec!["b", "a", "a"])),
                Arc::new(build_string_map(vec![
                    vec![("x", "2")],
                    vec![("x", "1")],
                    vec![("x", "1")],
                ])),
                Arc::new(Float64Array::from(vec![3.0, 1.0, 2.0])),
                Arc::new(Int64Array::from(vec![20, 10, 10])),
                arrow::array::new_null_array(&arrow::datatypes::DataType::Binary, 3),
            ],
        )
        .unwrap();
        let bytes = write_block(Signal::Samples, &batch).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let ts = batches[0]
            .column_by_name("series_id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(ts, vec![10, 10, 20]);
        assert_eq!(
            batches[0].column_by_name("labels").unwrap().data_type(),
            &super::super::codec::packed_map_type()
        );
    }

    #[test]
    fn span_blocks_derive_end_time_and_read_back_exactly() {
        use crate::model::builders::{SpanRow, SpansBuilder};
        use crate::storage::codec::{block_layout, decode_columns};
        let mut b = SpansBuilder::new();
        for (i, (start, end)) in [(5_000, 9_000), (1_000, 1_000), (3_000, 70_000)]
            .into_iter()
            .enumerate()
        {
            b.push(SpanRow {
                trace_id: format!("{:032x}", 3 - i),
                span_id: format!("{:016x}", i + 1),
                name: "GET /".into(),
                kind: "server",
                service: "api".into(),
                start_ns: start,
                end_ns: end,
                status_code: "unset",
                ..Default::default()
            });
        }
        let batch = crate::model::normalize::normalize(Signal::Spans, &b.finish()).unwrap();
        let bytes = write_block(Signal::Spans, &batch).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert!(
            reader.schema().column_with_name("end_time").is_none(),
            "end_time is derived, not stored"
        );
        let stored: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        let layout = block_layout(Signal::Spans);
        let all: Vec<usize> = (0..Signal::Spans.schema().fields().len()).collect();
        let (projection, decoders) = layout.project(&all);
        let columns: Vec<_> = projection
            .iter()
            .map(|&i| stored[0].column(i).clone())
            .collect();
        let decoded = RecordBatch::try_new(
            Signal::Spans.schema(),
            decode_columns(&columns, &decoders).unwrap(),
        )
        .unwrap();
        let sorted = sort_for_block(Signal::Spans, &batch).unwrap();
        for name in ["trace_id", "start_time", "end_time", "duration_ns"] {
            assert_eq!(
                decoded.column_by_name(name).unwrap(),
                sorted.column_by_name(name).unwrap(),
                "{name}"
            );
        }
        // Only end_time is asked for: start and duration are read for it.
        let end = Signal::Spans.schema().index_of("end_time").unwrap();
        let (projection, decoders) = layout.project(&[end]);
        assert_eq!(projection.len(), 2);
        let columns: Vec<_> = projection
            .iter()
            .map(|&i| stored[0].column(i).clone())
            .collect();
        assert_eq!(
            &decode_columns(&columns, &decoders).unwrap()[0],
            sorted.column(end)
        );
    }

    /// A frozen head's batches sort into the same rows as their concatenation.
    #[test]
    fn several_batches_sort_like_their_concatenation() {
        use crate::model::builders::{LogLine, LogsBuilder, SamplesBuilder, SpanRow, SpansBuilder};
        let samples: Vec<RecordBatch> = (0..3)
            .map(|part| {
                let mut b = SamplesBuilder::new();
                for (metric, job) in [("up", "b"), ("a_total", "a"), ("up", "a")] {
                    b.push_series(metric, &[("job", job)], &[(10 - part, part as f64)]);
                }
                b.finish()
            })
            .collect();
        let logs: Vec<RecordBatch> = (0..3)
            .map(|part| {
                let mut b = LogsBuilder::new();
                for app in ["web", "api", "web"] {
                    let labels = [("app", app)];
                    b.push(
                        &labels,
                        LogsBuilder::stream_id(&labels),
                        &LogLine {
                            timestamp_ns: 100 - part,
                            line: app,
                            ..Default::default()
                        },
                    );
                }
                b.finish()
            })
            .collect();
        let spans: Vec<RecordBatch> = (0..3)
            .map(|part| {
                let mut b = SpansBuilder::new();
                for trace in [2, 1, 2] {
                    b.push(SpanRow {
                        trace_id: format!("{trace:032x}"),
                        span_id: format!("{part:016x}"),
                        name: "GET /".into(),
                        kind: "server",
                        service: "api".into(),
                        start_ns: 50 - part,
                        end_ns: 60,
                        status_code: "unset",
                        ..Default::default()
                    });
                }
                crate::model::normalize::normalize(Signal::Spans, &b.finish()).unwrap()
            })
            .collect();
        for (signal, batches) in [
            (Signal::Samples, samples),
            (Signal::Logs, logs),
            (Signal::Spans, spans),
        ] {
            let whole = arrow::compute::concat_batches(&signal.schema(), &batches).unwrap();
            let expected = sort_for_block(signal, &whole).unwrap();
            let sorted = sort_batches_for_block(signal, &batches).unwrap();
            assert_eq!(sorted, expected, "{signal}");
            let column = sort_columns(signal)[0];
            assert_ne!(
                sorted.column_by_name(column),
                whole.column_by_name(column),
                "{signal}: the input was not already sorted"
            );
        }
        assert_eq!(
            sort_batches_for_block(Signal::Logs, &[])
                .unwrap()
                .num_rows(),
            0
        );
    }
}
