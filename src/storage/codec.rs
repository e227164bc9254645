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

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BinaryArray, BinaryBuilder, DictionaryArray, MapArray,
    RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::model::Signal;
use crate::model::labels::{map_from_parts, map_row};

/// The type a map column has inside a block.
pub fn packed_map_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary))
}

fn storage_schema_of(signal: Signal) -> SchemaRef {
    let fields: Vec<Field> = signal
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if matches!(f.data_type(), DataType::Map(..)) {
                Field::new(f.name(), packed_map_type(), f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

static STORAGE_SCHEMAS: LazyLock<[SchemaRef; 3]> = LazyLock::new(|| {
    [
        storage_schema_of(Signal::Logs),
        storage_schema_of(Signal::Samples),
        storage_schema_of(Signal::Spans),
    ]
});

/// The schema of a signal's Parquet blocks (same columns, maps packed).
pub fn storage_schema(signal: Signal) -> SchemaRef {
    let i = match signal {
        Signal::Logs => 0,
        Signal::Samples => 1,
        Signal::Spans => 2,
    };
    STORAGE_SCHEMAS[i].clone()
}

/// Whether column `index` of the signal schema is packed in blocks.
pub fn is_packed_column(signal: Signal, index: usize) -> bool {
    matches!(signal.schema().field(index).data_type(), DataType::Map(..))
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
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

fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
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
    let corrupt = || Error::Storage("corrupt packed label set in block".into());
    let mut pos = 0;
    let mut out = Vec::new();
    let take = |pos: &mut usize| -> Result<&str> {
        let len = read_varint(bytes, pos).ok_or_else(corrupt)? as usize;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(corrupt)?;
        let s = std::str::from_utf8(&bytes[*pos..end]).map_err(|_| corrupt())?;
        *pos = end;
        Ok(s)
    };
    while pos < bytes.len() {
        let k = take(&mut pos)?;
        let v = take(&mut pos)?;
        out.push((k, v));
    }
    Ok(out)
}

fn pack_map(map: &MapArray) -> Result<ArrayRef> {
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

/// Converts a normalised batch to the block storage schema.
pub fn encode_for_block(signal: Signal, batch: &RecordBatch) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if is_packed_column(signal, i) {
                pack_map(c.as_map())
            } else {
                Ok(c.clone())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(storage_schema(signal), columns)?)
}

/// Decodes a packed column (dictionary or plain binary) back into a map column.
pub fn unpack_column(column: &ArrayRef) -> Result<ArrayRef> {
    match column.data_type() {
        DataType::Dictionary(_, _) => {
            let dict: &DictionaryArray<Int32Type> = column.as_dictionary::<Int32Type>();
            let values = unpack_binary(dict.values().as_binary::<i32>())?;
            let keys = dict.keys();
            Ok(arrow::compute::take(&values, keys, None)?)
        }
        DataType::Binary => Ok(Arc::new(unpack_binary(column.as_binary::<i32>())?)),
        other => Err(Error::Storage(format!(
            "packed label column has unexpected type {other}"
        ))),
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
