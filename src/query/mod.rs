//! Query languages other than SQL, each planned over the same table
//! providers as SQL: PromQL text → selector scans on `samples` → the
//! time-series evaluator → instant vectors, range matrices, scalars.

pub mod go_text;
pub mod logql;
pub mod promql;
pub mod table_function;
