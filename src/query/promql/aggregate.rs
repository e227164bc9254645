//! PromQL aggregation operators (`sum`, `avg`, `topk`, `count_values`, …
//! with `by`/`without`): input series → groups by their grouping labels →
//! one value per group and step, or (for `topk`, `bottomk`, `limitk`,
//! `limit_ratio`) the selected input series themselves.

use o11ydb_udfs::promql::stats;
use promql_parser::label::Labels as LabelNames;
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMIT_RATIO, T_LIMITK, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::{Evaluator, StepSeries, Val};
use super::functions::{scalar_arg, string_arg, valid_label_name, vector_arg};
use super::value::{Hist, Labels, METRIC_NAME, format_float as format_value, sort_labels};
use super::{PromError, native};
use crate::model::labels::LabelsMap;

pub fn aggregate(
    ev: &mut Evaluator<'_>,
    agg: &AggregateExpr,
    times: &[i64],
) -> Result<Val, PromError> {
    let op = agg.op.id();
    let name = agg.op.to_string();
    let param = match (&agg.param, op) {
        (Some(p), T_COUNT_VALUES) => Param::Label(string_arg(ev, p, times, &name)?),
        (Some(p), _) => Param::Numbers(scalar_arg(ev, p, times, &name)?),
        (None, _) => Param::None,
    };
    let input = vector_arg(ev, &agg.expr, times, &name)?;
    let keys: Vec<Labels> = input
        .iter()
        .map(|s| grouping_labels(&s.labels, agg.modifier.as_ref()))
        .collect();
    // Groups in order of first appearance.
    let mut group_of: LabelsMap<&Labels, usize> = Default::default();
    let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
    for (idx, key) in keys.iter().enumerate() {
        let g = *group_of.entry(key).or_insert_with(|| {
            groups.push((key.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(idx);
    }
    let steps = times.len();
    let has_histograms = input
        .iter()
        .any(|s| s.histograms.iter().any(Option::is_some));
    if has_histograms && matches!(op, T_SUM | T_AVG | T_COUNT | T_GROUP) {
        return Ok(per_group_with_histograms(
            ev, op, &name, &input, groups, steps,
        ));
    }
    if has_histograms && !matches!(op, T_COUNT_VALUES | T_LIMITK | T_LIMIT_RATIO) {
        let at = ev.position_of(&name);
        ev.info(format!(
            "PromQL info: ignored histogram in {name} aggregation {at}"
        ));
    }
    match (op, param) {
        (T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO, Param::Numbers(k)) => {
            let param_text = agg
                .param
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            select_series(op, &k, &param_text, input, &groups, steps, ev)
        }
        (T_COUNT_VALUES, Param::Label(label)) => {
            if !valid_label_name(&label) {
                return Err(PromError::Execution(format!(
                    "invalid label name {label:?}"
                )));
            }
            Ok(count_values(&label, &input, &groups, steps))
        }
        (T_QUANTILE, Param::Numbers(q)) => {
            if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                let at = ev.position_of("quantile");
                ev.warnings.push(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {} {at}",
                    format_value(*bad)
                ));
            }
            Ok(per_group(&input, groups, steps, |i, values| {
                stats::quantile(q[i], values)
            }))
        }
        (T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDDEV | T_STDVAR, _) => {
            Ok(per_group(&input, groups, steps, |_, values| {
                fold(op, values)
            }))
        }
        _ => Err(PromError::BadData(format!(
            "aggregation {name} is not supported by o11ydb"
        ))),
    }
}

enum Param {
    None,
    Numbers(Vec<f64>),
    Label(String),
}

/// The labels a series is grouped by: `by` keeps the listed ones, `without`
/// drops them and the metric name, no clause groups everything together.
fn grouping_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(names)) => labels
            .iter()
            .filter(|(n, _)| listed(names, n))
            .cloned()
            .collect(),
        Some(LabelModifier::Exclude(names)) => labels
            .iter()
            .filter(|(n, _)| n != METRIC_NAME && !listed(names, n))
            .cloned()
            .collect(),
    }
}

fn listed(names: &LabelNames, name: &str) -> bool {
    names.labels.iter().any(|l| l == name)
}

/// One output series per group; `f(step, present values)` per step.
fn per_group(
    input: &[StepSeries],
    groups: Vec<(Labels, Vec<usize>)>,
    steps: usize,
    f: impl Fn(usize, &[f64]) -> f64,
) -> Val {
    let mut out = Vec::with_capacity(groups.len());
    let mut buffer = Vec::new();
    for (labels, members) in groups {
        let values: Vec<Option<f64>> = (0..steps)
            .map(|i| {
                buffer.clear();
                buffer.extend(members.iter().filter_map(|&m| input[m].values[i]));
                (!buffer.is_empty()).then(|| f(i, &buffer))
            })
            .collect();
        if values.iter().any(Option::is_some) {
            // Grouping by a name still to be dropped keeps it to be dropped.
            let drop_name = labels.iter().any(|(n, _)| n == METRIC_NAME)
                && members.iter().any(|&m| input[m].drop_name);
            out.push(StepSeries {
                histograms: Vec::new(),
                labels,
                values,
                drop_name,
            });
        }
    }
    Val::Vector(out)
}

/// `sum`, `avg`, `count`, `group` over input holding native histograms:
/// per group and step, the floats fold as usual, the histograms sum (or
/// average) into a histogram, and a mix of both gives Prometheus' warning
/// and no value; `count` and `group` take both kinds.
fn per_group_with_histograms(
    ev: &mut Evaluator<'_>,
    op: u16,
    name: &str,
    input: &[StepSeries],
    groups: Vec<(Labels, Vec<usize>)>,
    steps: usize,
) -> Val {
    let mut out = Vec::with_capacity(groups.len());
    let mut floats = Vec::new();
    let mut histograms: Vec<&Hist> = Vec::new();
    for (labels, members) in groups {
        let mut series = StepSeries::floats(labels, vec![None; steps], false);
        for i in 0..steps {
            floats.clear();
            histograms.clear();
            for &m in &members {
                if let Some(h) = input[m].histogram(i) {
                    histograms.push(h);
                } else if let Some(v) = input[m].values[i] {
                    floats.push(v);
                }
            }
            let samples = floats.len() + histograms.len();
            if samples == 0 {
                continue;
            }
            if matches!(op, T_COUNT | T_GROUP) {
                series.values[i] = Some(if op == T_COUNT { samples as f64 } else { 1.0 });
                continue;
            }
            if histograms.is_empty() {
                series.values[i] = Some(fold(op, &floats));
                continue;
            }
            let at = ev.position_of(name);
            let problem = if !floats.is_empty() {
                Some(format!(
                    "PromQL warning: encountered a mix of histograms and floats for aggregation {at}"
                ))
            } else {
                match native::sum_histograms(&histograms, op == T_AVG) {
                    Ok(h) => {
                        series.set_histogram(i, h);
                        None
                    }
                    Err(e) => Some(format!("PromQL warning: {e} {at}")),
                }
            };
            if let Some(text) = problem {
                ev.warn(text);
            }
        }
        if series.any_sample() {
            series.drop_name = series.labels.iter().any(|(n, _)| n == METRIC_NAME)
                && members.iter().any(|&m| input[m].drop_name);
            out.push(series);
        }
    }
    Val::Vector(out)
}

fn fold(op: u16, values: &[f64]) -> f64 {
    let first = values[0];
    let rest = &values[1..];
    match op {
        T_SUM => {
            let mut acc = stats::SumAcc::new(first);
            rest.iter().for_each(|&v| acc.add(v));
            acc.value()
        }
        T_AVG => {
            let mut acc = stats::AvgAcc::new(first);
            rest.iter().for_each(|&v| acc.add(v));
            acc.value()
        }
        T_COUNT => values.len() as f64,
        T_GROUP => 1.0,
        T_MIN => rest
            .iter()
            .fold(first, |m, &v| if m > v || m.is_nan() { v } else { m }),
        T_MAX => rest
            .iter()
            .fold(first, |m, &v| if m < v || m.is_nan() { v } else { m }),
        T_STDDEV | T_STDVAR => {
            let mut acc = stats::VarianceAcc::new(first);
            rest.iter().for_each(|&v| acc.add(v));
            if op == T_STDDEV {
                acc.stddev()
            } else {
                acc.stdvar()
            }
        }
        _ => f64::NAN,
    }
}

/// `topk`, `bottomk`, `limitk`, `limit_ratio`: input series kept at the
/// steps where they are selected within their group. For instant queries
/// the output is ordered group by group, best first.
fn select_series(
    op: u16,
    param: &[f64],
    param_text: &str,
    input: Vec<StepSeries>,
    groups: &[(Labels, Vec<usize>)],
    steps: usize,
    ev: &mut Evaluator<'_>,
) -> Result<Val, PromError> {
    let mut keep = vec![vec![false; steps]; input.len()];
    let mut order: Vec<usize> = Vec::new();
    for i in 0..steps {
        let p = param[i];
        if p.is_nan() {
            return Err(PromError::Execution(
                if op == T_LIMIT_RATIO {
                    "Ratio value is NaN"
                } else {
                    "Parameter value is NaN"
                }
                .into(),
            ));
        }
        if op == T_LIMIT_RATIO && !(-1.0..=1.0).contains(&p) {
            let at = ev.position_of(param_text);
            let capped = p.clamp(-1.0, 1.0);
            ev.warnings.push(format!(
                "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {} {at}",
                format_value(p),
                format_value(capped)
            ));
        }
        for (_, members) in groups {
            // limitk and limit_ratio pick histograms too; topk and
            // bottomk rank floats only.
            let takes_histograms = matches!(op, T_LIMITK | T_LIMIT_RATIO);
            let mut present: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&m| {
                    input[m].values[i].is_some()
                        || (takes_histograms && input[m].histogram(i).is_some())
                })
                .collect();
            let chosen: Vec<usize> = match op {
                T_LIMIT_RATIO => {
                    let ratio = p.clamp(-1.0, 1.0);
                    present
                        .into_iter()
                        .filter(|&m| {
                            let offset = ratio_offset(&input[m].labels);
                            if ratio >= 0.0 {
                                offset < ratio
                            } else {
                                offset >= 1.0 + ratio
                            }
                        })
                        .collect()
                }
                _ => {
                    let k = if p >= present.len() as f64 {
                        present.len()
                    } else if p < 1.0 {
                        0
                    } else {
                        p as usize
                    };
                    if op == T_LIMITK {
                        present.truncate(k);
                        present
                    } else {
                        let value = |m: usize| input[m].values[i].unwrap_or(f64::NAN);
                        let top = op == T_TOPK;
                        // Best first, ties in input order: a total order,
                        // so the k best can be picked without sorting all.
                        let rank = |&a: &usize, &b: &usize| {
                            let (x, y) = (value(a), value(b));
                            match (x.is_nan(), y.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ if top => y.total_cmp(&x),
                                _ => x.total_cmp(&y),
                            }
                            .then(a.cmp(&b))
                        };
                        if k > 0 && k < present.len() {
                            present.select_nth_unstable_by(k - 1, rank);
                        }
                        present.truncate(k);
                        present.sort_unstable_by(rank);
                        present
                    }
                }
            };
            for m in chosen {
                keep[m][i] = true;
                if steps == 1 {
                    order.push(m);
                }
            }
        }
    }
    let mut slots: Vec<Option<StepSeries>> = input.into_iter().map(Some).collect();
    let mut out = Vec::new();
    let sequence: Vec<usize> = if steps == 1 {
        order
    } else {
        (0..slots.len()).collect()
    };
    for m in sequence {
        let Some(mut s) = slots[m].take() else {
            continue;
        };
        for (step, &k) in keep[m].iter().enumerate() {
            if !k {
                s.clear_step(step);
            }
        }
        if !matches!(op, T_LIMITK | T_LIMIT_RATIO) {
            s.histograms.clear();
        }
        if s.any_sample() {
            out.push(s);
        }
    }
    Ok(Val::Vector(out))
}

/// Where a series falls in [0, 1) for `limit_ratio`: its label hash scaled.
fn ratio_offset(labels: &Labels) -> f64 {
    let mut bytes = Vec::new();
    for (n, v) in labels {
        bytes.extend_from_slice(n.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(v.as_bytes());
        bytes.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&bytes, 0) as f64 / u64::MAX as f64
}

/// `count_values("label", v)`: per group and step, how many series have each value.
fn count_values(
    label: &str,
    input: &[StepSeries],
    groups: &[(Labels, Vec<usize>)],
    steps: usize,
) -> Val {
    let mut out: Vec<StepSeries> = Vec::new();
    let mut index: LabelsMap<Labels, usize> = Default::default();
    for (group_labels, members) in groups {
        for i in 0..steps {
            for &m in members {
                // A histogram counts by its text, as Prometheus prints it.
                let value = match (input[m].values[i], input[m].histogram(i)) {
                    (_, Some(h)) => h.to_prom_string(),
                    (Some(v), None) => format_value(v),
                    (None, None) => continue,
                };
                let mut labels: Labels = group_labels
                    .iter()
                    .filter(|(n, _)| n != label)
                    .cloned()
                    .collect();
                labels.push((label.to_string(), value));
                sort_labels(&mut labels);
                let slot = *index.entry(labels.clone()).or_insert_with(|| {
                    out.push(StepSeries {
                        histograms: Vec::new(),
                        labels,
                        values: vec![None; steps],
                        drop_name: false,
                    });
                    out.len() - 1
                });
                let count = out[slot].values[i].get_or_insert(0.0);
                *count += 1.0;
            }
        }
    }
    Val::Vector(out)
}
