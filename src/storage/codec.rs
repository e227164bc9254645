//! The block storage schema: how a signal's Arrow batch is laid out in
//! Parquet and back.
//!
//! Every top-level `Map<Utf8, Utf8>` column (labels, attributes, metadata) is
//! stored as a dictionary-encoded `Binary` column of *packed label sets*
//! (`[varint key length][key][varint value length][value]...`). Blocks are
//! sorted by series, so one label set repeats for thousands of rows: as a
//! dictionary it costs a few bits per run instead of a map's per-entry
//! repetition levels. Reading decodes each distinct dictionary value once
//! and expands it with `take`.
//!
//! A span's `end_time` is not stored: it is `start_time + duration_ns`
//! (normalisation derives the duration from the two), rebuilt on read. Span
//! blocks written before that carry an `end_time` column too; readers project
//! the storage schema, so that column is never read and both kinds of blocks
//! answer alike.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BinaryArray, BinaryBuilder, DictionaryArray, MapArray,
    RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};

use super::line_template;
use crate::error::{Error, Result};
use crate::model::Signal;
use crate::model::labels::{map_from_parts, map_row};

/// The type a map column has inside a block.
pub fn packed_map_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary))
}

/// How one table column is kept in a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stored {
    /// As is, in storage column `.0`.
    Plain(usize),
    /// As packed label sets in storage column `.0`.
    PackedMap(usize),
    /// A float as a decimal `mantissa × 10^-exponent` (Int64 + Int8 storage
    /// columns) where that is exact, else as the raw float (third column).
    Decimal {
        mantissa: usize,
        exponent: usize,
        float: usize,
    },
    /// A timestamp rebuilt as `start + duration` (ns) from two storage columns.
    EndTime { start: usize, duration: usize },
}

/// A signal's block schema and where each table column lives in it.
#[derive(Debug)]
pub struct BlockLayout {
    pub schema: SchemaRef,
    /// The schema a query's Parquet reader produces: `schema`, with log
    /// lines read as string views that point into the decompressed pages
    /// (filters on them copy nothing; [`decode_columns`] copies the rows
    /// that are returned).
    pub read_schema: SchemaRef,
    /// Indexed by table column.
    pub columns: Vec<Stored>,
    /// The storage column of log line templates ([`line_template`]),
    /// derived from the line when a block is written; no table column.
    pub template: Option<usize>,
    /// The storage columns of the lines' first variables, by position,
    /// derived with the templates (empty without them).
    pub variables: Vec<usize>,
}

impl BlockLayout {
    fn of(signal: Signal) -> BlockLayout {
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for f in signal.schema().fields() {
            let stored = match f.data_type() {
                // Placeholder: resolved below, once both source columns have a place.
                _ if signal == Signal::Spans && f.name() == "end_time" => Stored::EndTime {
                    start: usize::MAX,
                    duration: usize::MAX,
                },
                DataType::Map(..) => {
                    fields.push(Field::new(f.name(), packed_map_type(), f.is_nullable()));
                    Stored::PackedMap(fields.len() - 1)
                }
                DataType::Float64 if signal == Signal::Samples => {
                    let base = fields.len();
                    fields.push(Field::new(
                        format!("{}_mantissa", f.name()),
                        DataType::Int64,
                        true,
                    ));
                    fields.push(Field::new(
                        format!("{}_exponent", f.name()),
                        DataType::Int8,
                        true,
                    ));
                    fields.push(Field::new(
                        format!("{}_float", f.name()),
                        DataType::Float64,
                        true,
                    ));
                    Stored::Decimal {
                        mantissa: base,
                        exponent: base + 1,
                        float: base + 2,
                    }
                }
                _ => {
                    fields.push(f.as_ref().clone());
                    Stored::Plain(fields.len() - 1)
                }
            };
            columns.push(stored);
        }
        let place = |name: &str| -> usize {
            fields
                .iter()
                .position(|f: &Field| f.name() == name)
                .expect("source column of a derived column is stored")
        };
        for c in columns.iter_mut() {
            if let Stored::EndTime { start, duration } = c {
                *start = place("start_time");
                *duration = place("duration_ns");
            }
        }
        let template = (signal == Signal::Logs).then(|| {
            fields.push(Field::new(
                line_template::TEMPLATE_COLUMN,
                line_template::template_type(),
                true,
            ));
            fields.len() - 1
        });
        let mut variables = Vec::new();
        if template.is_some() {
            for position in 0..line_template::STORED_VARIABLES {
                fields.push(Field::new(
                    line_template::variable_column(position),
                    DataType::Utf8,
                    true,
                ));
                variables.push(fields.len() - 1);
            }
        }
        let read_fields: Vec<Field> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| match (signal, f.name().as_str()) {
                (Signal::Logs, "line") => f.clone().with_data_type(DataType::Utf8View),
                _ if variables.contains(&i) => f.clone().with_data_type(DataType::Utf8View),
                _ => f.clone(),
            })
            .collect();
        BlockLayout {
            schema: Arc::new(Schema::new(fields)),
            read_schema: Arc::new(Schema::new(read_fields)),
            columns,
            template,
            variables,
        }
    }

    /// Whether storage column `i` is derived from the lines when a block is
    /// written (templates and variables), not copied from a table column.
    pub fn is_derived_from_lines(&self, i: usize) -> bool {
        self.template == Some(i) || self.variables.contains(&i)
    }

    /// The storage columns to read for the table columns `projection`, and
    /// for each projected table column where it is within that storage projection.
    pub fn project(&self, projection: &[usize]) -> (Vec<usize>, Vec<Stored>) {
        let mut storage: Vec<usize> = Vec::new();
        let mut position = |i: usize| -> usize {
            match storage.iter().position(|&s| s == i) {
                Some(p) => p,
                None => {
                    storage.push(i);
                    storage.len() - 1
                }
            }
        };
        let decoders = projection
            .iter()
            .map(|&t| match self.columns[t] {
                Stored::Plain(i) => Stored::Plain(position(i)),
                Stored::PackedMap(i) => Stored::PackedMap(position(i)),
                Stored::Decimal {
                    mantissa,
                    exponent,
                    float,
                } => Stored::Decimal {
                    mantissa: position(mantissa),
                    exponent: position(exponent),
                    float: position(float),
                },
                Stored::EndTime { start, duration } => Stored::EndTime {
                    start: position(start),
                    duration: position(duration),
                },
            })
            .collect();
        (storage, decoders)
    }

    /// Whether table column `t` is kept unchanged (so filters on it can be
    /// evaluated inside the Parquet reader).
    pub fn is_plain(&self, t: usize) -> bool {
        matches!(self.columns[t], Stored::Plain(_))
    }
}

static LAYOUTS: LazyLock<[BlockLayout; 3]> = LazyLock::new(|| {
    [
        BlockLayout::of(Signal::Logs),
        BlockLayout::of(Signal::Samples),
        BlockLayout::of(Signal::Spans),
    ]
});

/// How a signal's blocks are laid out.
pub fn block_layout(signal: Signal) -> &'static BlockLayout {
    match signal {
        Signal::Logs => &LAYOUTS[0],
        Signal::Samples => &LAYOUTS[1],
        Signal::Spans => &LAYOUTS[2],
    }
}

/// The schema of a signal's Parquet blocks.
pub fn storage_schema(signal: Signal) -> SchemaRef {
    block_layout(signal).schema.clone()
}

/// The number of decimals `v` needs (0..=9), if it is exactly such a decimal.
fn decimals_of(v: f64) -> Option<i8> {
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    let mut scale = 1.0f64;
    for d in 0..=9i8 {
        let m = (v * scale).round();
        if m.abs() < 9.0e15 && m / scale == v {
            return Some(d);
        }
        scale *= 10.0;
    }
    None
}

/// Splits a float column into (mantissa, exponent, float) columns, using one
/// exponent per run of equal `run_keys` (a series), so mantissas of a series
/// change smoothly and Parquet's delta encoding keeps them small.
fn encode_decimal(
    values: &arrow::array::Float64Array,
    run_keys: &arrow::array::Int64Array,
) -> [ArrayRef; 3] {
    use arrow::array::{Float64Builder, Int8Builder, Int64Builder};
    let n = values.len();
    let mut mantissa = Int64Builder::with_capacity(n);
    let mut exponent = Int8Builder::with_capacity(n);
    let mut float = Float64Builder::with_capacity(n);
    let mut start = 0;
    while start < n {
        let key = run_keys.value(start);
        let end = (start..n).find(|&i| run_keys.value(i) != key).unwrap_or(n);
        let run_exponent = (start..end)
            .filter(|&i| !values.is_null(i))
            .filter_map(|i| decimals_of(values.value(i)))
            .max()
            .unwrap_or(0);
        let scale = 10f64.powi(run_exponent as i32);
        for i in start..end {
            if values.is_null(i) {
                mantissa.append_null();
                exponent.append_null();
                float.append_null();
                continue;
            }
            let v = values.value(i);
            let m = (v * scale).round();
            if v.is_finite()
                && m.abs() < 9.0e15
                && m / scale == v
                && !(v == 0.0 && v.is_sign_negative())
            {
                mantissa.append_value(m as i64);
                exponent.append_value(run_exponent);
                float.append_null();
            } else {
                mantissa.append_null();
                exponent.append_null();
                float.append_value(v);
            }
        }
        start = end;
    }
    [
        Arc::new(mantissa.finish()),
        Arc::new(exponent.finish()),
        Arc::new(float.finish()),
    ]
}

/// Rebuilds a float column from its decimal storage columns (vectorised:
/// `mantissa / 10^exponent`, then the raw floats laid over it).
fn decode_decimal(mantissa: &ArrayRef, exponent: &ArrayRef, float: &ArrayRef) -> Result<ArrayRef> {
    use arrow::array::{Float64Array, PrimitiveArray};
    use arrow::datatypes::{Float64Type, Int8Type, Int64Type};
    const SCALES: [f64; 19] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18,
    ];
    let mantissa = mantissa.as_primitive::<Int64Type>();
    let exponent = exponent.as_primitive::<Int8Type>();
    let float = float.as_primitive::<Float64Type>();
    if let Some(bad) = exponent.iter().flatten().find(|e| !(0..=18).contains(e)) {
        return Err(Error::Storage(format!(
            "corrupt decimal exponent {bad} in block"
        )));
    }
    let scaled: Float64Array =
        arrow::compute::kernels::arity::binary(mantissa, exponent, |m, e| {
            m as f64 / SCALES[e as usize]
        })?;
    if float.null_count() == float.len() {
        return Ok(Arc::new(scaled));
    }
    let use_float: arrow::array::BooleanArray = float.iter().map(|v| Some(v.is_some())).collect();
    let merged = arrow::compute::kernels::zip::zip(&use_float, float, &scaled)?;
    let merged: &PrimitiveArray<Float64Type> = merged.as_primitive();
    Ok(Arc::new(merged.clone()))
}

pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub(crate) fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Packs one map row.
pub fn pack_pairs(pairs: &[(&str, &str)], out: &mut Vec<u8>) {
    for (k, v) in pairs {
        write_varint(out, k.len() as u64);
        out.extend_from_slice(k.as_bytes());
        write_varint(out, v.len() as u64);
        out.extend_from_slice(v.as_bytes());
    }
}

/// Unpacks one map row.
pub fn unpack_pairs(bytes: &[u8]) -> Result<Vec<(&str, &str)>> {
    PackedPairs::new(bytes).collect()
}

/// The `(key, value)` pairs of one packed map row, in order, without
/// allocating; a corrupt row ends with one error.
pub struct PackedPairs<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> PackedPairs<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        PackedPairs { bytes, pos: 0 }
    }

    fn take(&mut self) -> Option<&'a str> {
        let bytes = self.bytes;
        let len = read_varint(bytes, &mut self.pos)? as usize;
        let end = self.pos.checked_add(len).filter(|&e| e <= bytes.len())?;
        let s = std::str::from_utf8(&bytes[self.pos..end]).ok()?;
        self.pos = end;
        Some(s)
    }
}

impl<'a> Iterator for PackedPairs<'a> {
    type Item = Result<(&'a str, &'a str)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        match (self.take(), self.take()) {
            (Some(k), Some(v)) => Some(Ok((k, v))),
            _ => {
                self.pos = self.bytes.len();
                Some(Err(Error::Storage(
                    "corrupt packed label set in block".into(),
                )))
            }
        }
    }
}

/// `schema` with every map column typed as packed label sets.
pub fn packed_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Map(..) => Field::new(f.name(), packed_map_type(), f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// `batch` with its map columns packed, as `packed` (from [`packed_schema`]).
pub fn pack_map_columns(batch: &RecordBatch, packed: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Map(..) => pack_map(c.as_map()),
            _ => Ok(c.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(packed.clone(), columns)?)
}

/// Packs a map column into the block form (dictionary of packed label sets).
pub fn pack_map(map: &MapArray) -> Result<ArrayRef> {
    let mut builder = BinaryBuilder::with_capacity(map.len(), 64);
    let mut buf = Vec::with_capacity(256);
    for row in 0..map.len() {
        if map.is_null(row) {
            builder.append_null();
            continue;
        }
        buf.clear();
        pack_pairs(&map_row(map, row), &mut buf);
        builder.append_value(&buf);
    }
    let binary: BinaryArray = builder.finish();
    Ok(arrow::compute::cast(&binary, &packed_map_type())?)
}

/// Converts a normalised batch (sorted in block order) to the block storage schema.
pub fn encode_for_block(signal: Signal, batch: &RecordBatch) -> Result<RecordBatch> {
    let layout = block_layout(signal);
    let mut columns: Vec<Option<ArrayRef>> = vec![None; layout.schema.fields().len()];
    for (t, stored) in layout.columns.iter().enumerate() {
        let column = batch.column(t);
        match *stored {
            Stored::Plain(i) => columns[i] = Some(column.clone()),
            Stored::PackedMap(i) => columns[i] = Some(pack_map(column.as_map())?),
            Stored::Decimal {
                mantissa,
                exponent,
                float,
            } => {
                let runs = batch
                    .column_by_name("series_id")
                    .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>().clone())
                    .unwrap_or_else(|| arrow::array::Int64Array::from(vec![0; batch.num_rows()]));
                let [m, e, f] = encode_decimal(column.as_primitive(), &runs);
                columns[mantissa] = Some(m);
                columns[exponent] = Some(e);
                columns[float] = Some(f);
            }
            // Derived on read.
            Stored::EndTime { .. } => {}
        }
    }
    if let Some(i) = layout.template {
        let line = batch
            .column_by_name("line")
            .expect("log batches have a line column");
        let derived = line_template::template_columns(line);
        columns[i] = Some(derived.templates);
        for (&at, column) in layout.variables.iter().zip(derived.variables) {
            columns[at] = Some(column);
        }
    }
    let columns = columns
        .into_iter()
        .map(|c| c.expect("every storage column is produced"))
        .collect();
    Ok(RecordBatch::try_new(layout.schema.clone(), columns)?)
}

/// Decodes storage columns (as projected by [`BlockLayout::project`]) back
/// into table columns.
pub fn decode_columns(storage: &[ArrayRef], decoders: &[Stored]) -> Result<Vec<ArrayRef>> {
    decoders
        .iter()
        .map(|d| match *d {
            // Read as a view (see `BlockLayout::read_schema`); tables hold strings.
            Stored::Plain(i) if storage[i].data_type() == &DataType::Utf8View => {
                Ok(arrow::compute::cast(&storage[i], &DataType::Utf8)?)
            }
            Stored::Plain(i) => Ok(storage[i].clone()),
            Stored::PackedMap(i) => unpack_column(&storage[i]),
            Stored::Decimal {
                mantissa,
                exponent,
                float,
            } => decode_decimal(&storage[mantissa], &storage[exponent], &storage[float]),
            Stored::EndTime { start, duration } => {
                decode_end_time(&storage[start], &storage[duration])
            }
        })
        .collect()
}

/// `start + duration`, keeping the start column's type (and time zone).
fn decode_end_time(start: &ArrayRef, duration: &ArrayRef) -> Result<ArrayRef> {
    use arrow::datatypes::{Int64Type, TimestampNanosecondType};
    let (Some(start_ns), Some(duration_ns)) = (
        start.as_primitive_opt::<TimestampNanosecondType>(),
        duration.as_primitive_opt::<Int64Type>(),
    ) else {
        return Err(Error::Storage(format!(
            "span block has start_time {} and duration_ns {}: expected Timestamp(ns) and Int64",
            start.data_type(),
            duration.data_type()
        )));
    };
    let end: arrow::array::PrimitiveArray<TimestampNanosecondType> =
        arrow::compute::kernels::arity::binary(start_ns, duration_ns, |s, d| s.wrapping_add(d))?;
    Ok(Arc::new(end.with_data_type(start.data_type().clone())))
}

/// Decodes a packed column (dictionary or plain binary) back into a map column.
pub fn unpack_column(column: &ArrayRef) -> Result<ArrayRef> {
    match PackedColumn::of(column)? {
        PackedColumn::Dictionary { keys, sets, .. } => {
            Ok(arrow::compute::take(&unpack_binary(sets)?, keys, None)?)
        }
        PackedColumn::Plain(sets) => Ok(Arc::new(unpack_binary(sets)?)),
    }
}

/// A packed map column as read: dictionary-encoded (as blocks store it) or
/// plain packed label sets.
pub enum PackedColumn<'a> {
    Dictionary {
        keys: &'a arrow::array::Int32Array,
        sets: &'a BinaryArray,
        /// The `sets` array itself, to tell one dictionary from another.
        dictionary: &'a ArrayRef,
    },
    Plain(&'a BinaryArray),
}

impl<'a> PackedColumn<'a> {
    pub fn of(column: &'a ArrayRef) -> Result<Self> {
        match column.data_type() {
            DataType::Dictionary(key, value)
                if **key == DataType::Int32 && **value == DataType::Binary =>
            {
                let dict: &DictionaryArray<Int32Type> = column.as_dictionary();
                Ok(PackedColumn::Dictionary {
                    keys: dict.keys(),
                    sets: dict.values().as_binary::<i32>(),
                    dictionary: dict.values(),
                })
            }
            DataType::Binary => Ok(PackedColumn::Plain(column.as_binary::<i32>())),
            other => Err(Error::Storage(format!(
                "packed label column has unexpected type {other}"
            ))),
        }
    }

    /// Row `row`'s label set — an id within this array (its dictionary
    /// key, or the row) and its bytes — or `None` for a null row.
    pub fn set(&self, row: usize) -> Option<(u32, &'a [u8])> {
        match self {
            PackedColumn::Dictionary { keys, sets, .. } => {
                let key = keys.is_valid(row).then(|| keys.value(row) as usize)?;
                sets.is_valid(key).then(|| (key as u32, sets.value(key)))
            }
            PackedColumn::Plain(sets) => sets.is_valid(row).then(|| (row as u32, sets.value(row))),
        }
    }

    /// The dictionary, for a dictionary-encoded column.
    pub fn dictionary(&self) -> Option<&'a ArrayRef> {
        match self {
            PackedColumn::Dictionary { dictionary, .. } => Some(dictionary),
            PackedColumn::Plain(_) => None,
        }
    }
}

fn unpack_binary(values: &BinaryArray) -> Result<MapArray> {
    let mut keys = StringBuilder::new();
    let mut vals = StringBuilder::new();
    let mut offsets = Vec::with_capacity(values.len() + 1);
    offsets.push(0i32);
    for row in 0..values.len() {
        if !values.is_null(row) {
            for (k, v) in unpack_pairs(values.value(row))? {
                keys.append_value(k);
                vals.append_value(v);
            }
        }
        offsets.push(keys.len() as i32);
    }
    Ok(map_from_parts(
        Arc::new(keys.finish()),
        Arc::new(vals.finish()),
        offsets,
        values.nulls().cloned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::build_string_map;

    #[test]
    fn decimals_round_trip_bit_exactly() {
        use arrow::array::{Float64Array, Int64Array};
        let stale = f64::from_bits(crate::model::STALE_NAN_BITS);
        let values = Float64Array::from(vec![
            Some(1.0),
            Some(1.5),
            Some(0.1),
            Some(123456.789),
            Some(-0.0),
            Some(stale),
            Some(f64::INFINITY),
            None,
            Some(1.0 / 3.0),
            Some(2.0e300),
            Some(42.0),
            Some(0.25),
        ]);
        let runs = Int64Array::from(vec![1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 3]);
        let [m, e, f] = encode_decimal(&values, &runs);
        let back = decode_decimal(&m, &e, &f).unwrap();
        let back = back.as_primitive::<arrow::datatypes::Float64Type>();
        for i in 0..values.len() {
            assert_eq!(values.is_null(i), back.is_null(i), "row {i}");
            if !values.is_null(i) {
                assert_eq!(
                    values.value(i).to_bits(),
                    back.value(i).to_bits(),
                    "row {i}"
                );
            }
        }
        // Run 1 shares exponent 3 (123456.789); decimals become integers.
        let m = m.as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(m.value(0), 1000);
        assert_eq!(m.value(2), 100);
        assert!(
            m.is_null(5),
            "the stale marker keeps its exact NaN bits as a float"
        );
        assert_eq!(decimals_of(0.1), Some(1));
        assert_eq!(decimals_of(1.0 / 3.0), None);
    }

    #[test]
    fn pairs_round_trip_including_empty_and_unicode() {
        let pairs = vec![("a", ""), ("ключ", "значение"), ("", "x")];
        let mut buf = Vec::new();
        pack_pairs(&pairs, &mut buf);
        assert_eq!(unpack_pairs(&buf).unwrap(), pairs);
        assert!(unpack_pairs(&[5, b'a']).is_err());
    }

    #[test]
    fn map_column_round_trips_through_dictionary() {
        let rows = [
            vec![("job", "api")],
            vec![("job", "api")],
            vec![],
            vec![("job", "db"), ("zone", "a")],
        ];
        let map = build_string_map(rows.iter().map(|r| r.iter().copied()));
        let packed = pack_map(&map).unwrap();
        assert_eq!(packed.data_type(), &packed_map_type());
        let back = unpack_column(&packed).unwrap();
        let back = back.as_map();
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(&map_row(back, i), r);
        }
    }
}
