//! The trace-derived table functions of SQL: `service_graph(start, end)` and
//! `span_metrics(start, end [, step])`. Their arguments (constant
//! expressions: timestamps, Unix seconds, RFC 3339 text, an interval) are
//! checked here. `span_metrics` binds them as parameters (`$start`, `$end`,
//! `$step`) of SQL text shipped in `sql/`, planned in the calling session as
//! a view, so `EXPLAIN` shows the whole plan and the optimizer pushes
//! projections and filters through it into the `spans` scan.
//! `service_graph` runs its own operator (`query::service_graph`); its SQL
//! in `sql/service_graph.sql` is the reference the tests hold it to
//! ([`service_graph_reference`]).

use std::sync::Arc;

use arrow::datatypes::IntervalMonthDayNano;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::ViewTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use futures::FutureExt;

use crate::query::service_graph::ServiceGraphTable;
use crate::query::table_function::{constant, display_time_ns, step_ns, time_ns};

/// `sql/service_graph.sql`: the edges of the service graph in `[$start, $end)`.
pub const SERVICE_GRAPH_SQL: &str = include_str!("../../sql/service_graph.sql");

/// `sql/service_graph.sql` over `[start_ns, end_ns)` planned as a view in
/// `session`: what `service_graph()` must answer, row for row.
pub fn service_graph_reference(
    session: &SessionState,
    start_ns: i64,
    end_ns: i64,
) -> Result<Arc<dyn TableProvider>> {
    plan_bound_view(
        "service_graph",
        session,
        SERVICE_GRAPH_SQL,
        vec![("start", timestamp(start_ns)), ("end", timestamp(end_ns))],
    )
}
/// `sql/span_metrics_window.sql`: RED metrics per `$step` in `[$start, $end)`.
pub const SPAN_METRICS_SQL: &str = include_str!("../../sql/span_metrics_window.sql");

/// The bucket width of `span_metrics(start, end)` and of the `span_metrics` view.
const DEFAULT_STEP_NS: i64 = 60_000_000_000;

/// `service_graph(start, end)`, registered in every session.
#[derive(Debug, Default)]
pub struct ServiceGraphFunction;

/// `span_metrics(start, end [, step])`, registered in every session.
#[derive(Debug, Default)]
pub struct SpanMetricsFunction;

impl TableFunctionImpl for ServiceGraphFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        const NAME: &str = "service_graph";
        let values = constants(NAME, &args)?;
        let [start, end] = values.as_slice() else {
            return plan_err!(
                "service_graph() takes (start, end); got {} argument{}",
                values.len(),
                if values.len() == 1 { "" } else { "s" }
            );
        };
        let (start, end) = window(NAME, start, end)?;
        Ok(Arc::new(ServiceGraphTable::new(start, end)))
    }
}

impl TableFunctionImpl for SpanMetricsFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        const NAME: &str = "span_metrics";
        let values = constants(NAME, &args)?;
        let (start, end, step) = match values.as_slice() {
            [start, end] => (start, end, DEFAULT_STEP_NS),
            [start, end, step] => (start, end, step_ns(NAME, step)?),
            _ => {
                return plan_err!(
                    "span_metrics() takes (start, end) or (start, end, step); got {} argument{}",
                    values.len(),
                    if values.len() == 1 { "" } else { "s" }
                );
            }
        };
        let (start, end) = window(NAME, start, end)?;
        let step = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(0, 0, step)));
        bound_view(
            NAME,
            &args,
            SPAN_METRICS_SQL,
            vec![
                ("start", timestamp(start)),
                ("end", timestamp(end)),
                ("step", step),
            ],
        )
    }
}

fn constants(function: &str, args: &TableFunctionArgs) -> Result<Vec<ScalarValue>> {
    args.exprs().iter().map(|e| constant(function, e)).collect()
}

/// `start` and `end` in ns; `end` must not be before `start`.
fn window(function: &str, start: &ScalarValue, end: &ScalarValue) -> Result<(i64, i64)> {
    let start = time_ns(function, start, "start")?;
    let end = time_ns(function, end, "end")?;
    if end < start {
        return plan_err!(
            "{function}() end {} is before start {}",
            display_time_ns(end),
            display_time_ns(start)
        );
    }
    Ok((start, end))
}

fn timestamp(ns: i64) -> ScalarValue {
    ScalarValue::TimestampNanosecond(Some(ns), Some("UTC".into()))
}

/// Plans `sql` in the calling session with `params` bound, as a view.
fn bound_view(
    function: &str,
    args: &TableFunctionArgs,
    sql: &str,
    params: Vec<(&str, ScalarValue)>,
) -> Result<Arc<dyn TableProvider>> {
    let Some(state) = args.session().as_any().downcast_ref::<SessionState>() else {
        return plan_err!("{function}() needs a full DataFusion session");
    };
    plan_bound_view(function, state, sql, params)
}

fn plan_bound_view(
    function: &str,
    state: &SessionState,
    sql: &str,
    params: Vec<(&str, ScalarValue)>,
) -> Result<Arc<dyn TableProvider>> {
    let text = sql.trim().trim_end_matches(';');
    // Planning resolves only the session's in-memory table registrations,
    // so it completes without waiting; anything else is reported, not
    // blocked on.
    let plan = state
        .create_logical_plan(text)
        .now_or_never()
        .ok_or_else(|| {
            DataFusionError::Plan(format!(
                "{function}(): planning sql/{function}.sql did not complete at once"
            ))
        })?
        .map_err(|e| DataFusionError::Plan(format!("{function}(): shipped SQL: {e}")))?;
    let plan = plan.with_param_values(params)?;
    Ok(Arc::new(ViewTable::new(plan, Some(text.to_string()))))
}

/// A small shop of traces with every kind of service-graph edge, shared by
/// the unit tests of the SQL functions and of the metrics generator.
#[cfg(test)]
pub(crate) mod test_spans {
    use crate::model::builders::SpanRow;

    pub const MS: i64 = 1_000_000;

    /// `(name, span, parent, kind, service, start ms, duration ms, status, attributes)`.
    type Spec = (
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
        &'static str,
        i64,
        i64,
        &'static str,
        &'static [(&'static str, &'static str)],
    );

    const TRACE_A: [Spec; 8] = [
        (
            "GET /checkout",
            "a000000000000001",
            None,
            "server",
            "frontend",
            0,
            100,
            "ok",
            &[],
        ),
        (
            "POST /checkout",
            "a000000000000002",
            Some("a000000000000001"),
            "client",
            "frontend",
            5,
            80,
            "unset",
            &[],
        ),
        (
            "POST /checkout",
            "a000000000000003",
            Some("a000000000000002"),
            "server",
            "checkout",
            10,
            70,
            "unset",
            &[],
        ),
        (
            "INSERT orders",
            "a000000000000004",
            Some("a000000000000003"),
            "client",
            "checkout",
            15,
            10,
            "unset",
            &[("db.system", "postgresql"), ("db.name", "orders")],
        ),
        (
            "GET cart",
            "a000000000000005",
            Some("a000000000000003"),
            "client",
            "checkout",
            26,
            5,
            "unset",
            &[("db.system", "redis")],
        ),
        (
            "charge",
            "a000000000000006",
            Some("a000000000000003"),
            "client",
            "checkout",
            32,
            20,
            "error",
            &[("peer.service", "payments-api")],
        ),
        (
            "orders publish",
            "a000000000000007",
            Some("a000000000000003"),
            "producer",
            "checkout",
            53,
            2,
            "unset",
            &[],
        ),
        (
            "orders process",
            "a000000000000008",
            Some("a000000000000007"),
            "consumer",
            "shipping",
            60,
            30,
            "unset",
            &[],
        ),
    ];

    const TRACE_B: [Spec; 3] = [
        (
            "GET /checkout",
            "b000000000000001",
            None,
            "server",
            "frontend",
            0,
            200,
            "ok",
            &[],
        ),
        (
            "POST /checkout",
            "b000000000000002",
            Some("b000000000000001"),
            "client",
            "frontend",
            5,
            150,
            "unset",
            &[],
        ),
        (
            "POST /checkout",
            "b000000000000003",
            Some("b000000000000002"),
            "server",
            "checkout",
            10,
            140,
            "error",
            &[],
        ),
    ];

    pub const TRACE_A_ID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    pub const TRACE_B_ID: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// Both traces, trace A starting at `base_ns` and trace B 1 s later.
    pub fn shop(base_ns: i64) -> Vec<SpanRow> {
        let mut out = Vec::new();
        for (trace, offset, specs) in [
            (TRACE_A_ID, 0, &TRACE_A[..]),
            (TRACE_B_ID, 1_000 * MS, &TRACE_B[..]),
        ] {
            for (name, span, parent, kind, service, start, duration, status, attrs) in specs {
                let start_ns = base_ns + offset + start * MS;
                out.push(SpanRow {
                    trace_id: trace.into(),
                    span_id: (*span).into(),
                    parent_span_id: parent.map(Into::into),
                    name: (*name).into(),
                    kind,
                    service: (*service).into(),
                    start_ns,
                    end_ns: start_ns + duration * MS,
                    status_code: status,
                    attributes: attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    resource_attributes: vec![("service.name".into(), (*service).into())],
                    ..SpanRow::default()
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use arrow::util::pretty::pretty_format_batches;

    use crate::engine::Engine;
    use crate::model::Signal;
    use crate::model::builders::SpansBuilder;

    use super::test_spans::{MS, shop};

    const BASE_NS: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

    async fn engine() -> (std::sync::Arc<Engine>, std::path::PathBuf) {
        let (engine, dir) = Engine::open_scratch("o11ydb-span-functions").await.unwrap();
        let mut b = SpansBuilder::new();
        for row in shop(BASE_NS) {
            b.push(row);
        }
        engine
            .ingester()
            .append_canonical("t", Signal::Spans, &b.finish())
            .await
            .unwrap();
        (engine, dir)
    }

    async fn rows(engine: &Engine, sql: &str) -> Result<String, String> {
        let ctx = engine.session("t").await.unwrap();
        let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        Ok(pretty_format_batches(&batches).unwrap().to_string())
    }

    #[tokio::test]
    async fn service_graph_edges() {
        let (engine, dir) = engine().await;
        let got = rows(
            &engine,
            "SELECT client, server, connection_type, request_count, failed_count, \
             round(p50_seconds, 6) AS p50_seconds, round(client_p50_seconds, 6) AS client_p50 \
             FROM service_graph('2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z') \
             ORDER BY client, server",
        )
        .await
        .unwrap();
        let want = "\
+----------+--------------+------------------+---------------+--------------+-------------+------------+
| client   | server       | connection_type  | request_count | failed_count | p50_seconds | client_p50 |
+----------+--------------+------------------+---------------+--------------+-------------+------------+
| checkout | orders       | database         | 1             | 0            | 0.01        | 0.01       |
| checkout | payments-api | virtual_node     | 1             | 1            |             | 0.02       |
| checkout | redis        | virtual_node     | 1             | 0            | 0.005       | 0.005      |
| checkout | shipping     | messaging_system | 1             | 0            | 0.03        | 0.002      |
| frontend | checkout     |                  | 2             | 1            | 0.105       | 0.115      |
| user     | frontend     | virtual_node     | 2             | 0            | 0.15        |            |
+----------+--------------+------------------+---------------+--------------+-------------+------------+";
        assert_eq!(got, want);
        // The window is half-open and applies to every span: trace B alone.
        let got = rows(
            &engine,
            &format!(
                "SELECT client, server, request_count, failed_count FROM service_graph({}, {})",
                (BASE_NS + 900 * MS) as f64 / 1e9,
                (BASE_NS + 2_000 * MS) as f64 / 1e9
            ),
        )
        .await
        .unwrap();
        assert!(
            got.contains("| frontend | checkout | 1             | 1            |")
                && got.contains("| user     | frontend | 1             | 0            |")
                && !got.contains("orders"),
            "{got}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn span_metrics_buckets() {
        let (engine, dir) = engine().await;
        let got = rows(
            &engine,
            "SELECT \"time\", service, span_name, span_kind, status_code, calls, errors, \
             duration_p50_seconds, duration_sum_seconds \
             FROM span_metrics('2026-01-01T00:00:00Z', '2026-01-01T00:00:02Z', interval '1 second') \
             WHERE service = 'frontend' ORDER BY \"time\", span_name",
        )
        .await
        .unwrap();
        let want = "\
+----------------------+----------+----------------+-----------+-------------+-------+--------+----------------------+----------------------+
| time                 | service  | span_name      | span_kind | status_code | calls | errors | duration_p50_seconds | duration_sum_seconds |
+----------------------+----------+----------------+-----------+-------------+-------+--------+----------------------+----------------------+
| 2026-01-01T00:00:00Z | frontend | GET /checkout  | server    | ok          | 1     | 0      | 0.1                  | 0.1                  |
| 2026-01-01T00:00:00Z | frontend | POST /checkout | client    | unset       | 1     | 0      | 0.08                 | 0.08                 |
| 2026-01-01T00:00:01Z | frontend | GET /checkout  | server    | ok          | 1     | 0      | 0.2                  | 0.2                  |
| 2026-01-01T00:00:01Z | frontend | POST /checkout | client    | unset       | 1     | 0      | 0.15                 | 0.15                 |
+----------------------+----------+----------------+-----------+-------------+-------+--------+----------------------+----------------------+";
        assert_eq!(got, want);
        let view = rows(
            &engine,
            "SELECT \"time\", service, span_kind, status_code, calls, errors FROM span_metrics \
             WHERE service = 'checkout' AND span_kind = 'server' ORDER BY status_code",
        )
        .await
        .unwrap();
        assert!(
            view.contains(
                "| 2026-01-01T00:00:00Z | checkout | server    | error       | 1     | 1      |"
            ) && view.contains(
                "| 2026-01-01T00:00:00Z | checkout | server    | unset       | 1     | 0      |"
            ),
            "{view}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn bad_arguments_are_named() {
        let (engine, dir) = engine().await;
        for (sql, want) in [
            (
                "SELECT * FROM service_graph(now())",
                "service_graph() takes (start, end); got 1 argument",
            ),
            ("SELECT * FROM service_graph(1, 2, 3)", "got 3 arguments"),
            (
                "SELECT * FROM service_graph('yesterday', now())",
                "service_graph() start \"yesterday\" is neither RFC 3339 nor Unix seconds",
            ),
            (
                "SELECT * FROM service_graph(true, now())",
                "service_graph() start must be a timestamp",
            ),
            (
                "SELECT * FROM service_graph(100, 50)",
                "service_graph() end 1970-01-01T00:00:50.000Z is before start 1970-01-01T00:01:40.000Z",
            ),
            (
                "SELECT * FROM span_metrics(0, 60, '-5s')",
                "span_metrics() step",
            ),
            (
                "SELECT * FROM span_metrics(0)",
                "span_metrics() takes (start, end) or (start, end, step); got 1 argument",
            ),
            (
                "SELECT * FROM span_metrics(0, 60, 'soon')",
                "span_metrics() step \"soon\" is not a duration",
            ),
        ] {
            let err = rows(&engine, sql).await.unwrap_err();
            assert!(err.contains(want), "{sql}: {err}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
