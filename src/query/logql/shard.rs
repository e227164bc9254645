//! Query sharding of LogQL metric queries, as Loki does it: a parsed metric
//! query → the vector aggregations that can be computed per stream shard
//! (the *legs*) and the *outer* expression that merges their partial
//! answers (PromQL text over placeholders, evaluated like the rest of a
//! metric query by the PromQL step-grid evaluator).
//!
//! A log stream belongs to shard `i` of `N` by its `stream_id` (the hash of
//! its labels), cut into `N` contiguous ranges exactly like PromQL's series
//! shards ([`crate::query::promql::shard::QueryShard`]); a leg runs with its `logs` scans restricted to
//! one range ([`super::fetch::StreamShard`]).
//!
//! [`plan`] finds, from the top of the query down, each vector aggregation
//! whose argument is *stream-local* — every series it yields is made of the
//! lines of one stream — and whose operator merges partial answers exactly:
//!
//! | query | each shard runs | outer merge |
//! | --- | --- | --- |
//! | `sum`, `min`, `max`, `topk(k, …)`, `bottomk(k, …)` | the same | the same aggregation over the shards' series |
//! | `count` | `count` | `sum` |
//! | `avg` | `sum` and `count` (two legs) | `sum(sums) / sum(counts)` |
//!
//! all keeping the `by`/`without` clause. Stream-local are: range
//! aggregations without their own grouping (a grouping gathers lines of
//! several streams) other than `absent_over_time` (a shard without lines
//! would answer 1) and `quantile_over_time` (left whole, as Loki leaves
//! exact quantiles), without `keep` in their pipeline (it removes every
//! stream label it does not name), and arithmetic or comparisons of those
//! with numbers. A parser (`| json`, `| logfmt`, …) may turn one stream
//! into several series, but it only *adds* labels (a parsed name that
//! collides with a stream label gets `_extracted`), so every series still
//! comes from one stream and a stream shard holds all of it. What remains
//! for lines of two streams to share a series is known only when reading:
//! the query removing or rewriting a label that is a stream label (the
//! unwrapped label is dropped from the series; `drop` and `label_format`,
//! [`changed_labels`]) or structured metadata overriding a stream label. A
//! leg's scan refuses on meeting either
//! ([`super::LogqlError::ShardingUnsafe`]) and the query runs unsharded.
//!
//! Not sharded (though aggregations under them may be): `stddev`,
//! `stdvar`, `sort`, `sort_desc`, `label_replace`, binary operators between
//! two vectors, `vector()`, and a whole query in which any range
//! aggregation is left outside the legs (the merge evaluates placeholders
//! only, it reads no logs).

use super::ast::{
    Grouping, LabelFormatSource, LabelSelection, LogRange, MetricExpr, RangeOp, Stage, VectorOp,
};
use super::metric::{LEG_PREFIX, number, to_promql};

/// A metric query cut into shardable legs and the expression merging them.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    /// PromQL text of the query with each leg replaced by the placeholder
    /// `<LEG_PREFIX><k>`; it merges the shards' answers.
    pub outer: String,
    /// The vector aggregations each shard evaluates, in placeholder order.
    pub legs: Vec<MetricExpr>,
}

/// The shard plan of a metric query, `None` when nothing in it can be
/// sharded or a range aggregation would be left outside every leg.
pub fn plan(expr: &MetricExpr) -> Option<ShardPlan> {
    let mut legs: Vec<MetricExpr> = Vec::new();
    let mut left_outside = false;
    let outer = to_promql(expr, &mut |e| match e {
        MetricExpr::VectorAggregation { .. } => shard_aggregation(e, &mut legs),
        MetricExpr::RangeAggregation { .. } => {
            left_outside = true;
            Some("__logql_unsharded_range_aggregation".into())
        }
        _ => None,
    });
    (!legs.is_empty() && !left_outside).then_some(ShardPlan { outer, legs })
}

/// The merge text of a shardable vector aggregation (its legs pushed), or `None`.
fn shard_aggregation(agg: &MetricExpr, legs: &mut Vec<MetricExpr>) -> Option<String> {
    let MetricExpr::VectorAggregation {
        op,
        expr,
        param,
        grouping,
        pos,
    } = agg
    else {
        return None;
    };
    if !matches!(
        op,
        VectorOp::Sum
            | VectorOp::Min
            | VectorOp::Max
            | VectorOp::Count
            | VectorOp::Avg
            | VectorOp::Topk
            | VectorOp::Bottomk
    ) || !has_range(expr)
        || !stream_local(expr)
    {
        return None;
    }
    let mut leg = |op: VectorOp| {
        legs.push(MetricExpr::VectorAggregation {
            op,
            expr: expr.clone(),
            param: *param,
            grouping: grouping.clone(),
            pos: *pos,
        });
        format!("{LEG_PREFIX}{}", legs.len() - 1)
    };
    let over = |op: VectorOp, input: String| aggregation_text(op, *param, grouping, &input);
    Some(match op {
        VectorOp::Count => {
            let input = leg(VectorOp::Count);
            over(VectorOp::Sum, input)
        }
        VectorOp::Avg => {
            let sums = leg(VectorOp::Sum);
            let counts = leg(VectorOp::Count);
            format!(
                "({}) / ({})",
                over(VectorOp::Sum, sums),
                over(VectorOp::Sum, counts)
            )
        }
        _ => {
            let input = leg(*op);
            over(*op, input)
        }
    })
}

/// `op by (…) (k, input)` in PromQL.
fn aggregation_text(
    op: VectorOp,
    param: Option<f64>,
    grouping: &Option<Grouping>,
    input: &str,
) -> String {
    let grouping = grouping
        .as_ref()
        .map(|g| format!(" {g} "))
        .unwrap_or_default();
    match (op, param) {
        (VectorOp::Topk | VectorOp::Bottomk, Some(k)) => {
            format!("{}{grouping}({}, {input})", op.name(), number(k))
        }
        _ => format!("{}{grouping}({input})", op.name()),
    }
}

/// Whether every series `e` yields is made of the lines of one stream (see
/// the module header), so evaluating it over a shard's streams yields
/// exactly that shard's part of its answer.
pub fn stream_local(e: &MetricExpr) -> bool {
    match e {
        MetricExpr::RangeAggregation {
            op,
            range,
            grouping,
            ..
        } => {
            grouping.is_none()
                && !matches!(op, RangeOp::AbsentOverTime | RangeOp::QuantileOverTime)
                && !range
                    .log
                    .pipeline
                    .iter()
                    .any(|stage| matches!(stage, Stage::Keep(_)))
        }
        MetricExpr::Binary { lhs, rhs, .. } => {
            stream_local(lhs) && stream_local(rhs) && !(has_range(lhs) && has_range(rhs))
        }
        MetricExpr::Paren(inner) => stream_local(inner),
        MetricExpr::Number(_) => true,
        MetricExpr::VectorAggregation { .. }
        | MetricExpr::LabelReplace { .. }
        | MetricExpr::Vector(_) => false,
    }
}

/// The labels a range's pipeline may remove or overwrite: the unwrapped
/// one, those `drop` names, and the targets and renamed sources of
/// `label_format`. A shard's scan refuses a stream having one of them
/// ([`super::fetch::StreamShard`]).
pub fn changed_labels(range: &LogRange) -> Vec<String> {
    let mut names: Vec<String> = range.unwrap.iter().map(|u| u.label.clone()).collect();
    for stage in &range.log.pipeline {
        match stage {
            Stage::Drop(selections) => names.extend(selections.iter().map(|s| match s {
                LabelSelection::Name(n) => n.clone(),
                LabelSelection::Matcher(m) => m.name.clone(),
            })),
            Stage::LabelFormat(items) => {
                for item in items {
                    names.push(item.target.clone());
                    if let LabelFormatSource::Rename(source) = &item.source {
                        names.push(source.clone());
                    }
                }
            }
            _ => {}
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Whether `e` reads logs (holds a range aggregation).
fn has_range(e: &MetricExpr) -> bool {
    match e {
        MetricExpr::RangeAggregation { .. } => true,
        MetricExpr::VectorAggregation { expr, .. } | MetricExpr::LabelReplace { expr, .. } => {
            has_range(expr)
        }
        MetricExpr::Binary { lhs, rhs, .. } => has_range(lhs) || has_range(rhs),
        MetricExpr::Paren(inner) => has_range(inner),
        MetricExpr::Number(_) | MetricExpr::Vector(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::logql::ast::Expr;

    fn metric(q: &str) -> MetricExpr {
        match crate::query::logql::parse(q).unwrap_or_else(|e| panic!("{q}: {e}")) {
            Expr::Metric(m) => m,
            Expr::Log(_) => panic!("{q} is a log query"),
        }
    }

    /// The outer text with placeholders shown as `LEG<k>`.
    fn outer_text(plan: &ShardPlan) -> String {
        let mut text = plan.outer.clone();
        for k in (0..plan.legs.len()).rev() {
            text = text.replace(&format!("{LEG_PREFIX}{k}"), &format!("LEG{k}"));
        }
        text
    }

    #[test]
    fn shardable_aggregations_are_cut_into_legs_and_a_merge() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                r#"sum by (app) (rate({job="a"}[5m]))"#,
                "sum by (app) (LEG0)",
                &[r#"sum by (app) (rate({job="a"}[5m]))"#],
            ),
            (
                r#"count without (pod) (count_over_time({job="a"} |= "x" [1m]))"#,
                "sum without (pod) (LEG0)",
                &[r#"count without (pod) (count_over_time({job="a"} |= "x" [1m]))"#],
            ),
            (
                r#"avg by (level) (sum_over_time({job="a"} | logfmt | unwrap latency [5m]))"#,
                "(sum by (level) (LEG0)) / (sum by (level) (LEG1))",
                &[
                    r#"sum by (level) (sum_over_time({job="a"} | logfmt | unwrap latency [5m]))"#,
                    r#"count by (level) (sum_over_time({job="a"} | logfmt | unwrap latency [5m]))"#,
                ],
            ),
            (
                r#"topk(3, bytes_rate({job="a"}[1m]))"#,
                "topk(3, LEG0)",
                &[r#"topk(3, bytes_rate({job="a"}[1m]))"#],
            ),
            (
                r#"bottomk by (app) (2, max_over_time({job="a"} | json | unwrap size [1m]))"#,
                "bottomk by (app) (2, LEG0)",
                &[r#"bottomk by (app) (2, max_over_time({job="a"} | json | unwrap size [1m]))"#],
            ),
            // Arithmetic with numbers on both sides of the legs.
            (
                r#"sum(rate({job="a"}[1m]) * 60) / 2"#,
                "(sum(LEG0)) / (2)",
                &[r#"sum(rate({job="a"}[1m]) * 60)"#],
            ),
            // Two legs on either side of a vector operation.
            (
                r#"sum(rate({job="a"} |= "error" [5m])) / sum(rate({job="a"}[5m]))"#,
                "(sum(LEG0)) / (sum(LEG1))",
                &[
                    r#"sum(rate({job="a"} |= "error" [5m]))"#,
                    r#"sum(rate({job="a"}[5m]))"#,
                ],
            ),
            // Not shardable itself, the aggregation under it is.
            (
                r#"sort_desc(sum by (app) (count_over_time({job="a"}[1m])))"#,
                "sort_desc(sum by (app) (LEG0))",
                &[r#"sum by (app) (count_over_time({job="a"}[1m]))"#],
            ),
            (
                r#"max(sum by (app) (rate({job="a"}[1m])))"#,
                "max(sum by (app) (LEG0))",
                &[r#"sum by (app) (rate({job="a"}[1m]))"#],
            ),
            (
                r#"label_replace(sum by (app) (rate({job="a"}[1m])), "x", "$1", "app", "(.*)")"#,
                r#"label_replace(sum by (app) (LEG0), "x", "$1", "app", "(.*)")"#,
                &[r#"sum by (app) (rate({job="a"}[1m]))"#],
            ),
            (
                r#"sum(count_over_time({job="a"}[1m]) > 5)"#,
                "sum(LEG0)",
                &[r#"sum(count_over_time({job="a"}[1m]) > 5)"#],
            ),
            // Labels changed by the pipeline are checked against each
            // stream's labels when reading.
            (
                r#"count(rate({job="a"} | logfmt | drop __error__, __error_details__ | label_format app="x" [1m]))"#,
                "sum(LEG0)",
                &[
                    r#"count(rate({job="a"} | logfmt | drop __error__, __error_details__ | label_format app="x" [1m]))"#,
                ],
            ),
        ];
        for (query, outer, legs) in cases {
            let plan = plan(&metric(query)).unwrap_or_else(|| panic!("{query} not sharded"));
            assert_eq!(outer_text(&plan), *outer, "{query}");
            let leg_texts: Vec<String> = plan.legs.iter().map(|l| l.to_string()).collect();
            assert_eq!(leg_texts, *legs, "{query}");
            // The merge text is PromQL the evaluator parses.
            promql_parser::parser::parse(&plan.outer)
                .unwrap_or_else(|e| panic!("{query}: {}: {e}", plan.outer));
            // Each leg is LogQL that parses back to itself.
            for leg in &leg_texts {
                assert_eq!(metric(leg).to_string(), *leg, "{query}");
            }
        }
    }

    #[test]
    fn queries_that_cannot_merge_exactly_stay_whole() {
        for query in [
            r#"rate({job="a"}[1m])"#,
            r#"avg_over_time({job="a"} | logfmt | unwrap n [1m]) by (app)"#,
            r#"sum by (app) (avg_over_time({job="a"} | logfmt | unwrap n [1m]) by (app))"#,
            r#"max(max_over_time({job="a"} | logfmt | unwrap n [1m]) without (pod))"#,
            r#"sum(quantile_over_time(0.9, {job="a"} | logfmt | unwrap latency [5m]))"#,
            r#"quantile_over_time(0.9, {job="a"} | logfmt | unwrap latency [5m]) by (app)"#,
            r#"sum(absent_over_time({job="a"}[1m]))"#,
            r#"stddev(rate({job="a"}[1m]))"#,
            r#"sort(rate({job="a"}[1m]))"#,
            r#"sum(label_replace(rate({job="a"}[1m]), "x", "$1", "app", "(.*)"))"#,
            r#"sum(rate({job="a"} | keep app [1m]))"#,
            r#"sum(rate({job="a"}[1m]) / rate({job="b"}[1m]))"#,
            r#"sum(rate({job="a"}[1m]) or vector(0))"#,
            r#"sum(vector(1))"#,
            // A range aggregation outside every leg: the merge reads no logs.
            r#"sum(rate({job="a"}[1m])) + count_over_time({job="b"}[1m])"#,
            r#"rate({job="a"}[1m]) / on () group_left sum(rate({job="a"}[1m]))"#,
        ] {
            assert!(plan(&metric(query)).is_none(), "{query} was sharded");
        }
    }

    /// Streams in blocks and in the head, scanned shard by shard: every
    /// stream's series come from the shard its `stream_id` falls in, the
    /// shards together give the unsharded answer, and the two ways lines
    /// of two streams can form one series make a shard refuse.
    #[tokio::test]
    async fn shard_scans_partition_streams_and_refuse_merged_ones() {
        use crate::engine::Engine;
        use crate::model::Signal;
        use crate::model::builders::{LogLine, LogsBuilder};
        use crate::model::labels::canonical_pairs;
        use crate::query::logql::{LogqlError, LogqlOptions, metric};
        use crate::query::promql::shard::QueryShard;
        use crate::query::promql::{Labels, QueryValue};

        let (engine, dir) = Engine::open_scratch("o11ydb-logql-shard").await.unwrap();
        let second = 1_000_000_000i64;
        let push = |labels: Vec<(String, String)>, metadata: Vec<(String, String)>, from: i64| {
            let labels = canonical_pairs(labels);
            let metadata = canonical_pairs(metadata);
            let id = LogsBuilder::stream_id(&labels);
            let mut builder = LogsBuilder::new();
            for i in 0..10 {
                builder.push(
                    &labels,
                    id,
                    &LogLine {
                        timestamp_ns: (from + i) * second,
                        line: &format!("latency={i}"),
                        metadata: &metadata,
                        severity: None,
                        trace_id: None,
                        span_id: None,
                    },
                );
            }
            builder.finish()
        };
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for (part, from) in [(0, 100), (1, 110)] {
            for pod in 0..16 {
                let labels = pairs(&[("job", "a"), ("pod", &pod.to_string())]);
                let batch = push(labels, Vec::new(), from);
                engine
                    .ingester()
                    .append_canonical("t", Signal::Logs, &batch)
                    .await
                    .unwrap();
            }
            // Structured metadata overriding a stream label.
            let batch = push(
                pairs(&[("job", "b"), ("pod", "1")]),
                pairs(&[("pod", "2")]),
                from,
            );
            engine
                .ingester()
                .append_canonical("t", Signal::Logs, &batch)
                .await
                .unwrap();
            if part == 0 {
                engine.ingester().flush_all().await;
            }
        }
        let ctx = engine.tables_session("t").unwrap();
        let options = LogqlOptions::default();
        let times = [125 * second];
        let series = |query: &'static str, shard: Option<QueryShard>| {
            let expr = metric(query);
            let (ctx, options) = (ctx.clone(), options.clone());
            async move {
                let (value, times_ms) =
                    metric::metric_query(&ctx, query, &expr, shard, &times, &options).await?;
                let Ok(QueryValue::Vector(v)) =
                    crate::query::promql::instant_value(value, times_ms[0])
                else {
                    panic!("{query}: not a vector")
                };
                Ok::<_, LogqlError>(
                    v.into_iter()
                        .map(|s| (s.labels, s.value))
                        .collect::<Vec<(Labels, f64)>>(),
                )
            }
        };
        let query = r#"count_over_time({job="a"} | logfmt [1m])"#;
        let mut whole = series(query, None).await.unwrap();
        assert_eq!(whole.len(), 16 * 10, "a series per stream and latency");
        let mut joined = Vec::new();
        for index in 0..3 {
            let shard = QueryShard { index, total: 3 };
            let part = series(query, Some(shard)).await.unwrap();
            assert!(!part.is_empty(), "shard {index} is empty");
            for (labels, _) in &part {
                let stream: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(k, _)| k != "latency")
                    .cloned()
                    .collect();
                let id = LogsBuilder::stream_id(&canonical_pairs(stream));
                assert_eq!(QueryShard::of(id, 3), shard, "{labels:?}");
            }
            joined.extend(part);
        }
        whole.sort_by(|a, b| a.0.cmp(&b.0));
        joined.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(joined, whole);

        // Unwrapping a stream label drops it: pods of one job would share a series.
        let unwrap_pod = r#"max_over_time({job="a"} | unwrap pod [1m])"#;
        assert_eq!(series(unwrap_pod, None).await.unwrap().len(), 1);
        for index in 0..3 {
            let shard = Some(QueryShard { index, total: 3 });
            let err = series(unwrap_pod, shard).await.unwrap_err();
            assert!(
                matches!(&err, LogqlError::ShardingUnsafe(m) if m.contains("\"pod\"")),
                "{err}"
            );
        }
        // So does renaming one; dropping labels no stream has is fine.
        let renamed = r#"count_over_time({job="a"} | label_format p=pod [1m])"#;
        let err = series(renamed, Some(QueryShard { index: 0, total: 3 }))
            .await
            .unwrap_err();
        assert!(matches!(err, LogqlError::ShardingUnsafe(_)), "{err}");
        let dropped =
            r#"count_over_time({job="a"} | logfmt | drop __error__, __error_details__ [1m])"#;
        let mut parts = Vec::new();
        for index in 0..3 {
            let shard = Some(QueryShard { index, total: 3 });
            parts.extend(series(dropped, shard).await.unwrap());
        }
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(parts, whole);
        // Metadata overriding a stream label: its stream's shard refuses.
        let overridden = r#"count_over_time({job="b"} | logfmt [1m])"#;
        let mut refused = 0;
        for index in 0..3 {
            let shard = Some(QueryShard { index, total: 3 });
            match series(overridden, shard).await {
                Err(LogqlError::ShardingUnsafe(m)) => {
                    assert!(m.contains("structured metadata"), "{m}");
                    refused += 1;
                }
                Ok(part) => assert!(part.is_empty(), "{part:?}"),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(refused, 1);
        assert!(!series(overridden, None).await.unwrap().is_empty());
        drop(engine);
        let _ = std::fs::remove_dir_all(dir);
    }
}
