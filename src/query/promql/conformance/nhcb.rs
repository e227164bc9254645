//! `load_with_nhcb` (FORMAT §4.3): the classic histogram families of a load
//! block (`X_bucket{le=…}`, `X_sum`, `X_count` sharing their other labels)
//! → one native histogram with custom buckets (schema −53) per sample
//! position, under the base name `X`, as Prometheus' NHCB conversion builds
//! them.

use std::collections::BTreeMap;

use super::script::{Item, SeriesDef};
use crate::model::histogram::{CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram, Span};
use crate::query::promql::eval::is_stale;
use crate::query::promql::functions::label;
use crate::query::promql::value::METRIC_NAME;

/// (metric, canonical labels without `__name__`, samples)
pub type Converted = (String, Vec<(String, String)>, Vec<(i64, FloatHistogram)>);

#[derive(Default)]
struct Family<'a> {
    /// (upper bound, the series' items)
    buckets: Vec<(f64, &'a [Item])>,
    sum: Option<&'a [Item]>,
    count: Option<&'a [Item]>,
}

/// The custom-bucket histograms of every family with buckets in `series`.
pub fn convert(series: &[SeriesDef], step: i64) -> Vec<Converted> {
    let mut families: BTreeMap<(String, Vec<(String, String)>), Family> = BTreeMap::new();
    for def in series {
        let metric = label(&def.labels, METRIC_NAME);
        let others = |skip_le: bool| -> Vec<(String, String)> {
            def.labels
                .iter()
                .filter(|(n, _)| n != METRIC_NAME && !(skip_le && n == "le"))
                .cloned()
                .collect()
        };
        if let Some(base) = metric.strip_suffix("_bucket") {
            let Some(le) = def.labels.iter().find(|(n, _)| n == "le") else {
                continue;
            };
            let Some(upper) = parse_le(&le.1) else {
                continue;
            };
            families
                .entry((base.to_string(), others(true)))
                .or_default()
                .buckets
                .push((upper, &def.items));
        } else if let Some(base) = metric.strip_suffix("_sum") {
            families
                .entry((base.to_string(), others(false)))
                .or_default()
                .sum = Some(&def.items);
        } else if let Some(base) = metric.strip_suffix("_count") {
            families
                .entry((base.to_string(), others(false)))
                .or_default()
                .count = Some(&def.items);
        }
    }
    let mut out = Vec::new();
    for ((metric, labels), family) in families {
        if family.buckets.is_empty() {
            continue;
        }
        let positions = family
            .buckets
            .iter()
            .map(|(_, items)| items.len())
            .max()
            .unwrap_or(0);
        let mut samples = Vec::new();
        for i in 0..positions {
            if let Some(h) = histogram_at(&family, i) {
                samples.push((i as i64 * step, h));
            }
        }
        if !samples.is_empty() {
            out.push((metric, labels, samples));
        }
    }
    out
}

fn value_at(items: &[Item], i: usize) -> Option<f64> {
    match items.get(i) {
        Some(Item::Value(v)) if !is_stale(*v) => Some(*v),
        _ => None,
    }
}

/// The family's histogram at position `i`, if its buckets have values there.
fn histogram_at(family: &Family, i: usize) -> Option<FloatHistogram> {
    let mut cumulative: Vec<(f64, f64)> = family
        .buckets
        .iter()
        .filter_map(|(upper, items)| value_at(items, i).map(|v| (*upper, v)))
        .collect();
    if cumulative.is_empty() {
        return None;
    }
    cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The same bound written twice (`0.2`, `2e-1`): the last one counts.
    cumulative.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            earlier.1 = later.1;
            true
        } else {
            false
        }
    });
    let mut custom_values = Vec::new();
    let mut buckets = Vec::new();
    let mut previous = 0.0;
    let mut total = 0.0;
    for &(upper, count) in &cumulative {
        if upper.is_finite() {
            custom_values.push(upper);
        }
        buckets.push(count - previous);
        previous = count;
        total = count;
    }
    if cumulative
        .last()
        .is_some_and(|(upper, _)| upper.is_finite())
    {
        // No +Inf bucket: an empty one closes the layout.
        buckets.push(0.0);
    }
    let count = family
        .count
        .and_then(|items| value_at(items, i))
        .unwrap_or(total);
    let sum = family
        .sum
        .and_then(|items| value_at(items, i))
        .unwrap_or(0.0);
    Some(FloatHistogram {
        counter_reset_hint: CounterResetHint::Unknown,
        schema: CUSTOM_BUCKETS_SCHEMA,
        count,
        sum,
        positive_spans: vec![Span {
            offset: 0,
            length: buckets.len() as u32,
        }],
        positive_buckets: buckets,
        custom_values,
        ..Default::default()
    })
}

fn parse_le(v: &str) -> Option<f64> {
    match v.trim().to_ascii_lowercase().as_str() {
        "+inf" | "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}
