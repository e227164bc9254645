//! Row-segment blooms: the sidecar `blocks/<id>.rows` of a log block. It
//! answers "which rows of this block can hold `trace_id = X`?" so that a
//! needle query reads a few pages of one block instead of a whole column.
//!
//! The block's rows, in block order, are cut into segments of
//! [`SEGMENT_ROWS`] rows, and each segment gets a bloom (the same hashing
//! and keys as the block index, [`super::bloom::index_key`]) of the values
//! of the signal's row-indexed columns ([`row_indexed_columns`]). Log blocks
//! are written with data pages of at most [`SEGMENT_ROWS`] rows, so the
//! segments a query keeps, turned into a Parquet row selection
//! ([`row_selection`]), are read by decompressing only their pages.
//!
//! Samples blocks keep their series directory at the same path instead
//! ([`super::series_index`]); [`RowsSidecarBuilder`] builds either.
//!
//! A log block's sidecar also lists the block's distinct line templates
//! ([`super::line_template`]) when every line has one, so a query decides
//! its line filters per template before reading the block.
//!
//! It also says how many of each line's variables the block stores by
//! position beside its template (`line_var_0`, …).
//!
//! File format: magic `O11RIX03`, `segment_rows u32 LE`, `rows u64 LE`,
//! `segments u32 LE`, then per segment `len u32 LE` and a bloom as
//! [`Bloom::encode`] writes it; then `templates u32 LE` (`u32::MAX`: no
//! list) and per template `len u32 LE` and its UTF-8 bytes; then
//! `variables u32 LE`, the stored variable columns; then a crc32 of
//! everything before it. Version `O11RIX02` files end after the templates
//! (no variables stored), version `O11RIX01` files after the segments.

use std::collections::HashSet;
use std::ops::Range;

use arrow::array::{Array, AsArray, RecordBatch};
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};

use super::bloom::{Bloom, hash_key, key_hash};
use super::line_template::TemplateListBuilder;
use super::series_index::SeriesIndexBuilder;
use crate::error::{Error, Result};
use crate::model::Signal;

const MAGIC: &[u8; 8] = b"O11RIX03";
/// Written before line variables were stored; still read.
const MAGIC_V2: &[u8; 8] = b"O11RIX02";
/// Written before line templates were listed; still read.
const MAGIC_V1: &[u8; 8] = b"O11RIX01";
const NO_TEMPLATE_LIST: u32 = u32::MAX;

/// Rows per segment; a multiple of a log block's data page rows, so a
/// segment's rows are whole pages.
pub const SEGMENT_ROWS: usize = 2048;

/// The false-positive rate a segment's bloom is sized for. A block holds
/// about 1,500 segments of 2,048 rows: at 1 % a trace-id needle read ~15
/// segments that cannot hold it, at 0.1 % about 1.5, for 14.4 instead of
/// 9.6 bits per distinct value (~0.6 bytes a line more). With so few false
/// segments the scan skips the Parquet bloom filters of the block's row
/// groups (see the catalog's scan). Older indexes keep their own sizes:
/// each bloom stores its bit and hash counts.
const SEGMENT_FALSE_POSITIVE_RATE: f64 = 0.001;

/// A row index whose segments are at most this likely to hold a key they
/// do not makes the Parquet bloom filters of its block's row groups
/// redundant ([`RowIndex::makes_parquet_blooms_redundant`]).
const REDUNDANT_PARQUET_BLOOM_RATE: f64 = 0.002;

/// Plain columns whose equalities the row index answers, per signal.
/// Only logs: their blocks are sorted by stream, so one trace's lines
/// scatter over the block; span blocks keep a trace's spans together and
/// Parquet page statistics find them.
pub fn row_indexed_columns(signal: Signal) -> &'static [&'static str] {
    match signal {
        Signal::Logs => &["trace_id"],
        Signal::Samples | Signal::Spans => &[],
    }
}

/// Whether `key` (an index key, `column=value`) is answered by the row index
/// of `signal`'s blocks.
pub fn covers(signal: Signal, key: &str) -> bool {
    row_indexed_columns(signal).iter().any(|column| {
        key.strip_prefix(column)
            .is_some_and(|rest| rest.starts_with('='))
    })
}

/// A block's row-segment blooms, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct RowIndex {
    segment_rows: u32,
    rows: u64,
    segments: Vec<Bloom>,
    /// See [`RowIndex::makes_parquet_blooms_redundant`]; derived from the
    /// segments once, when the index is built or decoded.
    parquet_blooms_redundant: bool,
    /// The block's distinct line templates, sorted, when every line has one.
    templates: Option<Vec<String>>,
    /// How many of each line's variables the block stores by position.
    stored_variables: u32,
}

impl super::index_cache::CachedIndex for RowIndex {
    fn memory_bytes(&self) -> u64 {
        use super::index_cache::CachedIndex;
        let blooms: u64 = self.segments.iter().map(CachedIndex::memory_bytes).sum();
        let templates: usize = self.templates.iter().flatten().map(|t| t.len() + 24).sum();
        blooms + templates as u64 + std::mem::size_of::<RowIndex>() as u64
    }
}

impl RowIndex {
    /// The rows of the block the index was built over.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether its segments are sized so that few of a block's ~1,500 hold
    /// a key by chance ([`SEGMENT_FALSE_POSITIVE_RATE`]): the Parquet bloom
    /// filter of each row group (one 128 KB read per row group) can then
    /// rule out next to nothing the index has not. Indexes written before
    /// the rate was lowered from 1 % are not: there the row-group blooms
    /// still drop most of their ~15 false segments.
    pub fn makes_parquet_blooms_redundant(&self) -> bool {
        self.parquet_blooms_redundant
    }

    /// The block's distinct line templates (sorted), when every line of it
    /// has one; None for blocks written before templates or whose lines
    /// are not all templated.
    pub fn templates(&self) -> Option<&[String]> {
        self.templates.as_deref()
    }

    /// How many of each templated line's variables, by position, the block
    /// stores in its `line_var_*` columns (0 for blocks written before).
    pub fn stored_variables(&self) -> usize {
        self.stored_variables as usize
    }

    fn new(
        segment_rows: u32,
        rows: u64,
        segments: Vec<Bloom>,
        templates: Option<Vec<String>>,
        stored_variables: u32,
    ) -> RowIndex {
        let parquet_blooms_redundant = segments
            .iter()
            .all(|b| b.false_positive_rate() <= REDUNDANT_PARQUET_BLOOM_RATE);
        RowIndex {
            segment_rows,
            rows,
            segments,
            parquet_blooms_redundant,
            templates,
            stored_variables,
        }
    }

    /// The row ranges (block order, merged, ascending) of the segments that
    /// may hold a row meeting every group of keys, each group a disjunction
    /// (as `ScanPredicate::required_keys`). Every key must be [`covers`]ed.
    pub fn candidate_ranges(&self, groups: &[Vec<String>]) -> Vec<Range<u64>> {
        let mut ranges: Vec<Range<u64>> = Vec::new();
        let step = u64::from(self.segment_rows);
        let hashes: Vec<Vec<u128>> = groups
            .iter()
            .map(|any| any.iter().map(|k| hash_key(k)).collect())
            .collect();
        for (i, bloom) in self.segments.iter().enumerate() {
            let keep = hashes
                .iter()
                .all(|any| any.iter().any(|&h| bloom.may_contain_hash(h)));
            if !keep {
                continue;
            }
            let start = i as u64 * step;
            let end = (start + step).min(self.rows);
            match ranges.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => ranges.push(start..end),
            }
        }
        ranges
    }

    pub fn encode(&self) -> Vec<u8> {
        let blooms: Vec<Vec<u8>> = self.segments.iter().map(Bloom::encode).collect();
        let mut out = Vec::with_capacity(28 + blooms.iter().map(|b| b.len() + 4).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.segment_rows.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&(blooms.len() as u32).to_le_bytes());
        for b in &blooms {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        match &self.templates {
            None => out.extend_from_slice(&NO_TEMPLATE_LIST.to_le_bytes()),
            Some(list) => {
                out.extend_from_slice(&(list.len() as u32).to_le_bytes());
                for t in list {
                    out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                    out.extend_from_slice(t.as_bytes());
                }
            }
        }
        out.extend_from_slice(&self.stored_variables.to_le_bytes());
        super::checksum::append_crc32(&mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<RowIndex> {
        let bad = |why: &str| Error::Storage(format!("corrupt row index: {why}"));
        let version = match bytes.get(..8) {
            Some(m) if m == MAGIC => 3,
            Some(m) if m == MAGIC_V2 => 2,
            Some(m) if m == MAGIC_V1 => 1,
            _ => return Err(bad("bad header")),
        };
        if bytes.len() < 28 {
            return Err(bad("bad header"));
        }
        let body = super::checksum::verified_body(bytes).ok_or_else(|| bad("checksum mismatch"))?;
        let u32_at = |at: usize| -> Result<u32> {
            body.get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(|| bad("truncated"))
        };
        let segment_rows = u32_at(8)?;
        let rows = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes"));
        let count = u32_at(20)? as usize;
        if segment_rows == 0 || (count as u64) != rows.div_ceil(u64::from(segment_rows)) {
            return Err(bad("segment count does not match the rows"));
        }
        let mut segments = Vec::with_capacity(count);
        let mut at = 24;
        for _ in 0..count {
            let len = u32_at(at)? as usize;
            let bloom = body
                .get(at + 4..at + 4 + len)
                .ok_or_else(|| bad("truncated"))?;
            segments.push(Bloom::decode(bloom)?);
            at += 4 + len;
        }
        let mut templates = None;
        if version >= 2 {
            let count = u32_at(at)?;
            at += 4;
            if count != NO_TEMPLATE_LIST {
                let mut list = Vec::with_capacity((count as usize).min(body.len() / 4));
                for _ in 0..count {
                    let len = u32_at(at)? as usize;
                    let text = body
                        .get(at + 4..at + 4 + len)
                        .ok_or_else(|| bad("truncated"))?;
                    let text =
                        std::str::from_utf8(text).map_err(|_| bad("a template is not UTF-8"))?;
                    list.push(text.to_string());
                    at += 4 + len;
                }
                templates = Some(list);
            }
        }
        let mut stored_variables = 0;
        if version >= 3 {
            stored_variables = u32_at(at)?;
            at += 4;
        }
        if at != body.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(RowIndex::new(
            segment_rows,
            rows,
            segments,
            templates,
            stored_variables,
        ))
    }
}

/// The Parquet row selection of `ranges` (ascending, disjoint) in a file of
/// `rows` rows.
pub fn row_selection(ranges: &[Range<u64>], rows: u64) -> RowSelection {
    let mut selectors = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut at = 0u64;
    for r in ranges {
        if r.start > at {
            selectors.push(RowSelector::skip((r.start - at) as usize));
        }
        selectors.push(RowSelector::select((r.end - r.start) as usize));
        at = r.end;
    }
    if rows > at {
        selectors.push(RowSelector::skip((rows - at) as usize));
    }
    RowSelection::from(selectors)
}

/// The row-index sidecar (`blocks/<id>.rows`) of a block being written,
/// from its rows in block order (the signal's table schema): segment blooms
/// for logs, the series directory ([`super::series_index`]) for samples;
/// spans have none.
#[derive(Debug)]
pub enum RowsSidecarBuilder {
    Segments(RowIndexBuilder),
    Series(SeriesIndexBuilder),
}

impl RowsSidecarBuilder {
    pub fn new(signal: Signal) -> Option<Self> {
        match signal {
            Signal::Samples => Some(RowsSidecarBuilder::Series(SeriesIndexBuilder::new())),
            Signal::Logs | Signal::Spans => RowIndexBuilder::new(signal).map(Self::Segments),
        }
    }

    pub fn add_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            RowsSidecarBuilder::Segments(b) => b.add_batch(batch),
            RowsSidecarBuilder::Series(b) => b.add_batch(batch)?,
        }
        Ok(())
    }

    /// Adds what the sidecar keeps of the same rows in the storage schema
    /// (a log block's line templates, and how many variables it stores).
    pub fn add_stored(&mut self, stored: &RecordBatch) {
        use super::line_template::{STORED_VARIABLES, TEMPLATE_COLUMN, variable_column};
        if let RowsSidecarBuilder::Segments(b) = self {
            b.templates.add(stored.column_by_name(TEMPLATE_COLUMN));
            let present = (0..STORED_VARIABLES)
                .take_while(|&k| stored.column_by_name(&variable_column(k)).is_some())
                .count() as u32;
            b.stored_variables = Some(b.stored_variables.map_or(present, |v| v.min(present)));
        }
    }

    /// The sidecar file's bytes.
    pub fn finish(self) -> bytes::Bytes {
        bytes::Bytes::from(match self {
            RowsSidecarBuilder::Segments(b) => b.finish().encode(),
            RowsSidecarBuilder::Series(b) => b.finish().encode(),
        })
    }
}

/// Builds a block's row-segment blooms from its rows in block order (the
/// signal's table schema), a batch at a time; `None` for signals without them.
#[derive(Debug)]
pub struct RowIndexBuilder {
    columns: &'static [&'static str],
    rows: u64,
    current: HashSet<u128>,
    segments: Vec<Bloom>,
    key: String,
    templates: TemplateListBuilder,
    /// The fewest variable columns of a stored batch (None: none added).
    stored_variables: Option<u32>,
}

impl RowIndexBuilder {
    pub fn new(signal: Signal) -> Option<Self> {
        let columns = row_indexed_columns(signal);
        (!columns.is_empty()).then(|| RowIndexBuilder {
            columns,
            rows: 0,
            current: HashSet::new(),
            segments: Vec::new(),
            key: String::new(),
            templates: TemplateListBuilder::new(),
            stored_variables: None,
        })
    }

    pub fn add_batch(&mut self, batch: &RecordBatch) {
        let columns: Vec<_> = self
            .columns
            .iter()
            .filter_map(|&name| Some((name, batch.column_by_name(name)?.as_string_opt::<i32>()?)))
            .collect();
        let step = SEGMENT_ROWS as u64;
        let mut row = 0;
        while row < batch.num_rows() {
            let room = (step - self.rows % step) as usize;
            let end = (row + room).min(batch.num_rows());
            for &(name, values) in &columns {
                let mut last: Option<&str> = None;
                for i in row..end {
                    if values.is_null(i) {
                        continue;
                    }
                    let v = values.value(i);
                    if last != Some(v) {
                        self.current.insert(key_hash(&mut self.key, name, None, v));
                        last = Some(v);
                    }
                }
            }
            self.rows += (end - row) as u64;
            row = end;
            if self.rows.is_multiple_of(step) {
                self.close_segment();
            }
        }
    }

    fn close_segment(&mut self) {
        self.segments.push(Bloom::from_hashes_at(
            &self.current,
            SEGMENT_FALSE_POSITIVE_RATE,
        ));
        self.current.clear();
    }

    pub fn finish(mut self) -> RowIndex {
        if !self.rows.is_multiple_of(SEGMENT_ROWS as u64) {
            self.close_segment();
        }
        RowIndex::new(
            SEGMENT_ROWS as u32,
            self.rows,
            self.segments,
            self.templates.finish(),
            self.stored_variables.unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(ids: &[Option<String>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "trace_id",
            DataType::Utf8,
            true,
        )]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(ids.to_vec()))]).unwrap()
    }

    fn key(id: &str) -> Vec<String> {
        vec![super::super::bloom::index_key("trace_id", None, id)]
    }

    #[test]
    fn segments_find_their_rows_across_batches() {
        // 5,000 rows in batches of 700; row i holds trace i / 3 (null every 7th row).
        let ids: Vec<Option<String>> = (0..5_000)
            .map(|i| (i % 7 != 0).then(|| format!("{:032x}", i / 3)))
            .collect();
        let mut builder = RowIndexBuilder::new(Signal::Logs).unwrap();
        for chunk in ids.chunks(700) {
            builder.add_batch(&batch(chunk));
        }
        let index = builder.finish();
        assert_eq!(index.rows(), 5_000);
        assert_eq!(index.segments.len(), 3);
        let decoded = RowIndex::decode(&index.encode()).unwrap();
        assert_eq!(decoded, index);
        // Trace 700 is on rows 2100..2103: segment 1 only.
        assert_eq!(
            decoded.candidate_ranges(&[key(&format!("{:032x}", 700))]),
            vec![2048..4096]
        );
        // Trace 1666 is on rows 4998, 4999: the last, short segment.
        assert_eq!(
            decoded.candidate_ranges(&[key(&format!("{:032x}", 1666))]),
            vec![4096..5000]
        );
        // A disjunction of traces in segments 0 and 1 merges their ranges.
        let either = vec![
            key(&format!("{:032x}", 1))[0].clone(),
            key(&format!("{:032x}", 700))[0].clone(),
        ];
        assert_eq!(decoded.candidate_ranges(&[either]), vec![0..4096]);
        // Every trace is found where it is (no false negatives).
        for (row, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                let ranges = decoded.candidate_ranges(&[key(id)]);
                assert!(
                    ranges.iter().any(|r| r.contains(&(row as u64))),
                    "row {row}"
                );
            }
        }
        let absent = (0..1_000)
            .filter(|i| {
                !decoded
                    .candidate_ranges(&[key(&format!("absent{i}"))])
                    .is_empty()
            })
            .count();
        assert!(absent < 50, "false positives: {absent} of 1000");
    }

    #[test]
    fn template_lists_round_trip_and_older_files_still_read() {
        use crate::storage::line_template::{self, STORED_VARIABLES};
        let lines: arrow::array::ArrayRef =
            Arc::new(StringArray::from(vec!["took 12 ms", "took 7 ms", "done"]));
        let derived = line_template::template_columns(&lines);
        let mut fields = vec![Field::new(
            line_template::TEMPLATE_COLUMN,
            line_template::template_type(),
            true,
        )];
        fields.extend(
            (0..STORED_VARIABLES)
                .map(|k| Field::new(line_template::variable_column(k), DataType::Utf8, true)),
        );
        let mut columns = vec![derived.templates];
        columns.extend(derived.variables);
        let stored = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let mut builder = RowsSidecarBuilder::new(Signal::Logs).unwrap();
        builder
            .add_batch(&batch(&[None, Some("a".into()), None]))
            .unwrap();
        builder.add_stored(&stored);
        let decoded = RowIndex::decode(&builder.finish()).unwrap();
        assert_eq!(
            decoded.templates(),
            Some(&["done".to_string(), "took \u{11} ms".to_string()][..])
        );
        assert_eq!(decoded.stored_variables(), STORED_VARIABLES);
        assert_eq!(RowIndex::decode(&decoded.encode()).unwrap(), decoded);

        // A version 2 file: the same, without the variables.
        let mut v2 = decoded.encode();
        v2.truncate(v2.len() - 8);
        v2[..8].copy_from_slice(MAGIC_V2);
        crate::storage::checksum::append_crc32(&mut v2);
        let older = RowIndex::decode(&v2).unwrap();
        assert_eq!(older.templates(), decoded.templates());
        assert_eq!(older.stored_variables(), 0);

        // A version 1 file: the same segments, no template section.
        let mut v1 = RowIndex::new(
            decoded.segment_rows,
            decoded.rows,
            decoded.segments.clone(),
            None,
            0,
        )
        .encode();
        v1.truncate(v1.len() - 12);
        v1[..8].copy_from_slice(MAGIC_V1);
        crate::storage::checksum::append_crc32(&mut v1);
        let old = RowIndex::decode(&v1).unwrap();
        assert_eq!(old.templates(), None);
        assert_eq!(old.segments, decoded.segments);
    }

    #[test]
    fn segments_are_sized_for_a_false_positive_rate_of_a_thousandth() {
        // 100 full segments of distinct ids; 2,000 absent ids looked up in
        // each: about 200 false segments at 0.1 % (2,000 at 1 %).
        let ids: Vec<Option<String>> = (0..100 * SEGMENT_ROWS)
            .map(|i| Some(format!("{i:032x}")))
            .collect();
        let mut builder = RowIndexBuilder::new(Signal::Logs).unwrap();
        builder.add_batch(&batch(&ids));
        let index = builder.finish();
        let false_segments: usize = (0..2_000)
            .map(|i| {
                index
                    .candidate_ranges(&[key(&format!("absent{i}"))])
                    .iter()
                    .map(|r| ((r.end - r.start) / SEGMENT_ROWS as u64) as usize)
                    .sum::<usize>()
            })
            .sum();
        assert!(
            (50..400).contains(&false_segments),
            "{false_segments} false segments of 200,000 lookups"
        );
        assert!(index.makes_parquet_blooms_redundant());
        // An index sized for 1 % (as written before) does not.
        let full: HashSet<u128> = (0..SEGMENT_ROWS as u128).collect();
        let coarse = RowIndex::new(
            SEGMENT_ROWS as u32,
            3 * SEGMENT_ROWS as u64,
            vec![Bloom::from_hashes(&full); 3],
            None,
            0,
        );
        assert!(!coarse.makes_parquet_blooms_redundant());
    }

    #[test]
    fn selection_covers_every_row_of_the_file() {
        let selection = row_selection(&[2048..4096, 6144..7000], 7000);
        assert_eq!(selection.row_count(), 2048 + 856);
        let total: usize = selection.iter().map(|s| s.row_count).sum();
        assert_eq!(total, 7000);
        assert_eq!(row_selection(&[], 10).row_count(), 0);
        let whole: Vec<Range<u64>> = std::iter::once(0..10).collect();
        assert_eq!(row_selection(&whole, 10).row_count(), 10);
    }

    #[test]
    fn damaged_or_truncated_files_are_refused() {
        let mut builder = RowIndexBuilder::new(Signal::Logs).unwrap();
        builder.add_batch(&batch(&[Some("a".into()), None, Some("b".into())]));
        let bytes = builder.finish().encode();
        let mut damaged = bytes.clone();
        damaged[30] ^= 1;
        assert!(RowIndex::decode(&damaged).is_err());
        assert!(RowIndex::decode(&bytes[..bytes.len() - 9]).is_err());
        assert!(RowIndex::decode(b"O11RIX01").is_err());
        assert!(RowIndexBuilder::new(Signal::Samples).is_none());
        assert!(covers(Signal::Logs, "trace_id=abc"));
        assert!(!covers(Signal::Logs, "trace_idx=abc"));
        assert!(!covers(Signal::Logs, "labels[trace_id]=abc"));
        assert!(!covers(Signal::Spans, "trace_id=abc"));
    }
}
