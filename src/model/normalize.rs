//! Normalisation of incoming batches into the canonical signal schemas,
//! applied once at the edge of the write path (before the WAL): checks
//! column types and not-null constraints, sorts map keys, fills the derived
//! columns (`series_id`, `stream_id`, `duration_ns`) and canonicalises span
//! kinds and status codes. Whatever passes here is what the WAL, head and
//! blocks hold.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, MapArray, RecordBatch, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Int64Type, TimestampNanosecondType};

use super::Signal;
use super::histogram::FloatHistogram;
use super::labels::{build_string_map_with_nulls, canonical_pairs, map_row, series_id};
use crate::error::{Error, Result};

/// Checks and completes `batch` for `signal`. Columns are matched by name;
/// the returned batch has exactly `signal.schema()`.
pub fn normalize(signal: Signal, batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = signal.schema();
    let table = signal.table_name();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if field.is_nullable() && batch.column_by_name(field.name()).is_none() {
            columns.push(arrow::array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            ));
            continue;
        }
        let column = batch
            .column_by_name(field.name())
            .ok_or_else(|| Error::InvalidValue {
                table,
                column: field.name().to_string(),
                row: 0,
                reason: "column missing".into(),
            })?;
        if column.data_type() != field.data_type()
            && !same_shape(column.data_type(), field.data_type())
        {
            return Err(Error::InvalidValue {
                table,
                column: field.name().to_string(),
                row: 0,
                reason: format!(
                    "expected type {}, got {}",
                    field.data_type(),
                    column.data_type()
                ),
            });
        }
        let column = if column.data_type() == field.data_type() {
            column.clone()
        } else {
            arrow::compute::cast(column, field.data_type())?
        };
        columns.push(column);
    }
    let rows = batch.num_rows();
    let idx = |name: &str| schema.index_of(name).expect("column of canonical schema");

    // Maps: sorted keys, then not-null checks (derived columns are computed below).
    for (i, field) in schema.fields().iter().enumerate() {
        if matches!(field.data_type(), DataType::Map(..)) {
            let sorted = sort_map_keys(columns[i].as_map());
            columns[i] = Arc::new(sorted);
        }
    }

    match signal {
        Signal::Samples => {
            let metric = columns[idx("metric")].as_string::<i32>().clone();
            let labels = columns[idx("labels")].as_map().clone();
            check_not_null(signal, "metric", &metric)?;
            let mut ids = Vec::with_capacity(rows);
            for row in 0..rows {
                if metric.value(row).is_empty() {
                    return Err(Error::InvalidValue {
                        table,
                        column: "metric".into(),
                        row,
                        reason: "metric name is empty".into(),
                    });
                }
                ids.push(series_id(metric.value(row), &map_row(&labels, row)));
            }
            columns[idx("series_id")] = Arc::new(Int64Array::from(ids));
            let histograms = columns[idx("histogram")].as_binary::<i32>();
            for row in (0..rows).filter(|&r| histograms.is_valid(r)) {
                let checked = FloatHistogram::decode(histograms.value(row))
                    .and_then(|h| h.validate().map(|()| h));
                if let Err(e) = checked {
                    return Err(Error::InvalidValue {
                        table,
                        column: "histogram".into(),
                        row,
                        reason: format!("not an encoded native histogram: {e}"),
                    });
                }
            }
        }
        Signal::Logs => {
            let labels = columns[idx("labels")].as_map().clone();
            let ids: Vec<i64> = (0..rows)
                .map(|row| series_id("", &map_row(&labels, row)))
                .collect();
            columns[idx("stream_id")] = Arc::new(Int64Array::from(ids));
        }
        Signal::Spans => {
            let start = columns[idx("start_time")]
                .as_primitive::<TimestampNanosecondType>()
                .clone();
            let end = columns[idx("end_time")]
                .as_primitive::<TimestampNanosecondType>()
                .clone();
            check_not_null(signal, "start_time", &start)?;
            check_not_null(signal, "end_time", &end)?;
            let mut durations = Vec::with_capacity(rows);
            for row in 0..rows {
                let d = end.value(row) - start.value(row);
                if d < 0 {
                    return Err(Error::InvalidValue {
                        table,
                        column: "end_time".into(),
                        row,
                        reason: "end_time is before start_time".into(),
                    });
                }
                durations.push(d);
            }
            columns[idx("duration_ns")] = Arc::new(Int64Array::from(durations));
            columns[idx("kind")] = Arc::new(canonical_enum(
                signal,
                "kind",
                columns[idx("kind")].as_string::<i32>(),
                &super::SPAN_KINDS,
                &["span_kind_", "spankind_"],
            )?);
            columns[idx("status_code")] = Arc::new(canonical_enum(
                signal,
                "status_code",
                columns[idx("status_code")].as_string::<i32>(),
                &super::SPAN_STATUS_CODES,
                &["status_code_", "statuscode_"],
            )?);
        }
    }

    for (i, field) in schema.fields().iter().enumerate() {
        if !field.is_nullable() {
            check_not_null(signal, field.name(), &columns[i])?;
        }
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A batch written under an older version of `signal`'s schema (the WAL of
/// an earlier release) with the nullable columns added since then filled
/// with nulls. Batches of any other shape are returned as they are.
pub fn upgrade(signal: Signal, batch: RecordBatch) -> Result<RecordBatch> {
    let schema = signal.schema();
    if batch.schema().fields().len() >= schema.fields().len()
        || !schema
            .fields()
            .iter()
            .all(|f| f.is_nullable() || batch.column_by_name(f.name()).is_some())
    {
        return Ok(batch);
    }
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => c.clone(),
            None => arrow::array::new_null_array(f.data_type(), rows),
        })
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn check_not_null(signal: Signal, column: &str, array: &dyn Array) -> Result<()> {
    if array.null_count() == 0 {
        return Ok(());
    }
    let row = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
    Err(Error::NotNull {
        table: signal.table_name(),
        column: column.to_string(),
        row,
    })
}

/// Types that differ only in nullability or field names of nested children.
fn same_shape(a: &DataType, b: &DataType) -> bool {
    arrow::compute::can_cast_types(a, b) && a.equals_datatype(b)
        || matches!((a, b), (DataType::Map(..), DataType::Map(..)))
            && arrow::compute::can_cast_types(a, b)
        || matches!(
            (a, b),
            (DataType::Timestamp(ua, _), DataType::Timestamp(ub, _)) if ua == ub
        )
        || matches!((a, b), (DataType::List(..), DataType::List(..)))
            && arrow::compute::can_cast_types(a, b)
}

/// Sorts each row's entries by key (keeping the last value of a duplicated
/// key), so equal label sets are equal maps. Rows already sorted are copied as is.
fn sort_map_keys(map: &MapArray) -> MapArray {
    let already_sorted = (0..map.len()).all(|row| {
        let pairs = map_row(map, row);
        pairs.windows(2).all(|w| w[0].0 < w[1].0)
    });
    let keys_are_strings =
        map.keys().data_type() == &DataType::Utf8 && map.values().data_type() == &DataType::Utf8;
    if already_sorted || !keys_are_strings {
        return map.clone();
    }
    let rows: Vec<Vec<(&str, &str)>> = (0..map.len())
        .map(|row| canonical_pairs(map_row(map, row)))
        .collect();
    build_string_map_with_nulls(rows, map.nulls().cloned())
}

/// Lower-cases an enum-like string column and accepts the OpenTelemetry
/// protocol spellings (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`).
fn canonical_enum(
    signal: Signal,
    column: &str,
    values: &StringArray,
    allowed: &[&str],
    prefixes: &[&str],
) -> Result<StringArray> {
    let mut out = StringBuilder::with_capacity(values.len(), values.len() * 6);
    for row in 0..values.len() {
        if values.is_null(row) {
            out.append_null();
            continue;
        }
        let raw = values.value(row);
        let mut lower = raw.to_ascii_lowercase();
        for p in prefixes {
            if let Some(rest) = lower.strip_prefix(p) {
                lower = rest.to_string();
            }
        }
        if lower.is_empty() {
            lower = allowed[0].to_string();
        }
        if !allowed.contains(&lower.as_str()) {
            return Err(Error::InvalidValue {
                table: signal.table_name(),
                column: column.to_string(),
                row,
                reason: format!("{raw:?} is not one of {}", allowed.join(", ")),
            });
        }
        out.append_value(&lower);
    }
    Ok(out.finish())
}

/// The minimum and maximum event time of a normalised batch, in the
/// signal's own unit (ms for samples, ns otherwise).
pub fn time_range(signal: Signal, batch: &RecordBatch) -> Option<(i64, i64)> {
    let col = batch.column_by_name(signal.time_column())?;
    let values = arrow::compute::cast(col, &DataType::Int64).ok()?;
    let values = values.as_primitive::<Int64Type>();
    let min = arrow::compute::min(values)?;
    let max = arrow::compute::max(values)?;
    Some((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::build_string_map;
    use arrow::array::{Float64Array, TimestampMillisecondArray};

    fn samples(metric: Vec<Option<&str>>, labels: Vec<Vec<(&str, &str)>>) -> RecordBatch {
        let n = metric.len();
        RecordBatch::try_new(
            Signal::Samples.relaxed_schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![1000; n]).with_timezone("UTC")),
                Arc::new(StringArray::from(metric)),
                Arc::new(build_string_map(labels.iter().map(|r| r.iter().copied()))),
                Arc::new(Float64Array::from(vec![1.0; n])),
                Arc::new(Int64Array::from(vec![0; n])),
                arrow::array::new_null_array(&DataType::Binary, n),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_missing_histogram_column_is_null_and_bad_histogram_bytes_are_refused() {
        let full = samples(vec![Some("up")], vec![vec![("job", "a")]]);
        let without = full.project(&[0, 1, 2, 3, 4]).unwrap();
        let out = normalize(Signal::Samples, &without).unwrap();
        assert_eq!(out.schema(), Signal::Samples.schema());
        assert_eq!(out.column_by_name("histogram").unwrap().null_count(), 1);

        let mut columns = full.columns().to_vec();
        columns[5] = Arc::new(arrow::array::BinaryArray::from(vec![&b"garbage"[..]]));
        let bad = RecordBatch::try_new(full.schema(), columns).unwrap();
        let e = normalize(Signal::Samples, &bad).unwrap_err().to_string();
        assert!(
            e.contains("histogram") && e.contains("not an encoded native histogram"),
            "{e}"
        );
    }

    #[test]
    fn samples_get_series_ids_from_sorted_labels() {
        let b = samples(
            vec![Some("up"), Some("up")],
            vec![vec![("b", "2"), ("a", "1")], vec![("a", "1"), ("b", "2")]],
        );
        let out = normalize(Signal::Samples, &b).unwrap();
        let ids = out.column(4).as_primitive::<Int64Type>();
        assert_eq!(ids.value(0), ids.value(1));
        assert_eq!(ids.value(0), series_id("up", &[("a", "1"), ("b", "2")]));
        let labels = out.column(2).as_map();
        assert_eq!(map_row(labels, 0), vec![("a", "1"), ("b", "2")]);
    }

    #[test]
    fn null_metric_is_a_not_null_violation() {
        let b = samples(vec![Some("up"), None], vec![vec![], vec![]]);
        let err = normalize(Signal::Samples, &b).unwrap_err();
        assert_eq!(err.sqlstate(), "23502");
        assert!(err.to_string().contains("\"metric\""), "{err}");
        assert!(err.to_string().contains("row 1"), "{err}");
    }
}
