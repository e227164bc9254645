//! The bytes a cached part of a range query is stored as: the full cache key
//! (so a hash collision in an external cache is detected, not served), the
//! annotations and the matrix, little-endian with `u32` lengths.

use crate::model::histogram::FloatHistogram;
use crate::query::promql::{QueryOutput, QueryValue, RangeSeries};

const MAGIC: &[u8; 8] = b"o11yqfe2";

/// Encodes a matrix answer under `key`; other result types are not cached.
pub fn encode(key: &str, output: &QueryOutput) -> Option<Vec<u8>> {
    let QueryValue::Matrix(series) = &output.value else {
        return None;
    };
    let points: usize = series.iter().map(|s| s.points.len()).sum();
    let mut out = Vec::with_capacity(64 + key.len() + points * 16 + series.len() * 64);
    out.extend_from_slice(MAGIC);
    put_str(&mut out, key);
    put_strings(&mut out, &output.warnings);
    put_strings(&mut out, &output.infos);
    put_len(&mut out, series.len());
    for s in series {
        put_len(&mut out, s.labels.len());
        for (name, value) in &s.labels {
            put_str(&mut out, name);
            put_str(&mut out, value);
        }
        put_len(&mut out, s.points.len());
        for (t, v) in &s.points {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        put_len(&mut out, s.histograms.len());
        let mut encoded = Vec::new();
        for (t, h) in &s.histograms {
            out.extend_from_slice(&t.to_le_bytes());
            encoded.clear();
            h.encode(&mut encoded);
            put_len(&mut out, encoded.len());
            out.extend_from_slice(&encoded);
        }
    }
    Some(out)
}

/// Decodes bytes written by [`encode`] if they were stored under `key`;
/// `None` for another key or damaged bytes (treated as a miss).
pub fn decode(key: &str, bytes: &[u8]) -> Option<QueryOutput> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC || r.string()? != key {
        return None;
    }
    let warnings = r.strings()?;
    let infos = r.strings()?;
    let n = r.len()?;
    let mut series = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let labels_len = r.len()?;
        let mut labels = Vec::with_capacity(labels_len.min(256));
        for _ in 0..labels_len {
            labels.push((r.string()?, r.string()?));
        }
        let points_len = r.len()?;
        let mut points = Vec::with_capacity(points_len.min(1 << 16));
        for _ in 0..points_len {
            let t = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
            let v = f64::from_bits(u64::from_le_bytes(r.take(8)?.try_into().ok()?));
            points.push((t, v));
        }
        let histograms_len = r.len()?;
        let mut histograms = Vec::with_capacity(histograms_len.min(1 << 16));
        for _ in 0..histograms_len {
            let t = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
            let len = r.len()?;
            let h = FloatHistogram::decode(r.take(len)?).ok()?;
            histograms.push((t, std::sync::Arc::new(h)));
        }
        series.push(RangeSeries {
            labels: labels.into(),
            points,
            histograms,
        });
    }
    (r.at == bytes.len()).then_some(QueryOutput {
        value: QueryValue::Matrix(series),
        warnings,
        infos,
    })
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_strings(out: &mut Vec<u8>, strings: &[String]) {
    put_len(out, strings.len());
    for s in strings {
        put_str(out, s);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn len(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            out.push(self.string()?);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_keys_and_damage() {
        let output = QueryOutput {
            value: QueryValue::Matrix(vec![RangeSeries {
                labels: vec![("__name__".into(), "up".into()), ("job".into(), "é".into())].into(),
                points: vec![(1, 1.5), (2, f64::NAN), (3, f64::NEG_INFINITY)],
                histograms: vec![(
                    4,
                    std::sync::Arc::new(FloatHistogram {
                        count: 3.0,
                        sum: 1.5,
                        positive_spans: vec![crate::model::histogram::Span {
                            offset: 1,
                            length: 2,
                        }],
                        positive_buckets: vec![1.0, 2.0],
                        ..Default::default()
                    }),
                )],
            }]),
            warnings: vec!["w".into()],
            infos: vec![],
        };
        let bytes = encode("k", &output).unwrap();
        let back = decode("k", &bytes).unwrap();
        let (QueryValue::Matrix(a), QueryValue::Matrix(b)) = (&output.value, &back.value) else {
            panic!()
        };
        assert_eq!(a[0].labels, b[0].labels);
        let bits = |s: &RangeSeries| -> Vec<(i64, u64)> {
            s.points.iter().map(|(t, v)| (*t, v.to_bits())).collect()
        };
        assert_eq!(bits(&a[0]), bits(&b[0]));
        assert_eq!(back.warnings, output.warnings);
        assert!(decode("other", &bytes).is_none());
        assert!(decode("k", &bytes[..bytes.len() - 1]).is_none());
        let scalar = QueryOutput {
            value: QueryValue::Scalar {
                timestamp: 0,
                value: 0.0,
            },
            warnings: vec![],
            infos: vec![],
        };
        assert!(encode("k", &scalar).is_none());
    }
}
