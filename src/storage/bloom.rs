//! Block-level bloom filters: the sidecar `<block>.index` file written next to
//! every Parquet block. It answers "can this block contain `column = value`
//! (or `labels['k'] = value`)?" before the block's Parquet is opened.
//!
//! Keys are strings: `column=value` for plain columns and `column[key]=value`
//! for map columns (see [`index_key`]). File format: magic `O11IDX01`,
//! `num_bits u64 LE`, `num_hashes u32 LE`, `distinct u64 LE`, then the bit
//! words (u64 LE), then a crc32 of everything before it.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;

use crate::error::{Error, Result};
use crate::model::Signal;

const MAGIC: &[u8; 8] = b"O11IDX01";
const FALSE_POSITIVE_RATE: f64 = 0.01;

/// The key a block index stores for an equality on a column or map entry.
pub fn index_key(column: &str, map_key: Option<&str>, value: &str) -> String {
    match map_key {
        Some(k) => format!("{column}[{k}]={value}"),
        None => format!("{column}={value}"),
    }
}

/// Columns whose equalities are indexed, per signal: (plain columns, map columns).
pub fn indexed_columns(signal: Signal) -> (&'static [&'static str], &'static [&'static str]) {
    match signal {
        Signal::Samples => (&["metric"], &["labels"]),
        Signal::Logs => (&["trace_id"], &["labels"]),
        Signal::Spans => (&["trace_id", "service", "name"], &[]),
    }
}

/// The column whose value is a hash of the `labels` map (computed on ingest,
/// never taken from the writer): `series_id` of samples, `stream_id` of logs.
fn labels_identity(signal: Signal) -> Option<&'static str> {
    match signal {
        Signal::Samples => Some("series_id"),
        Signal::Logs => Some("stream_id"),
        Signal::Spans => None,
    }
}

/// A split-free classic bloom filter with double hashing over xxh3.
#[derive(Debug, Clone, PartialEq)]
pub struct Bloom {
    bits: Vec<u64>,
    num_bits: u64,
    num_hashes: u32,
    distinct: u64,
}

impl Bloom {
    pub fn with_capacity(items: usize) -> Self {
        Self::with_capacity_at(items, FALSE_POSITIVE_RATE)
    }

    /// A bloom sized for `items` keys at the false-positive rate `rate`.
    pub fn with_capacity_at(items: usize, rate: f64) -> Self {
        let n = items.max(1) as f64;
        let ln2 = std::f64::consts::LN_2;
        let num_bits = ((-n * rate.ln()) / (ln2 * ln2)).ceil().max(64.0) as u64;
        let num_hashes = ((num_bits as f64 / n) * ln2).round().clamp(1.0, 16.0) as u32;
        Bloom {
            bits: vec![0; num_bits.div_ceil(64) as usize],
            num_bits,
            num_hashes,
            distinct: items as u64,
        }
    }

    fn split(h: u128) -> (u64, u64) {
        ((h >> 64) as u64, (h as u64) | 1)
    }

    pub fn insert(&mut self, key: &str) {
        self.insert_hash(hash_key(key));
    }

    /// A bloom holding exactly these key hashes (see [`key_hash`]).
    pub fn from_hashes(hashes: &HashSet<u128>) -> Bloom {
        Self::from_hashes_at(hashes, FALSE_POSITIVE_RATE)
    }

    /// As [`Bloom::from_hashes`], sized for the false-positive rate `rate`.
    pub fn from_hashes_at(hashes: &HashSet<u128>, rate: f64) -> Bloom {
        let mut bloom = Bloom::with_capacity_at(hashes.len(), rate);
        for &h in hashes {
            bloom.insert_hash(h);
        }
        bloom
    }

    /// Inserts a key by its `xxh3_128` hash.
    fn insert_hash(&mut self, h: u128) {
        let (a, b) = Self::split(h);
        for i in 0..self.num_hashes as u64 {
            let bit = a.wrapping_add(i.wrapping_mul(b)) % self.num_bits;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    pub fn may_contain(&self, key: &str) -> bool {
        self.may_contain_hash(hash_key(key))
    }

    /// [`Bloom::may_contain`] for a key's `xxh3_128` hash (computed once
    /// when one key is looked up in many blooms).
    pub fn may_contain_hash(&self, h: u128) -> bool {
        let (a, b) = Self::split(h);
        (0..self.num_hashes as u64).all(|i| {
            let bit = a.wrapping_add(i.wrapping_mul(b)) % self.num_bits;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.bits.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.num_bits.to_le_bytes());
        out.extend_from_slice(&self.num_hashes.to_le_bytes());
        out.extend_from_slice(&self.distinct.to_le_bytes());
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
        super::checksum::append_crc32(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Bloom> {
        let bad = |why: &str| Error::Storage(format!("corrupt block index: {why}"));
        if bytes.len() < 32 || &bytes[..8] != MAGIC {
            return Err(bad("bad header"));
        }
        let body = super::checksum::verified_body(bytes).ok_or_else(|| bad("checksum mismatch"))?;
        let num_bits = u64::from_le_bytes(body[8..16].try_into().unwrap());
        let num_hashes = u32::from_le_bytes(body[16..20].try_into().unwrap());
        let distinct = u64::from_le_bytes(body[20..28].try_into().unwrap());
        let words = &body[28..];
        if words.len() as u64 != num_bits.div_ceil(64) * 8 || num_hashes == 0 {
            return Err(bad("size mismatch"));
        }
        let bits = words
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Ok(Bloom {
            bits,
            num_bits,
            num_hashes,
            distinct,
        })
    }

    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// The false-positive rate expected for a key not in the bloom, from
    /// its bits, hashes and distinct keys: `(1 - e^(-k·n/m))^k`.
    pub fn false_positive_rate(&self) -> f64 {
        let k = f64::from(self.num_hashes);
        let fill = 1.0 - (-k * self.distinct as f64 / self.num_bits as f64).exp();
        fill.powf(k)
    }
}

/// Builds a block's bloom from its batches one at a time (a flush adds the
/// head's batches, the compactor its output stream): holds the distinct
/// keys' hashes, not the rows.
#[derive(Debug)]
pub struct BloomBuilder {
    signal: Signal,
    hashes: HashSet<u128>,
    key: String,
}

impl BloomBuilder {
    pub fn new(signal: Signal) -> Self {
        BloomBuilder {
            signal,
            hashes: HashSet::new(),
            key: String::new(),
        }
    }

    fn add(&mut self, column: &str, map_key: Option<&str>, value: &str) {
        self.hashes
            .insert(key_hash(&mut self.key, column, map_key, value));
    }

    /// Adds the index keys of a batch in the signal's table schema.
    pub fn add_batch(&mut self, batch: &RecordBatch) {
        let (plain, maps) = indexed_columns(self.signal);
        for &column in plain {
            let Some(array) = batch.column_by_name(column) else {
                continue;
            };
            let strings = array.as_string::<i32>();
            let mut last: Option<&str> = None;
            for i in 0..strings.len() {
                if strings.is_null(i) {
                    continue;
                }
                let v = strings.value(i);
                if last != Some(v) {
                    self.add(column, None, v);
                    last = Some(v);
                }
            }
        }
        for &column in maps {
            let Some(array) = batch.column_by_name(column) else {
                continue;
            };
            let map = array.as_map();
            let offsets = map.value_offsets();
            let (keys, values) = (
                map.keys().as_string::<i32>(),
                map.values().as_string::<i32>(),
            );
            let entries = |row: usize| offsets[row] as usize..offsets[row + 1] as usize;
            // The id column is a hash of the label set, so equal ids mean
            // equal labels and one integer compare replaces the pairs'.
            let ids = labels_identity(self.signal)
                .and_then(|name| batch.column_by_name(name))
                .and_then(|ids| ids.as_primitive_opt::<Int64Type>());
            let same_row = |a: usize, b: usize| match ids {
                Some(ids) => ids.value(a) == ids.value(b),
                None => {
                    entries(a).len() == entries(b).len()
                        && entries(a).zip(entries(b)).all(|(x, y)| {
                            keys.value(x) == keys.value(y) && values.value(x) == values.value(y)
                        })
                }
            };
            let mut last_row: Option<usize> = None;
            for row in 0..map.len() {
                // Sorted blocks repeat the same label set many times in a row.
                if last_row.is_some_and(|prev| same_row(prev, row)) {
                    continue;
                }
                for e in entries(row) {
                    self.add(column, Some(keys.value(e)), values.value(e));
                }
                last_row = Some(row);
            }
        }
    }

    pub fn finish(self) -> Bloom {
        Bloom::from_hashes(&self.hashes)
    }
}

impl super::index_cache::CachedIndex for Bloom {
    /// Memory the bloom holds (its bit array and fields).
    fn memory_bytes(&self) -> u64 {
        (self.bits.len() * 8 + std::mem::size_of::<Bloom>()) as u64
    }
}

/// The hash a bloom stores for an index key (as [`index_key`] spells it).
pub fn hash_key(key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key.as_bytes())
}

/// The hash a bloom stores for [`index_key`]`(column, map_key, value)`,
/// building the key in `buf` (reused between calls).
pub fn key_hash(buf: &mut String, column: &str, map_key: Option<&str>, value: &str) -> u128 {
    buf.clear();
    buf.push_str(column);
    if let Some(k) = map_key {
        buf.push('[');
        buf.push_str(k);
        buf.push(']');
    }
    buf.push('=');
    buf.push_str(value);
    debug_assert_eq!(*buf, index_key(column, map_key, value));
    hash_key(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let mut b = Bloom::with_capacity(10_000);
        for i in 0..10_000 {
            b.insert(&format!("trace_id={i:032x}"));
        }
        for i in 0..10_000 {
            assert!(b.may_contain(&format!("trace_id={i:032x}")));
        }
        let fp = (10_000..20_000)
            .filter(|i| b.may_contain(&format!("trace_id={i:032x}")))
            .count();
        assert!(fp < 300, "false positives: {fp}");
    }

    #[test]
    fn bloom_round_trips_and_detects_corruption() {
        let mut b = Bloom::with_capacity(10);
        b.insert("a=b");
        let mut bytes = b.encode();
        assert_eq!(Bloom::decode(&bytes).unwrap(), b);
        bytes[30] ^= 1;
        assert!(Bloom::decode(&bytes).is_err());
    }
}
