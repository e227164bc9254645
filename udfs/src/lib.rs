//! SQL functions of o11ydb that need nothing from the engine: pure
//! `ScalarUDF`/`AggregateUDF` implementations over Arrow arrays, registered
//! into every session by [`register_all`].
//!
//! * [`logql`] — per-line kernels of LogQL pipeline stages (parsers,
//!   templates, IP and pattern matchers).
//! * [`to_json::ToJson`] — `to_json(value)`: any value (maps, lists, structs
//!   included) as JSON text; also how nested columns reach Postgres clients.

pub mod logql;
pub mod promql;
pub mod to_json;

use datafusion::prelude::SessionContext;

/// Registers every function of this crate in `ctx`.
pub fn register_all(ctx: &SessionContext) {
    ctx.register_udf(to_json::to_json_udf());
}
