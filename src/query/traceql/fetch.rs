//! From a TraceQL query to the traces it may match, read from the tenant's
//! `spans` table.
//!
//! 1. [`candidate_filter`] turns the query's conditions into a DataFusion
//!    predicate on span rows that every trace the query can match has at
//!    least one span satisfying (names, statuses, kinds, durations, ids and
//!    attribute equalities become column and map-entry comparisons, so
//!    block pruning — the trace-id, service and name blooms, Parquet
//!    statistics — applies); conditions it cannot express widen it, never
//!    narrow it.
//! 2. [`candidate_traces`] scans the window with that predicate and returns
//!    trace ids, most recently started first.
//! 3. [`load_traces`] reads every span of a batch of those traces (within
//!    the window) and builds [`Trace`]s, which [`super::eval`] evaluates
//!    exactly.

use std::collections::HashMap;

use arrow::array::{
    Array, AsArray, ListArray, MapArray, RecordBatch, StringArray, StructArray,
    TimestampNanosecondArray,
};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::functions::expr_fn::regexp_like;
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::{Expr, col, lit, not};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::ast::*;
use super::trace::{Event, Link, Span, Trace};
use crate::model::labels::map_row;
use crate::query::scan_plan::filtered_scan;

fn ts(ns: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ns),
        Some("UTC".into()),
    ))
}

fn time_window(start_ns: i64, end_ns: i64) -> Expr {
    col("start_time")
        .gt_eq(ts(start_ns))
        .and(col("start_time").lt_eq(ts(end_ns)))
}

/// A predicate every trace the expression matches has a span satisfying,
/// or `None` when any trace may match.
pub fn candidate_filter(e: &SpansetExpr) -> Option<Expr> {
    match e {
        SpansetExpr::Filter(f) => span_predicate(f),
        SpansetExpr::Op(op, l, r) => match op {
            SpansetOp::Union => match (candidate_filter(l), candidate_filter(r)) {
                (Some(a), Some(b)) => Some(a.or(b)),
                _ => None,
            },
            // Only the right side's spans are returned by negated operators.
            SpansetOp::NotChild
            | SpansetOp::NotParent
            | SpansetOp::NotDescendant
            | SpansetOp::NotAncestor
            | SpansetOp::NotSibling => candidate_filter(r),
            // Both sides must match: either side restricts the traces.
            SpansetOp::And
            | SpansetOp::UnionChild
            | SpansetOp::UnionParent
            | SpansetOp::UnionDescendant
            | SpansetOp::UnionAncestor
            | SpansetOp::UnionSibling => candidate_filter(l).or_else(|| candidate_filter(r)),
            // The right side's spans are returned, and queries name them
            // most precisely ("{ a } > { failing b }"): start from them.
            _ => candidate_filter(r).or_else(|| candidate_filter(l)),
        },
        SpansetExpr::Pipeline(stages) => match stages.first() {
            Some(Stage::Spanset(first)) => candidate_filter(first),
            _ => None,
        },
    }
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Lte => BinaryOp::Gte,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Gte => BinaryOp::Lte,
        other => other,
    }
}

fn apply(op: BinaryOp, target: Expr, value: Expr) -> Option<Expr> {
    Some(match op {
        BinaryOp::Eq => target.eq(value),
        BinaryOp::Neq => target.not_eq(value),
        BinaryOp::Lt => target.lt(value),
        BinaryOp::Lte => target.lt_eq(value),
        BinaryOp::Gt => target.gt(value),
        BinaryOp::Gte => target.gt_eq(value),
        BinaryOp::Regex => regexp_like(target, value, None),
        BinaryOp::NotRegex => not(regexp_like(target, value, None)),
        _ => return None,
    })
}

fn anchored(pattern: &str) -> Expr {
    lit(format!("^(?s:{pattern})$"))
}

/// A span-row predicate implied by the field expression, if one is known.
fn span_predicate(f: &FieldExpr) -> Option<Expr> {
    match f {
        FieldExpr::Static(Static::Bool(false)) => Some(lit(false)),
        FieldExpr::Binary(BinaryOp::And, l, r) => match (span_predicate(l), span_predicate(r)) {
            (Some(a), Some(b)) => Some(a.and(b)),
            (a, b) => a.or(b),
        },
        FieldExpr::Binary(BinaryOp::Or, l, r) => match (span_predicate(l), span_predicate(r)) {
            (Some(a), Some(b)) => Some(a.or(b)),
            _ => None,
        },
        FieldExpr::Binary(op, l, r) => match (&**l, &**r) {
            (FieldExpr::Attribute(a), FieldExpr::Static(s)) => comparison(*op, a, s),
            (FieldExpr::Static(s), FieldExpr::Attribute(a)) => comparison(flip(*op), a, s),
            _ => None,
        },
        FieldExpr::Unary(UnaryOp::Exists, inner) => match &**inner {
            FieldExpr::Attribute(Attribute::Named {
                scope: Scope::Span,
                parent: false,
                name,
            }) => Some(get_field(col("attributes"), name.as_str()).is_not_null()),
            _ => None,
        },
        _ => None,
    }
}

/// `attribute op literal` on span rows.
fn comparison(op: BinaryOp, a: &Attribute, s: &Static) -> Option<Expr> {
    let regex = matches!(op, BinaryOp::Regex | BinaryOp::NotRegex);
    match a {
        Attribute::Intrinsic(i) => {
            let column = match i {
                Intrinsic::Name => "name",
                Intrinsic::SpanId => "span_id",
                Intrinsic::ParentId => "parent_span_id",
                Intrinsic::TraceId => "trace_id",
                Intrinsic::Status => "status_code",
                Intrinsic::Kind => "kind",
                Intrinsic::Duration => "duration_ns",
                _ => return None,
            };
            let value = match (i, s) {
                (Intrinsic::Status, Static::Status(st)) if !regex => lit(st.name()),
                (Intrinsic::Kind, Static::Kind(k)) if !regex => lit(k.name()),
                (Intrinsic::Duration, Static::Duration(d)) if !regex => lit(*d),
                (Intrinsic::Duration, _) => return None,
                (_, Static::Str(text)) if regex => anchored(text),
                (_, Static::Str(text)) => lit(text.clone()),
                _ => return None,
            };
            apply(op, col(column), value)
        }
        Attribute::Named {
            scope,
            parent: false,
            name,
        } => {
            let targets: Vec<Expr> = match scope {
                Scope::Span => vec![get_field(col("attributes"), name.as_str())],
                Scope::Resource if name == "service.name" => vec![col("service")],
                Scope::Resource => vec![get_field(col("resource_attributes"), name.as_str())],
                Scope::None if name == "service.name" => {
                    vec![get_field(col("attributes"), name.as_str()), col("service")]
                }
                Scope::None => vec![
                    get_field(col("attributes"), name.as_str()),
                    get_field(col("resource_attributes"), name.as_str()),
                ],
                _ => return None,
            };
            let mut out: Option<Expr> = None;
            for target in targets {
                let e = match s {
                    Static::Str(text) if regex => apply(op, target, anchored(text))?,
                    Static::Str(text) if op == BinaryOp::Eq => target.eq(lit(text.clone())),
                    Static::Int(i) if op == BinaryOp::Eq => target.eq(lit(i.to_string())),
                    Static::Int(_) | Static::Float(_) if !regex && op != BinaryOp::Neq => {
                        let number = match s {
                            Static::Int(i) => *i as f64,
                            Static::Float(f) => *f,
                            _ => unreachable!(),
                        };
                        let target = Expr::TryCast(datafusion::logical_expr::TryCast::new(
                            Box::new(target),
                            arrow::datatypes::DataType::Float64,
                        ));
                        apply(op, target, lit(number))?
                    }
                    _ => return None,
                };
                out = Some(match out {
                    Some(prev) => prev.or(e),
                    None => e,
                });
            }
            out
        }
        Attribute::Named { parent: true, .. } => None,
    }
}

/// Trace ids with a span in the window satisfying `filter`, most recently
/// started first, at most `limit`.
pub async fn candidate_traces(
    ctx: &SessionContext,
    filter: Option<Expr>,
    start_ns: i64,
    end_ns: i64,
    limit: usize,
) -> Result<Vec<String>> {
    let mut predicate = time_window(start_ns, end_ns);
    if let Some(f) = filter {
        predicate = predicate.and(f);
    }
    let df = ctx
        .table("spans")
        .await?
        .filter(predicate)?
        .aggregate(
            vec![col("trace_id")],
            vec![max(col("start_time")).alias("last")],
        )?
        .sort(vec![
            col("last").sort(false, false),
            col("trace_id").sort(true, false),
        ])?
        .limit(0, Some(limit))?
        .select(vec![col("trace_id")])?;
    let mut ids = Vec::new();
    for batch in df.collect().await? {
        let column = batch.column(0).as_string::<i32>();
        ids.extend(column.iter().flatten().map(str::to_string));
    }
    Ok(ids)
}

/// Which optional columns a query needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub events: bool,
    pub links: bool,
}

/// Every span in the window of the given traces, as [`Trace`]s in the
/// order of `trace_ids`.
pub async fn load_traces(
    ctx: &SessionContext,
    trace_ids: &[String],
    start_ns: i64,
    end_ns: i64,
    needs: Needs,
) -> Result<Vec<Trace>> {
    if trace_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns = vec![
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "kind",
        "service",
        "start_time",
        "end_time",
        "status_code",
        "status_message",
        "attributes",
        "resource_attributes",
        "scope_name",
        "scope_version",
    ];
    if needs.events {
        columns.push("events");
    }
    if needs.links {
        columns.push("links");
    }
    let ids: Vec<Expr> = trace_ids.iter().map(|t| lit(t.clone())).collect();
    let filter = time_window(start_ns, end_ns).and(col("trace_id").in_list(ids, false));
    let columns: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
    let mut stream = filtered_scan(ctx, "spans", filter, &columns, &[]).await?;
    let mut by_trace: HashMap<String, Vec<Span>> = HashMap::new();
    while let Some(batch) = stream.next().await {
        decode_spans(&batch?, &mut by_trace)?;
    }
    Ok(trace_ids
        .iter()
        .filter_map(|id| {
            by_trace
                .remove(id)
                .map(|spans| Trace::new(id.clone(), spans))
        })
        .collect())
}

fn text_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| DataFusionError::Internal(format!("spans column {name} is not text")))
}

fn time_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a TimestampNanosecondArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| DataFusionError::Internal(format!("spans column {name} is not a timestamp")))
}

/// Row `row` of a text map column as owned pairs.
fn map_entries(map: &MapArray, row: usize) -> Vec<(String, String)> {
    map_row(map, row)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn map_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a MapArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<MapArray>())
        .ok_or_else(|| DataFusionError::Internal(format!("spans column {name} is not a map")))
}

fn struct_map(s: &StructArray, field: &str, row: usize) -> Vec<(String, String)> {
    s.column_by_name(field)
        .and_then(|c| c.as_any().downcast_ref::<MapArray>())
        .map_or_else(Vec::new, |m| map_entries(m, row))
}

fn struct_text(s: &StructArray, field: &str, row: usize) -> String {
    s.column_by_name(field)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .filter(|c| !c.is_null(row))
        .map_or_else(String::new, |c| c.value(row).to_string())
}

fn list_items(batch: &RecordBatch, name: &str, row: usize) -> Option<StructArray> {
    let list = batch
        .column_by_name(name)?
        .as_any()
        .downcast_ref::<ListArray>()?;
    if list.is_null(row) {
        return None;
    }
    Some(list.value(row).as_struct().clone())
}

/// Appends the spans of `batch` to their traces.
pub fn decode_spans(batch: &RecordBatch, out: &mut HashMap<String, Vec<Span>>) -> Result<()> {
    let trace_id = text_column(batch, "trace_id")?;
    let span_id = text_column(batch, "span_id")?;
    let parent = text_column(batch, "parent_span_id")?;
    let name = text_column(batch, "name")?;
    let kind = text_column(batch, "kind")?;
    let service = text_column(batch, "service")?;
    let start = time_column(batch, "start_time")?;
    let end = time_column(batch, "end_time")?;
    let status = text_column(batch, "status_code")?;
    let message = text_column(batch, "status_message")?;
    let attributes = map_column(batch, "attributes")?;
    let resource = map_column(batch, "resource_attributes")?;
    let scope_name = text_column(batch, "scope_name")?;
    let scope_version = text_column(batch, "scope_version")?;
    let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    for i in 0..batch.num_rows() {
        let events = list_items(batch, "events", i).map_or_else(Vec::new, |items| {
            let times = items.column_by_name("time").and_then(|c| {
                c.as_any()
                    .downcast_ref::<TimestampNanosecondArray>()
                    .cloned()
            });
            (0..items.len())
                .map(|e| Event {
                    time_ns: times.as_ref().map_or(0, |t| t.value(e)),
                    name: struct_text(&items, "name", e),
                    attributes: struct_map(&items, "attributes", e),
                })
                .collect()
        });
        let links = list_items(batch, "links", i).map_or_else(Vec::new, |items| {
            (0..items.len())
                .map(|l| Link {
                    trace_id: struct_text(&items, "trace_id", l),
                    span_id: struct_text(&items, "span_id", l),
                    attributes: struct_map(&items, "attributes", l),
                })
                .collect()
        });
        out.entry(trace_id.value(i).to_string())
            .or_default()
            .push(Span {
                span_id: span_id.value(i).to_string(),
                parent_span_id: opt(parent, i),
                name: name.value(i).to_string(),
                kind: kind.value(i).to_string(),
                service: service.value(i).to_string(),
                start_ns: start.value(i),
                end_ns: end.value(i),
                status_code: status.value(i).to_string(),
                status_message: opt(message, i),
                attributes: map_entries(attributes, i),
                resource_attributes: map_entries(resource, i),
                scope_name: opt(scope_name, i),
                scope_version: opt(scope_version, i),
                events,
                links,
            });
    }
    Ok(())
}

/// Calls `f` with every attribute the query names: in filters, aggregates,
/// `by()`, `select()` and metrics functions.
fn visit_attributes(root: &Root, f: &mut impl FnMut(&Attribute)) {
    fn field(e: &FieldExpr, f: &mut impl FnMut(&Attribute)) {
        match e {
            FieldExpr::Static(_) => {}
            FieldExpr::Attribute(a) => f(a),
            FieldExpr::Binary(_, l, r) => {
                field(l, f);
                field(r, f);
            }
            FieldExpr::Unary(_, e) => field(e, f),
        }
    }
    fn scalar(e: &ScalarExpr, f: &mut impl FnMut(&Attribute)) {
        match e {
            ScalarExpr::Static(_) | ScalarExpr::Aggregate(_, None) => {}
            ScalarExpr::Aggregate(_, Some(arg)) => field(arg, f),
            ScalarExpr::Binary(_, l, r) => {
                scalar(l, f);
                scalar(r, f);
            }
        }
    }
    fn spans(e: &SpansetExpr, f: &mut impl FnMut(&Attribute)) {
        match e {
            SpansetExpr::Filter(e) => field(e, f),
            SpansetExpr::Op(_, l, r) => {
                spans(l, f);
                spans(r, f);
            }
            SpansetExpr::Pipeline(stages) => {
                for stage in stages {
                    match stage {
                        Stage::Spanset(e) => spans(e, f),
                        Stage::ScalarFilter(sf) => {
                            scalar(&sf.lhs, f);
                            scalar(&sf.rhs, f);
                        }
                        Stage::By(e) => field(e, f),
                        Stage::Coalesce => {}
                        Stage::Select(attrs) => attrs.iter().for_each(&mut *f),
                    }
                }
            }
        }
    }
    fn metrics(m: &MetricsExpr, f: &mut impl FnMut(&Attribute)) {
        match m {
            MetricsExpr::Pipeline {
                spans: s,
                aggregate,
                ..
            } => {
                spans(s, f);
                aggregate.attribute.iter().for_each(&mut *f);
                aggregate.by.iter().for_each(&mut *f);
                if let Some((filter, ..)) = &aggregate.compare {
                    field(filter, f);
                }
            }
            MetricsExpr::Binary(_, l, r) => {
                metrics(l, f);
                metrics(r, f);
            }
            MetricsExpr::Scalar(_) => {}
            MetricsExpr::Staged(inner, _) => metrics(inner, f),
        }
    }
    match &root.query {
        Query::Spans(s) => spans(s, f),
        Query::Metrics(m) => metrics(m, f),
    }
}

/// Whether the query names event or link fields, so those columns are read.
pub fn needs(root: &Root) -> Needs {
    let mut needs = Needs::default();
    visit_attributes(root, &mut |a| {
        needs.events |= super::eval::attribute_uses_scope(a, true);
        needs.links |= super::eval::attribute_uses_scope(a, false);
    });
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs_of(q: &str) -> (bool, bool) {
        let n = needs(&crate::query::traceql::parse(q).unwrap());
        (n.events, n.links)
    }

    #[test]
    fn event_and_link_columns_are_read_only_when_named() {
        assert_eq!(needs_of(r#"{ name = "event.link:x" }"#), (false, false));
        assert_eq!(needs_of(r#"{ event:name = "exception" }"#), (true, false));
        assert_eq!(needs_of("{ } | select(link.kind)"), (false, true));
        assert_eq!(
            needs_of("{ } | avg(event:timeSinceStart) > 1s"),
            (true, false)
        );
        assert_eq!(needs_of("{ } | rate() by (link:traceID)"), (false, true));
    }
}
