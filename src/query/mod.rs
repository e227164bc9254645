//! Query languages other than SQL, each planned over the same table
//! providers as SQL: PromQL text → selector scans on `samples` → the
//! time-series evaluator → instant vectors, range matrices, scalars; LogQL
//! text → scans of `logs` with filters pushed down → per-line pipeline →
//! log streams, or per-step samples evaluated by the same time-series
//! evaluator; TraceQL text → scans of `spans` with conditions pushed down →
//! whole candidate traces → spansets (or per-step series for metrics
//! queries). `scan_plan` plans their scans (filter, project, maybe sort)
//! straight to physical plans; `table_function` holds what their SQL table
//! functions share; `span_functions` are the trace-derived ones (`service_graph()`,
//! `span_metrics()`): `span_metrics` planned from parameterised SQL in
//! `sql/`, `service_graph` computed per trace by the operator of
//! `service_graph` (the SQL of `sql/service_graph.sql` is its reference); `check` is
//! the `ok`/`err` query-file checker, `parse_error` the positioned error
//! every parser returns. `frontend` sits in front of them all: query limits,
//! splitting by time, sharding (PromQL by series, LogQL metric queries by
//! stream), the results cache and the per-tenant fair queue.

pub mod check;
pub mod frontend;
#[cfg(test)]
mod fuzz_support;
pub mod go_text;
pub mod histogram_functions;
pub mod logql;
pub mod parse_error;
pub mod promql;
pub mod scan_plan;
pub mod service_graph;
pub mod span_functions;
pub mod table_function;
pub mod traceql;
