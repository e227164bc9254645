//! Splitting a range query by time interval and merging the parts back.
//!
//! A range query evaluates its expression independently at every step
//! `start, start + step, …, ≤ end`; [`split_by_interval`] assigns each of
//! those points to the interval (`split_queries_by_interval`, aligned to the
//! epoch, so to UTC midnight for a day) it falls in, giving one part per
//! interval with the same step grid. [`merge_parts`] concatenates the parts'
//! matrices series by series, so the merged answer is point for point the
//! answer of the unsplit query.

use std::collections::HashMap;

use crate::query::promql::{Labels, QueryOutput, QueryValue, RangeSeries};

/// One part of a split range query: the grid points `start..=end`, `step` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub start: i64,
    pub end: i64,
}

/// The parts of the grid `start, start + step, … ≤ end`, one per
/// `interval`-aligned interval holding at least one point, in time order.
/// `interval <= 0` (splitting off) or a grid inside one interval gives one part.
pub fn split_by_interval(start: i64, end: i64, step: i64, interval: i64) -> Vec<Part> {
    debug_assert!(step > 0 && end >= start);
    let last_point = start + (end - start) / step * step;
    if interval <= 0 {
        return vec![Part {
            start,
            end: last_point,
        }];
    }
    let mut parts = Vec::new();
    let mut cursor = start;
    while cursor <= last_point {
        let boundary = (cursor.div_euclid(interval) + 1).saturating_mul(interval);
        let last_in_interval = cursor + (boundary - 1 - cursor) / step * step;
        let part_end = last_in_interval.min(last_point);
        parts.push(Part {
            start: cursor,
            end: part_end,
        });
        cursor = part_end + step;
    }
    parts
}

/// Joins the answers of consecutive parts (in time order) into one matrix:
/// a series' points from every part, annotations once each.
pub fn merge_parts(parts: Vec<QueryOutput>) -> Result<QueryOutput, String> {
    let mut series: Vec<RangeSeries> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut infos: Vec<String> = Vec::new();
    for part in parts {
        let QueryValue::Matrix(matrix) = part.value else {
            return Err(format!(
                "a part of a split range query answered a {}, not a matrix",
                part.value.result_type()
            ));
        };
        for s in matrix {
            match index.get(&s.labels) {
                Some(&i) => {
                    series[i].points.extend(s.points);
                    series[i].histograms.extend(s.histograms);
                }
                None => {
                    index.insert(s.labels.clone(), series.len());
                    series.push(s);
                }
            }
        }
        for w in part.warnings {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        for i in part.infos {
            if !infos.contains(&i) {
                infos.push(i);
            }
        }
    }
    series.sort_by(|a, b| crate::query::promql::value::compare_labels(&a.labels, &b.labels));
    Ok(QueryOutput {
        value: QueryValue::Matrix(series),
        warnings,
        infos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every grid point lands in exactly one part, in order, within its interval.
    #[test]
    fn parts_cover_the_grid_once() {
        let cases = [
            (0, 100, 10, 30),
            (5, 95, 10, 30),
            (7, 7, 3, 10),
            (-50, 50, 7, 20),
            (0, 1000, 1, 1000),
            (3, 1000, 400, 100),
            (1_000, 99_000, 15, 86_400),
        ];
        for (start, end, step, interval) in cases {
            let parts = split_by_interval(start, end, step, interval);
            let points: Vec<i64> = parts
                .iter()
                .flat_map(|p| (0..=(p.end - p.start) / step).map(move |k| p.start + k * step))
                .collect();
            let expected: Vec<i64> = (0..=(end - start) / step)
                .map(|k| start + k * step)
                .collect();
            assert_eq!(points, expected, "{start} {end} {step} {interval}");
            for p in &parts {
                assert_eq!(
                    p.start.div_euclid(interval),
                    p.end.div_euclid(interval),
                    "{p:?} crosses an interval boundary"
                );
                assert_eq!((p.start - start) % step, 0, "{p:?} is off the grid");
            }
        }
        assert_eq!(
            split_by_interval(0, 100, 10, 0),
            vec![Part { start: 0, end: 100 }]
        );
    }

    #[test]
    fn merge_concatenates_series_and_keeps_annotations_once() {
        let labels = |v: &str| Labels::from(vec![("a".to_string(), v.to_string())]);
        let part = |points: Vec<(&str, Vec<(i64, f64)>)>, warning: &str| QueryOutput {
            value: QueryValue::Matrix(
                points
                    .into_iter()
                    .map(|(l, p)| RangeSeries {
                        labels: labels(l),
                        points: p,
                        histograms: vec![],
                    })
                    .collect(),
            ),
            warnings: vec![warning.to_string()],
            infos: vec![],
        };
        let merged = merge_parts(vec![
            part(vec![("y", vec![(1, 1.0)]), ("x", vec![(1, 2.0)])], "w"),
            part(vec![("x", vec![(2, 3.0)]), ("z", vec![(2, 4.0)])], "w"),
        ])
        .unwrap();
        let QueryValue::Matrix(m) = merged.value else {
            panic!()
        };
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].labels, labels("x"));
        assert_eq!(m[0].points, vec![(1, 2.0), (2, 3.0)]);
        assert_eq!(m[2].labels, labels("z"));
        assert_eq!(merged.warnings, vec!["w".to_string()]);
        let scalar = QueryOutput {
            value: QueryValue::Scalar {
                timestamp: 0,
                value: 1.0,
            },
            warnings: vec![],
            infos: vec![],
        };
        assert!(merge_parts(vec![scalar]).unwrap_err().contains("scalar"));
    }
}
