//! The generator's series: cumulative counters and classic histograms per
//! label set, as Tempo's metrics-generator registry keeps them. Processors
//! add to them as spans arrive; every collection turns each series touched
//! since it last went stale into samples at one timestamp (a new series
//! first gets a 0 one millisecond earlier, so `rate()` and `increase()` see
//! its first increment) and hands over the exemplars recorded since the
//! previous collection.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::model::builders::{SamplesBuilder, canonical};

/// Sorted label pairs, without the metric name.
pub type Labels = Vec<(String, String)>;

/// An exemplar: the trace that produced an observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub trace_id: String,
    pub value: f64,
}

#[derive(Debug)]
struct Counter {
    value: f64,
    new: bool,
    updated_ms: i64,
}

#[derive(Debug)]
struct Histogram {
    bounds: Arc<[f64]>,
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    /// The last exemplar of each bucket since the previous collection.
    exemplars: Vec<Option<Exemplar>>,
    new: bool,
    updated_ms: i64,
}

/// What one collection produced.
#[derive(Debug)]
pub struct Collected {
    pub samples: RecordBatch,
    /// `(series labels with __name__, exemplar)`, at the collection time.
    pub exemplars: Vec<(Labels, Exemplar)>,
    pub series: usize,
}

#[derive(Debug, Default)]
pub struct Registry {
    counters: HashMap<(&'static str, Labels), Counter>,
    histograms: HashMap<(&'static str, Labels), Histogram>,
}

impl Registry {
    pub fn add(&mut self, name: &'static str, labels: Labels, v: f64, now_ms: i64) {
        let c = self.counters.entry((name, labels)).or_insert(Counter {
            value: 0.0,
            new: true,
            updated_ms: now_ms,
        });
        c.value += v;
        c.updated_ms = now_ms;
    }

    /// Observes `v` in the histogram `name` (`_bucket`, `_sum`, `_count`
    /// series), keeping `trace_id` as the bucket's exemplar.
    pub fn observe(
        &mut self,
        name: &'static str,
        labels: Labels,
        bounds: &Arc<[f64]>,
        v: f64,
        trace_id: &str,
        now_ms: i64,
    ) {
        let h = self
            .histograms
            .entry((name, labels))
            .or_insert_with(|| Histogram {
                bounds: bounds.clone(),
                counts: vec![0; bounds.len() + 1],
                sum: 0.0,
                count: 0,
                exemplars: vec![None; bounds.len() + 1],
                new: true,
                updated_ms: now_ms,
            });
        let bucket = h
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(h.bounds.len());
        h.counts[bucket] += 1;
        h.sum += v;
        h.count += 1;
        h.exemplars[bucket] = Some(Exemplar {
            trace_id: trace_id.to_string(),
            value: v,
        });
        h.updated_ms = now_ms;
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.histograms.is_empty()
    }

    /// Drops series not updated since `stale_before_ms`, then writes every
    /// series at `now_ms`.
    pub fn collect(&mut self, now_ms: i64, stale_before_ms: i64) -> Collected {
        self.counters.retain(|_, c| c.updated_ms >= stale_before_ms);
        self.histograms
            .retain(|_, h| h.updated_ms >= stale_before_ms);
        let mut b = SamplesBuilder::new();
        let mut exemplars = Vec::new();
        let mut series = 0;
        let mut write = |name: &str, labels: &Labels, v: f64, new: bool| {
            let labels = canonical(labels.clone());
            if new {
                b.push_series(name, &labels, &[(now_ms - 1, 0.0), (now_ms, v)]);
            } else {
                b.push_series(name, &labels, &[(now_ms, v)]);
            }
            series += 1;
        };
        for ((name, labels), c) in &mut self.counters {
            write(name, labels, c.value, c.new);
            c.new = false;
        }
        for ((name, labels), h) in &mut self.histograms {
            write(&format!("{name}_sum"), labels, h.sum, h.new);
            write(&format!("{name}_count"), labels, h.count as f64, h.new);
            let bucket_name = format!("{name}_bucket");
            let mut cumulative = 0u64;
            for (i, n) in h.counts.iter().enumerate() {
                cumulative += n;
                let le = h
                    .bounds
                    .get(i)
                    .map_or("+Inf".to_string(), |b| format!("{b}"));
                let mut with_le = labels.clone();
                with_le.push(("le".to_string(), le));
                let with_le = canonical(with_le);
                write(&bucket_name, &with_le, cumulative as f64, h.new);
                if let Some(e) = h.exemplars[i].take() {
                    let mut series_labels = with_le;
                    series_labels.push(("__name__".to_string(), bucket_name.clone()));
                    exemplars.push((canonical(series_labels), e));
                }
            }
            h.new = false;
        }
        Collected {
            samples: b.finish(),
            exemplars,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;

    use super::*;

    #[test]
    fn histograms_are_cumulative_with_exemplars_per_bucket() {
        let mut r = Registry::default();
        let bounds: Arc<[f64]> = Arc::from(vec![0.1, 0.2]);
        let l = vec![("service".to_string(), "a".to_string())];
        r.observe("lat", l.clone(), &bounds, 0.05, "t1", 1000);
        r.observe("lat", l.clone(), &bounds, 0.15, "t2", 1000);
        r.observe("lat", l.clone(), &bounds, 5.0, "t3", 1000);
        r.add("calls", l.clone(), 3.0, 1000);
        let c = r.collect(2000, 0);
        // sum, count, 3 buckets, 1 counter; each new: a 0 and the value.
        assert_eq!(c.series, 6);
        assert_eq!(c.samples.num_rows(), 12);
        let mut exemplars: Vec<(String, String)> = c
            .exemplars
            .iter()
            .map(|(labels, e)| {
                let le = labels.iter().find(|(k, _)| k == "le").unwrap().1.clone();
                (le, e.trace_id.clone())
            })
            .collect();
        exemplars.sort();
        assert_eq!(
            exemplars,
            vec![
                ("+Inf".into(), "t3".into()),
                ("0.1".into(), "t1".into()),
                ("0.2".into(), "t2".into())
            ]
        );
        let values = c.samples.column(3).as_primitive::<Float64Type>();
        let total: f64 = values.iter().flatten().sum();
        // sum 5.2 + count 3 + buckets 1, 2, 3 + calls 3.
        assert!((total - (5.2 + 3.0 + 6.0 + 3.0)).abs() < 1e-9, "{total}");
        // The next collection: no zeros, no exemplars; stale series go.
        let c = r.collect(3000, 0);
        assert_eq!((c.samples.num_rows(), c.exemplars.len()), (6, 0));
        let c = r.collect(4000, 1500);
        assert_eq!(c.series, 0);
        assert!(r.is_empty());
    }
}
