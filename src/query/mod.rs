//! Query languages other than SQL, each planned over the same table
//! providers as SQL: PromQL text → selector scans on `samples` → the
//! time-series evaluator → instant vectors, range matrices, scalars; LogQL
//! text → scans of `logs` with filters pushed down → per-line pipeline →
//! log streams, or per-step samples evaluated by the same time-series
//! evaluator. `table_function` holds what their SQL table functions share;
//! `span_functions` are the trace-derived ones (`service_graph()`,
//! `span_metrics()`), planned from parameterised SQL in `sql/`.

pub mod go_text;
pub mod logql;
pub mod promql;
pub mod span_functions;
pub mod table_function;
