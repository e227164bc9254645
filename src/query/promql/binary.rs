//! PromQL binary operators: arithmetic, comparisons (filtering or `bool`),
//! `and`/`or`/`unless`, over scalars and instant vectors. Vector–vector
//! operations match series per step by their matching labels (`on`,
//! `ignoring`), one-to-one or many-to-one/one-to-many (`group_left`,
//! `group_right`), with Prometheus' errors for ambiguous matches.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::PromError;
use super::eval::{Evaluator, StepSeries, Val};
use super::value::{Hist, Labels, METRIC_NAME, sort_labels};

pub fn binary(ev: &mut Evaluator<'_>, b: &BinaryExpr, times: &[i64]) -> Result<Val, PromError> {
    let op = b.op.id();
    if let Some(m) = &b.modifier
        && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
    {
        return Err(PromError::BadData(
            "the fill(), fill_left() and fill_right() binary operator modifiers are not supported by o11ydb".into(),
        ));
    }
    let lhs = ev.eval(&b.lhs, times)?;
    let rhs = ev.eval(&b.rhs, times)?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let comparison = b.op.is_comparison_operator();
    let operation = Operation {
        op,
        return_bool,
        zero_division_nan: ev.zero_division_nan,
    };
    let mut incompatible: Vec<String> = Vec::new();
    let result = match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&l, &r)| {
                    let (v, keep) = apply(op, l, r, ev.zero_division_nan);
                    if comparison {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(v), Val::Scalar(s)) => {
            Ok(vector_scalar(operation, v, &s, false, &mut incompatible))
        }
        (Val::Scalar(s), Val::Vector(v)) => {
            Ok(vector_scalar(operation, v, &s, true, &mut incompatible))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
            let card = b
                .modifier
                .as_ref()
                .map(|m| m.card.clone())
                .unwrap_or(VectorMatchCardinality::OneToOne);
            match op {
                T_LAND | T_LOR | T_LUNLESS => Ok(set_operation(op, l, r, matching, times.len())),
                _ => vector_vector(
                    operation,
                    l,
                    r,
                    matching,
                    &card,
                    times.len(),
                    &mut incompatible,
                ),
            }
        }
        (l, r) => Err(PromError::BadData(format!(
            "binary expression must contain only scalar and instant vector types, got {} {} {}",
            l.type_name(),
            b.op,
            r.type_name()
        ))),
    };
    // Prometheus annotates at the expression's start.
    let at = ev.position_of(&b.lhs.to_string());
    for kinds in incompatible {
        ev.info(format!(
            "PromQL info: incompatible sample types encountered for binary operator {:?}: {kinds} {at}",
            b.op.to_string()
        ));
    }
    result
}

/// Notes `l op r` on sample kinds no operator result exists for.
fn note_incompatible(notes: &mut Vec<String>, op: u16, left: &str, right: &str) {
    let text = format!("{left} {} {right}", op_text(op));
    if !notes.contains(&text) {
        notes.push(text);
    }
}

fn op_text(op: u16) -> String {
    promql_parser::parser::token::TokenType::new(op).to_string()
}

/// One operation on two floats: (result, keep) — comparisons keep the
/// left value when true.
/// A binary operator with its modifiers that change per-value results.
#[derive(Debug, Clone, Copy)]
struct Operation {
    op: u16,
    /// `bool` after a comparison: 0/1 instead of filtering.
    return_bool: bool,
    /// `x / 0`, `x % 0` are NaN (LogQL).
    zero_division_nan: bool,
}

fn apply(op: u16, l: f64, r: f64, zero_division_nan: bool) -> (f64, bool) {
    if zero_division_nan && r == 0.0 && matches!(op, T_DIV | T_MOD) {
        return (f64::NAN, true);
    }
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (l % r, true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn is_comparison(op: u16) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

fn vector_scalar(
    operation: Operation,
    series: Vec<StepSeries>,
    scalar: &[f64],
    scalar_left: bool,
    incompatible: &mut Vec<String>,
) -> Val {
    let Operation {
        op,
        return_bool,
        zero_division_nan,
    } = operation;
    let comparison = is_comparison(op);
    Val::Vector(
        series
            .into_iter()
            .filter_map(|mut s| {
                for (i, slot) in s.histograms.iter_mut().enumerate() {
                    let Some(h) = slot.as_ref() else { continue };
                    *slot = histogram_scalar(op, h, scalar[i], scalar_left, return_bool);
                    if slot.is_none() {
                        let (l, r) = if scalar_left {
                            ("float", "histogram")
                        } else {
                            ("histogram", "float")
                        };
                        note_incompatible(incompatible, op, l, r);
                    }
                }
                for (i, slot) in s.values.iter_mut().enumerate() {
                    let Some(v) = *slot else { continue };
                    let (l, r) = if scalar_left {
                        (scalar[i], v)
                    } else {
                        (v, scalar[i])
                    };
                    let (mut result, keep) = apply(op, l, r, zero_division_nan);
                    if comparison && scalar_left {
                        result = v;
                    }
                    *slot = if return_bool {
                        Some(if keep { 1.0 } else { 0.0 })
                    } else if keep {
                        Some(result)
                    } else {
                        None
                    };
                }
                if !comparison || return_bool {
                    s.drop_name = true;
                }
                s.any_sample().then_some(s)
            })
            .collect(),
    )
}

/// `h op x` (or `x op h` with `scalar_left`) for a histogram and a float:
/// `h * x`, `x * h` and `h / x` scale the histogram; other operators have
/// no histogram result (the sample is dropped, as Prometheus does).
fn histogram_scalar(
    op: u16,
    h: &Hist,
    x: f64,
    scalar_left: bool,
    return_bool: bool,
) -> Option<Hist> {
    if return_bool {
        return None;
    }
    let mut out = h.as_ref().clone();
    match op {
        T_MUL => out.mul(x),
        T_DIV if !scalar_left => out.div(x),
        _ => return None,
    }
    Some(Hist::new(out))
}

/// The matching key of a series: the `on` labels, or all but the
/// `ignoring` labels and the name.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> String {
    let mut key = String::new();
    let mut push = |n: &str, v: &str| {
        key.push_str(n);
        key.push('\u{1}');
        key.push_str(v);
        key.push('\u{2}');
    };
    match matching {
        Some(LabelModifier::Include(names)) => {
            let mut names: Vec<&String> = names.labels.iter().collect();
            names.sort();
            names.dedup();
            for n in names {
                let v = labels
                    .iter()
                    .find(|(l, _)| l == n)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("");
                push(n, v);
            }
        }
        Some(LabelModifier::Exclude(names)) => {
            for (n, v) in labels {
                if n != METRIC_NAME && !names.labels.contains(n) {
                    push(n, v);
                }
            }
        }
        None => {
            for (n, v) in labels {
                if n != METRIC_NAME {
                    push(n, v);
                }
            }
        }
    }
    key
}

fn set_operation(
    op: u16,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    matching: Option<&LabelModifier>,
    steps: usize,
) -> Val {
    let lsig: Vec<String> = lhs.iter().map(|s| signature(&s.labels, matching)).collect();
    let rsig: Vec<String> = rhs.iter().map(|s| signature(&s.labels, matching)).collect();
    let present_at =
        |series: &[StepSeries], sigs: &[String], i: usize| -> std::collections::HashSet<String> {
            series
                .iter()
                .zip(sigs)
                .filter(|(s, _)| s.has_sample(i))
                .map(|(_, k)| k.clone())
                .collect()
        };
    match op {
        T_LAND | T_LUNLESS => {
            let mut out = lhs;
            for i in 0..steps {
                let right = present_at(&rhs, &rsig, i);
                for (s, k) in out.iter_mut().zip(&lsig) {
                    if right.contains(k) != (op == T_LAND) {
                        s.clear_step(i);
                    }
                }
            }
            out.retain(StepSeries::any_sample);
            Val::Vector(out)
        }
        _ => {
            let mut right = rhs;
            for i in 0..steps {
                let left = present_at(&lhs, &lsig, i);
                for (s, k) in right.iter_mut().zip(&rsig) {
                    if left.contains(k) {
                        s.clear_step(i);
                    }
                }
            }
            let mut out = lhs;
            out.extend(right.into_iter().filter(StepSeries::any_sample));
            Val::Vector(out)
        }
    }
}

fn vector_vector(
    operation: Operation,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    matching: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    steps: usize,
    incompatible: &mut Vec<String>,
) -> Result<Val, PromError> {
    let Operation {
        op,
        return_bool,
        zero_division_nan,
    } = operation;
    let comparison = is_comparison(op);
    // The "many" side drives the output; the "one" side is looked up.
    let (many, one, swapped) = match card {
        VectorMatchCardinality::OneToMany(_) => (&rhs, &lhs, true),
        _ => (&lhs, &rhs, false),
    };
    let include: &[String] = match card {
        VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => &l.labels,
        _ => &[],
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let many_sig: Vec<String> = many
        .iter()
        .map(|s| signature(&s.labels, matching))
        .collect();
    let one_sig: Vec<String> = one.iter().map(|s| signature(&s.labels, matching)).collect();
    let mut out: Vec<StepSeries> = Vec::new();
    let mut out_index: HashMap<(usize, usize), usize> = HashMap::new();
    let mut by_labels: crate::model::labels::LabelsMap<Labels, usize> = Default::default();
    for i in 0..steps {
        let mut one_at: HashMap<&str, usize> = HashMap::new();
        for (j, s) in one.iter().enumerate() {
            if !s.has_sample(i) {
                continue;
            }
            if let Some(&prev) = one_at.get(one_sig[j].as_str()) {
                let side = if swapped { "left" } else { "right" };
                return Err(PromError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    group_text(&one[j].labels, matching),
                    labels_text(&one[prev].labels),
                    labels_text(&one[j].labels),
                )));
            }
            one_at.insert(&one_sig[j], j);
        }
        let mut matched_sigs: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (m, s) in many.iter().enumerate() {
            if !s.has_sample(i) {
                continue;
            }
            let Some(&o) = one_at.get(many_sig[m].as_str()) else {
                continue;
            };
            if one_to_one && !matched_sigs.insert(&many_sig[m]) {
                return Err(PromError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            let (ls, rs) = if swapped { (&one[o], s) } else { (s, &one[o]) };
            let value = match (ls.values[i], rs.values[i], ls.histogram(i), rs.histogram(i)) {
                (Some(l), Some(r), _, _) => {
                    let (value, keep) = apply(op, l, r, zero_division_nan);
                    if return_bool {
                        Some(Sampled::Float(if keep { 1.0 } else { 0.0 }))
                    } else if keep {
                        Some(Sampled::Float(value))
                    } else {
                        None
                    }
                }
                (_, _, Some(l), Some(r)) => {
                    let result = histogram_histogram(op, l, r, return_bool);
                    if result.is_none() && !matches!(op, T_EQLC | T_NEQ) {
                        note_incompatible(incompatible, op, "histogram", "histogram");
                    }
                    result
                }
                (_, Some(x), Some(h), None) => {
                    let result = histogram_scalar(op, h, x, false, return_bool);
                    if result.is_none() {
                        note_incompatible(incompatible, op, "histogram", "float");
                    }
                    result.map(Sampled::Histogram)
                }
                (Some(x), _, None, Some(h)) => {
                    let result = histogram_scalar(op, h, x, true, return_bool);
                    if result.is_none() {
                        note_incompatible(incompatible, op, "float", "histogram");
                    }
                    result.map(Sampled::Histogram)
                }
                _ => None,
            };
            let Some(value) = value else { continue };
            let slot = match out_index.get(&(m, o)) {
                Some(&slot) => slot,
                None => {
                    let labels =
                        result_labels(&s.labels, &one[o].labels, matching, one_to_one, include);
                    let drop_name = !comparison || return_bool || s.drop_name;
                    let slot = *by_labels.entry(labels.clone()).or_insert_with(|| {
                        out.push(StepSeries {
                            histograms: Vec::new(),
                            labels,
                            values: vec![None; steps],
                            drop_name,
                        });
                        out.len() - 1
                    });
                    out_index.insert((m, o), slot);
                    slot
                }
            };
            if out[slot].has_sample(i) {
                return Err(PromError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            match value {
                Sampled::Float(v) => out[slot].values[i] = Some(v),
                Sampled::Histogram(h) => out[slot].set_histogram(i, h),
            }
        }
    }
    Ok(Val::Vector(out))
}

/// A result sample of a vector–vector operation.
enum Sampled {
    Float(f64),
    Histogram(Hist),
}

/// `l + r`, `l - r` of two histograms; `==`/`!=` keep the left one when
/// true (or answer 1/0 with `bool`); other operators and incompatible
/// layouts give no result.
fn histogram_histogram(op: u16, l: &Hist, r: &Hist, return_bool: bool) -> Option<Sampled> {
    if matches!(op, T_EQLC | T_NEQ) {
        let equal = l.equals_for_test_eps(r, false, 0.0);
        let keep = equal == (op == T_EQLC);
        return if return_bool {
            Some(Sampled::Float(if keep { 1.0 } else { 0.0 }))
        } else {
            keep.then(|| Sampled::Histogram(l.clone()))
        };
    }
    if return_bool {
        return None;
    }
    let mut out = l.as_ref().clone();
    let combined = match op {
        T_ADD => out.add(r),
        T_SUB => out.sub(r),
        _ => return None,
    };
    combined.ok()?;
    out.compact(0);
    Some(Sampled::Histogram(Hist::new(out)))
}

/// Labels of a result: the "many" side's, narrowed to the `on` labels (or
/// without the `ignoring` ones) for one-to-one matches, plus the
/// `group_left`/`group_right` labels copied from the "one" side.
fn result_labels(
    many: &Labels,
    one: &Labels,
    matching: Option<&LabelModifier>,
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut labels: Labels = many.clone();
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(names)) => labels.retain(|(n, _)| names.labels.contains(n)),
            Some(LabelModifier::Exclude(names)) => {
                labels.retain(|(n, _)| !names.labels.contains(n))
            }
            None => {}
        }
    }
    for name in include {
        labels.retain(|(n, _)| n != name);
        if let Some((_, v)) = one.iter().find(|(n, _)| n == name)
            && !v.is_empty()
        {
            labels.push((name.clone(), v.clone()));
        }
    }
    sort_labels(&mut labels);
    labels
}

fn labels_text(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn group_text(labels: &Labels, matching: Option<&LabelModifier>) -> String {
    let kept: Labels = match matching {
        Some(LabelModifier::Include(names)) => labels
            .iter()
            .filter(|(n, _)| names.labels.contains(n))
            .cloned()
            .collect(),
        Some(LabelModifier::Exclude(names)) => labels
            .iter()
            .filter(|(n, _)| n != METRIC_NAME && !names.labels.contains(n))
            .cloned()
            .collect(),
        None => labels
            .iter()
            .filter(|(n, _)| n != METRIC_NAME)
            .cloned()
            .collect(),
    };
    labels_text(&kept)
}
