//! What a scan can learn from the query's filters before reading anything:
//! a time range on the signal's time column and equalities on indexed
//! columns (`trace_id = '…'`, `metric = '…'`, `labels['job'] = '…'`). Both
//! are used to skip blocks (manifest time ranges, block blooms) and head
//! batches; the filters themselves stay in the plan (`Inexact` pushdown),
//! so this only has to be safe, never complete.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::model::Signal;
use crate::storage::bloom::{index_key, indexed_columns};

/// Inclusive time bounds in the signal's unit, and bloom keys that must all be present.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanPredicate {
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Each inner list is a disjunction (`IN` lists); the outer list a conjunction.
    pub required_keys: Vec<Vec<String>>,
}

impl ScanPredicate {
    pub fn from_filters(signal: Signal, filters: &[Expr]) -> Self {
        let mut p = ScanPredicate::default();
        for f in filters {
            p.add(signal, f);
        }
        p
    }

    fn add(&mut self, signal: Signal, expr: &Expr) {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                if *op == Operator::And {
                    self.add(signal, left);
                    self.add(signal, right);
                    return;
                }
                if let Some(keys) = disjunction_keys(signal, expr) {
                    self.required_keys.push(keys);
                    return;
                }
                let (col, lit, op) = match (left.as_ref(), right.as_ref()) {
                    (c, Expr::Literal(v, _)) => (c, v, *op),
                    (Expr::Literal(v, _), c) => match op.swap() {
                        Some(swapped) => (c, v, swapped),
                        None => return,
                    },
                    _ => return,
                };
                if is_column(col, signal.time_column())
                    && let Some(t) = time_value(signal, lit)
                {
                    match op {
                        Operator::Gt => self.raise_min(t.saturating_add(1)),
                        Operator::GtEq => self.raise_min(t),
                        Operator::Lt => self.lower_max(t.saturating_sub(1)),
                        Operator::LtEq => self.lower_max(t),
                        Operator::Eq => {
                            self.raise_min(t);
                            self.lower_max(t);
                        }
                        _ => {}
                    }
                }
            }
            Expr::Between(b) if !b.negated && is_column(&b.expr, signal.time_column()) => {
                if let (Expr::Literal(lo, _), Expr::Literal(hi, _)) =
                    (b.low.as_ref(), b.high.as_ref())
                {
                    if let Some(lo) = time_value(signal, lo) {
                        self.raise_min(lo);
                    }
                    if let Some(hi) = time_value(signal, hi) {
                        self.lower_max(hi);
                    }
                }
            }
            Expr::InList(list) if !list.negated => {
                if let Some(target) = indexed_target(signal, &list.expr) {
                    let keys: Option<Vec<String>> = list
                        .list
                        .iter()
                        .map(|e| string_literal(e).map(|v| target.key(v)))
                        .collect();
                    if let Some(keys) = keys {
                        self.required_keys.push(keys);
                    }
                }
            }
            _ => {}
        }
    }

    fn raise_min(&mut self, t: i64) {
        self.min_time = Some(self.min_time.map_or(t, |m| m.max(t)));
    }

    fn lower_max(&mut self, t: i64) {
        self.max_time = Some(self.max_time.map_or(t, |m| m.min(t)));
    }

    /// Whether a time range `[min, max]` can hold matching rows.
    pub fn time_overlaps(&self, min: i64, max: i64) -> bool {
        self.min_time.is_none_or(|m| max >= m) && self.max_time.is_none_or(|m| min <= m)
    }

    /// Whether a block whose bloom answers `may_contain` can hold matching rows.
    pub fn keys_may_match(&self, may_contain: impl Fn(&str) -> bool) -> bool {
        self.required_keys
            .iter()
            .all(|any| any.iter().any(|k| may_contain(k)))
    }
}

/// `a = 'x' OR a = 'y' OR ...` on one indexed target → its keys.
fn disjunction_keys(signal: Signal, expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut l = disjunction_keys(signal, left)?;
            l.extend(disjunction_keys(signal, right)?);
            Some(l)
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let (target, value) = match (left.as_ref(), right.as_ref()) {
                (t, v) if string_literal(v).is_some() => (t, v),
                (v, t) => (t, v),
            };
            let target = indexed_target(signal, target)?;
            Some(vec![target.key(string_literal(value)?)])
        }
        _ => None,
    }
}

struct IndexedTarget {
    column: String,
    map_key: Option<String>,
}

impl IndexedTarget {
    fn key(&self, value: &str) -> String {
        index_key(&self.column, self.map_key.as_deref(), value)
    }
}

/// `column` or `map_column['key']` when the block index covers it.
fn indexed_target(signal: Signal, expr: &Expr) -> Option<IndexedTarget> {
    let (plain, maps) = indexed_columns(signal);
    match expr {
        Expr::Column(c) if plain.contains(&c.name.as_str()) => Some(IndexedTarget {
            column: c.name.clone(),
            map_key: None,
        }),
        Expr::ScalarFunction(f) if f.name() == "get_field" && f.args.len() == 2 => {
            let Expr::Column(c) = &f.args[0] else {
                return None;
            };
            if !maps.contains(&c.name.as_str()) {
                return None;
            }
            Some(IndexedTarget {
                column: c.name.clone(),
                map_key: Some(string_literal(&f.args[1])?.to_string()),
            })
        }
        Expr::Cast(c) => indexed_target(signal, &c.expr),
        _ => None,
    }
}

fn is_column(expr: &Expr, name: &str) -> bool {
    match expr {
        Expr::Column(c) => c.name == name,
        Expr::Cast(c) => is_column(&c.expr, name),
        _ => false,
    }
}

/// A string literal's text (any of Arrow's string types).
pub(crate) fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s),
        _ => None,
    }
}

/// A literal as a time in the signal's unit (ms for samples, ns otherwise).
fn time_value(signal: Signal, v: &ScalarValue) -> Option<i64> {
    let nanos: i128 = match v {
        ScalarValue::TimestampNanosecond(Some(t), _) => *t as i128,
        ScalarValue::TimestampMicrosecond(Some(t), _) => *t as i128 * 1_000,
        ScalarValue::TimestampMillisecond(Some(t), _) => *t as i128 * 1_000_000,
        ScalarValue::TimestampSecond(Some(t), _) => *t as i128 * 1_000_000_000,
        _ => return None,
    };
    let in_unit = match signal {
        Signal::Samples => nanos.div_euclid(1_000_000),
        _ => nanos,
    };
    i64::try_from(in_unit).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::functions::core::expr_fn::get_field;
    use datafusion::prelude::{col, lit};

    fn ts_ns(v: i64) -> Expr {
        Expr::Literal(
            ScalarValue::TimestampNanosecond(Some(v), Some("UTC".into())),
            None,
        )
    }

    #[test]
    fn time_bounds_combine_and_convert_units() {
        let p = ScanPredicate::from_filters(
            Signal::Samples,
            &[col("timestamp")
                .gt_eq(ts_ns(5_000_000))
                .and(col("timestamp").lt(ts_ns(9_000_000)))],
        );
        assert_eq!(p.min_time, Some(5));
        assert_eq!(p.max_time, Some(8));
        assert!(p.time_overlaps(8, 100));
        assert!(!p.time_overlaps(9, 100));
        // A literal on the left is swapped.
        let p = ScanPredicate::from_filters(Signal::Logs, &[ts_ns(7).lt(col("timestamp"))]);
        assert_eq!(p.min_time, Some(8));
    }

    #[test]
    fn equalities_on_indexed_columns_become_keys() {
        let p = ScanPredicate::from_filters(
            Signal::Samples,
            &[
                get_field(col("labels"), "job").eq(lit("api")),
                col("metric")
                    .eq(lit("up"))
                    .or(col("metric").eq(lit("down"))),
                col("value").eq(lit(1.0)),
            ],
        );
        assert_eq!(
            p.required_keys,
            vec![
                vec!["labels[job]=api".to_string()],
                vec!["metric=up".to_string(), "metric=down".to_string()]
            ]
        );
        assert!(p.keys_may_match(|k| k == "labels[job]=api" || k == "metric=down"));
        assert!(!p.keys_may_match(|k| k == "labels[job]=api"));
    }

    #[test]
    fn unindexed_or_mixed_disjunctions_are_ignored() {
        let p = ScanPredicate::from_filters(
            Signal::Spans,
            &[col("trace_id")
                .eq(lit("a"))
                .or(col("kind").eq(lit("server")))],
        );
        assert!(p.required_keys.is_empty());
    }
}
