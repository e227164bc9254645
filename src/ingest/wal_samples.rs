//! The WAL's compact form of a `samples` batch: each row is its
//! `(series_id, timestamp, value)` and a series' metric name and labels are
//! written once per segment, in the first record that has the series.
//!
//! Remote write resends every series' labels with every sample; writing them
//! again into the WAL (and compressing them away) was a large part of ingest
//! CPU. The writer thread keeps the set of series already defined in the
//! current segment ([`DefinedSeries`]); replay reads a segment from its start,
//! so every reference resolves to a definition earlier in the same segment
//! ([`SeriesDefinitions`]). A segment is deleted only as a whole, so the
//! oldest segment kept never refers to one that is gone.
//!
//! Body layout (little-endian):
//! `[rows u32][definitions u32]`, the definitions
//! `[series_id i64][metric len u32][metric][pairs u32]([name len u32][name][value len u32][value])*`,
//! then `rows` series ids (i64), `rows` timestamps (i64 ms) and `rows`
//! values (f64 bits, so stale-marker NaNs survive).

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};

use crate::error::{Error, Result};
use crate::model::builders::SamplesBuilder;
use crate::model::labels::SeriesIdMap;

/// Series already defined in the segment being written.
#[derive(Default)]
pub struct DefinedSeries(SeriesIdMap<()>);

impl DefinedSeries {
    /// Forgets every definition: a new segment starts, or a failed write cut
    /// the current one back.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// Series definitions read so far from the segment being replayed.
#[derive(Default)]
pub struct SeriesDefinitions(SeriesIdMap<SeriesDefinition>);

struct SeriesDefinition {
    metric: String,
    labels: Vec<(String, String)>,
}

/// Whether `batch` can be written in this form: the samples schema, no nulls.
pub fn can_encode(batch: &RecordBatch) -> bool {
    let schema = crate::model::Signal::Samples.schema();
    batch.schema().fields() == schema.fields()
        && batch.columns().iter().zip(schema.fields()).all(|(c, f)| {
            if f.name() == HISTOGRAM_COLUMN {
                // Native histograms go as Arrow IPC.
                c.null_count() == c.len()
            } else {
                c.null_count() == 0
            }
        })
}

const HISTOGRAM_COLUMN: &str = "histogram";

/// Appends the body of a canonical `samples` batch to `out`, defining the
/// series `defined` does not know yet (and adding them to it).
pub fn encode(batch: &RecordBatch, defined: &mut DefinedSeries, out: &mut Vec<u8>) -> Result<()> {
    let column = |i: usize| batch.column(i).as_ref();
    let (Some(timestamps), Some(metrics), Some(labels), Some(values), Some(ids)) = (
        column(0).as_primitive_opt::<TimestampMillisecondType>(),
        column(1).as_string_opt::<i32>(),
        column(2).as_map_opt(),
        column(3).as_primitive_opt::<Float64Type>(),
        column(4).as_primitive_opt::<Int64Type>(),
    ) else {
        return Err(Error::Wal(
            "a samples batch does not have the samples schema".into(),
        ));
    };
    if [
        timestamps.null_count(),
        values.null_count(),
        ids.null_count(),
    ] != [0, 0, 0]
    {
        return Err(Error::Wal("a samples batch has null values".into()));
    }
    let rows = batch.num_rows();
    let start = out.len();
    out.extend_from_slice(&(rows as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let label_names = labels.keys().as_string::<i32>();
    let label_values = labels.values().as_string::<i32>();
    let offsets = labels.value_offsets();
    let mut definitions = 0u32;
    let mut previous = None;
    for (row, &id) in ids.values().iter().enumerate() {
        if previous == Some(id) {
            continue;
        }
        previous = Some(id);
        if defined.0.insert(id, ()).is_some() {
            continue;
        }
        definitions += 1;
        out.extend_from_slice(&id.to_le_bytes());
        put_str(out, metrics.value(row));
        let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
        out.extend_from_slice(&((to - from) as u32).to_le_bytes());
        for pair in from..to {
            put_str(out, label_names.value(pair));
            put_str(out, label_values.value(pair));
        }
    }
    out[start + 4..start + 8].copy_from_slice(&definitions.to_le_bytes());
    put_le_slice(out, ids.values(), i64::to_le_bytes);
    put_le_slice(out, timestamps.values(), i64::to_le_bytes);
    put_le_slice(out, values.values(), f64::to_le_bytes);
    Ok(())
}

/// Decodes a body written by [`encode`], registering its definitions first.
pub fn decode(body: &[u8], definitions: &mut SeriesDefinitions) -> Result<RecordBatch> {
    let mut reader = Reader {
        bytes: body,
        pos: 0,
    };
    let rows = reader.u32()? as usize;
    let defined = reader.u32()?;
    for _ in 0..defined {
        let id = reader.i64()?;
        let metric = reader.string()?;
        let pairs = reader.u32()? as usize;
        let mut labels = Vec::with_capacity(pairs.min(1024));
        for _ in 0..pairs {
            labels.push((reader.string()?, reader.string()?));
        }
        definitions
            .0
            .insert(id, SeriesDefinition { metric, labels });
    }
    let ids = reader.fixed(rows, i64::from_le_bytes)?;
    let timestamps = reader.fixed(rows, i64::from_le_bytes)?;
    let values = reader.fixed(rows, f64::from_le_bytes)?;
    if reader.pos != body.len() {
        return Err(Error::Wal(format!(
            "{} bytes after the samples",
            body.len() - reader.pos
        )));
    }
    let mut builder = SamplesBuilder::new();
    let mut run = Vec::new();
    let mut row = 0;
    while row < rows {
        let id = ids[row];
        let definition = definitions
            .0
            .get(&id)
            .ok_or_else(|| Error::Wal(format!("series {id} is not defined in this segment")))?;
        run.clear();
        while row < rows && ids[row] == id {
            run.push((timestamps[row], values[row]));
            row += 1;
        }
        builder.push_series_with_id(&definition.metric, &definition.labels, id, &run);
    }
    Ok(builder.finish())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_le_slice<T: Copy, const N: usize>(out: &mut Vec<u8>, values: &[T], le: fn(T) -> [u8; N]) {
    out.reserve(values.len() * N);
    for &v in values {
        out.extend_from_slice(&le(v));
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                Error::Wal(format!(
                    "samples body ends at byte {} but needs {n} more from byte {}",
                    self.bytes.len(),
                    self.pos
                ))
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|e| Error::Wal(format!("label text is not UTF-8: {e}")))
    }

    fn fixed<T>(&mut self, n: usize, from_le: fn([u8; 8]) -> T) -> Result<Vec<T>> {
        let bytes = self.take(n.saturating_mul(8))?;
        Ok(bytes
            .chunks_exact(8)
            .map(|chunk| from_le(chunk.try_into().unwrap()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Series<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [(i64, f64)]);

    fn batch(series: &[Series]) -> RecordBatch {
        let mut builder = SamplesBuilder::new();
        for (metric, labels, samples) in series {
            builder.push_series(metric, labels, samples);
        }
        builder.finish()
    }

    #[test]
    fn round_trip_defines_each_series_once_per_segment() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let first = batch(&[
            ("up", &[("job", "a")], &[(1, 1.0), (2, stale)]),
            ("up", &[("job", "b"), ("zone", "é")], &[(1, f64::INFINITY)]),
        ]);
        let second = batch(&[
            ("up", &[("job", "b"), ("zone", "é")], &[(3, -0.0)]),
            ("x_total", &[], &[(3, 7.5)]),
        ]);
        let mut defined = DefinedSeries::default();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode(&first, &mut defined, &mut a).unwrap();
        encode(&second, &mut defined, &mut b).unwrap();
        assert_eq!(u32::from_le_bytes(a[4..8].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()), 1);

        let mut definitions = SeriesDefinitions::default();
        let decoded = decode(&a, &mut definitions).unwrap();
        assert_eq!(decoded, first);
        let values = decoded.column(3).as_primitive::<Float64Type>();
        assert_eq!(values.value(1).to_bits(), stale.to_bits());
        assert_eq!(decode(&b, &mut definitions).unwrap(), second);

        // Read without the segment's earlier record, a reference does not resolve.
        let err = decode(&b, &mut SeriesDefinitions::default()).unwrap_err();
        assert!(err.to_string().contains("not defined"), "{err}");
    }

    #[test]
    fn sliced_batches_and_truncated_bodies() {
        let full = batch(&[
            ("m", &[("k", "1")], &[(1, 1.0), (2, 2.0)]),
            ("m", &[("k", "2")], &[(1, 3.0)]),
        ]);
        let slice = full.slice(1, 2);
        let mut body = Vec::new();
        encode(&slice, &mut DefinedSeries::default(), &mut body).unwrap();
        assert_eq!(
            decode(&body, &mut SeriesDefinitions::default()).unwrap(),
            slice
        );
        for cut in [0, 3, 9, body.len() - 1] {
            assert!(decode(&body[..cut], &mut SeriesDefinitions::default()).is_err());
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(decode(&longer, &mut SeriesDefinitions::default()).is_err());
    }
}
