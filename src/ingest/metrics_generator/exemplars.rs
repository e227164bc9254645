//! Exemplars in memory: the trace ids the metrics generator attaches to its
//! histogram buckets, kept per tenant and series (the last
//! `max_exemplars_per_series` of each, up to `max_exemplar_series` series per
//! tenant), and found again by PromQL selectors for
//! `/api/v1/query_exemplars`. Nothing here is written to disk: a restart
//! starts with none.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use promql_parser::label::Matcher;

use super::registry::{Exemplar, Labels};
use crate::query::promql::fetch::set_matches;

/// One stored exemplar.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredExemplar {
    /// The exemplar's own labels: `traceID`.
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: i64,
}

/// The label Tempo's generator names the trace id with.
pub const TRACE_ID_LABEL: &str = "traceID";

#[derive(Debug)]
pub struct ExemplarStore {
    per_series: usize,
    max_series: usize,
    tenants: Mutex<HashMap<String, HashMap<Labels, VecDeque<StoredExemplar>>>>,
}

impl ExemplarStore {
    pub fn new(per_series: usize, max_series: usize) -> Self {
        ExemplarStore {
            per_series,
            max_series,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `exemplars` (series labels with `__name__`) at `timestamp_ms`;
    /// returns how many were refused because the tenant holds
    /// `max_exemplar_series` series already.
    pub fn add(&self, tenant: &str, exemplars: Vec<(Labels, Exemplar)>, timestamp_ms: i64) -> u64 {
        if self.per_series == 0 || exemplars.is_empty() {
            return 0;
        }
        let mut tenants = self.tenants.lock();
        let series = tenants.entry(tenant.to_string()).or_default();
        let mut refused = 0;
        for (labels, e) in exemplars {
            let len = series.len();
            let ring = match series.get_mut(&labels) {
                Some(ring) => ring,
                None if len >= self.max_series => {
                    refused += 1;
                    continue;
                }
                None => series.entry(labels).or_default(),
            };
            if ring.len() == self.per_series {
                ring.pop_front();
            }
            ring.push_back(StoredExemplar {
                labels: vec![(TRACE_ID_LABEL.to_string(), e.trace_id)],
                value: e.value,
                timestamp_ms,
            });
        }
        refused
    }

    /// The exemplars in `[start_ms, end_ms]` of the series that match any
    /// of the selectors (each a list of alternative matcher sets), series
    /// in label order, exemplars in time order.
    pub fn query(
        &self,
        tenant: &str,
        selectors: &[Vec<Vec<Matcher>>],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<(Labels, Vec<StoredExemplar>)> {
        let tenants = self.tenants.lock();
        let Some(series) = tenants.get(tenant) else {
            return Vec::new();
        };
        let mut out: Vec<(Labels, Vec<StoredExemplar>)> = series
            .iter()
            .filter(|(labels, _)| {
                selectors
                    .iter()
                    .any(|sets| sets.iter().any(|set| set_matches(set, labels)))
            })
            .map(|(labels, ring)| {
                let found = ring
                    .iter()
                    .filter(|e| e.timestamp_ms >= start_ms && e.timestamp_ms <= end_ms)
                    .cloned()
                    .collect::<Vec<_>>();
                (labels.clone(), found)
            })
            .filter(|(_, found)| !found.is_empty())
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use promql_parser::label::MatchOp;

    use super::*;

    fn labels(name: &str, service: &str) -> Labels {
        vec![
            ("__name__".to_string(), name.to_string()),
            ("service".to_string(), service.to_string()),
        ]
    }

    #[test]
    fn keeps_the_last_n_per_series_and_matches_selectors() {
        let store = ExemplarStore::new(2, 2);
        let ex = |t: &str| Exemplar {
            trace_id: t.into(),
            value: 1.0,
        };
        for (i, t) in ["t1", "t2", "t3"].iter().enumerate() {
            store.add("a", vec![(labels("m", "x"), ex(t))], i as i64 * 1000);
        }
        store.add("a", vec![(labels("m", "y"), ex("t4"))], 5000);
        assert_eq!(store.add("a", vec![(labels("m", "z"), ex("t5"))], 5000), 1);
        let sel = |op, v: &str| vec![vec![vec![Matcher::new(op, "service", v)]]];
        let got = store.query("a", &sel(MatchOp::Equal, "x"), 0, 10_000);
        let ids: Vec<&str> = got[0].1.iter().map(|e| e.labels[0].1.as_str()).collect();
        assert_eq!(ids, ["t2", "t3"]);
        let got = store.query("a", &sel(MatchOp::NotEqual, "nope"), 1500, 5000);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.len(), 1, "t2 at 1000 is outside the range");
        assert!(
            store
                .query("b", &sel(MatchOp::Equal, "x"), 0, 10_000)
                .is_empty()
        );
    }
}
