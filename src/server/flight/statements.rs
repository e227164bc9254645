//! SQL text → DataFusion plan → a stream of Flight data, and the prepared
//! statements kept between calls.
//!
//! A statement is planned without running it (for its schema), checked
//! against what Flight SQL clients may do (no DDL, no `SET`: the tenant's
//! session is shared), and executed with `execute_stream`; batches are
//! encoded as DataFusion produces them. Prepared statements live in memory
//! under a random handle with their tenant and bound parameters; a handle is
//! only visible to its tenant.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_flight::FlightData;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use datafusion::common::ScalarValue;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use parking_lot::Mutex;
use tonic::Status;

use super::errors::from_datafusion;

/// The Flight data stream of a `DoGet`.
pub type FlightStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

/// Most prepared statements kept open at once (over all clients).
pub const MAX_PREPARED: usize = 10_000;

/// Plans `sql` in `ctx` without running it, refusing DDL and session statements.
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, Status> {
    let plan = ctx
        .state()
        .create_logical_plan(sql)
        .await
        .map_err(|e| from_datafusion(&e))?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|_| {
            Status::invalid_argument(format!(
                "{} is not supported over Flight SQL: o11ydb's tables (logs, samples, spans) \
                 are managed by the server and sessions are shared",
                plan.display()
            ))
        })?;
    Ok(plan)
}

/// The schema clients receive for `schema`: what the Flight encoder sends
/// (dictionaries are sent as their values).
pub fn flight_schema(schema: SchemaRef) -> SchemaRef {
    FlightDataEncoderBuilder::new()
        .with_schema(schema.clone())
        .build(futures::stream::empty())
        .known_schema()
        .unwrap_or(schema)
}

/// Runs `plan` and streams its batches as Flight data as they are produced,
/// from a task of its own ([`super::running::pump`]) holding `running` (the
/// query's timer and queue slot) until the batches end, the client goes
/// away or `registration`'s statement is cancelled.
pub async fn execute(
    ctx: &SessionContext,
    plan: LogicalPlan,
    running: (
        crate::metrics::QueryTimer,
        crate::query::frontend::queue::Permit,
    ),
    registration: Option<super::running::Registration>,
) -> Result<FlightStream, Status> {
    let df = ctx
        .execute_logical_plan(plan)
        .await
        .map_err(|e| from_datafusion(&e))?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df
        .execute_stream()
        .await
        .map_err(|e| from_datafusion(&e))?
        .map_err(|e| FlightError::Tonic(Box::new(from_datafusion(&e))));
    Ok(encode(
        schema,
        super::running::pump(batches, running, registration),
    ))
}

/// Encodes a stream of batches of `schema`.
pub fn encode(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
) -> FlightStream {
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from),
    )
}

/// The parameters of `plan` (`$1`, `$2`, …) as a schema, in order; a
/// parameter whose type DataFusion cannot infer is `Null`.
pub fn parameter_schema(plan: &LogicalPlan) -> Result<Schema, Status> {
    let types = plan
        .get_parameter_types()
        .map_err(|e| from_datafusion(&e))?;
    let mut named: Vec<(usize, String, Option<DataType>)> = types
        .into_iter()
        .map(|(name, ty)| {
            let n = name
                .strip_prefix('$')
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            (n, name, ty)
        })
        .collect();
    named.sort();
    Ok(Schema::new(
        named
            .into_iter()
            .map(|(_, name, ty)| Field::new(name, ty.unwrap_or(DataType::Null), true))
            .collect::<Vec<_>>(),
    ))
}

/// One row of parameter values from the batches a client bound.
pub fn parameter_row(batches: &[RecordBatch]) -> Result<Vec<ScalarValue>, Status> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(vec![]);
    };
    if rows > 1 {
        return Err(Status::invalid_argument(format!(
            "{rows} rows of parameters were bound; o11ydb runs a prepared query with one row of \
             parameters at a time"
        )));
    }
    batch
        .columns()
        .iter()
        .map(|c| ScalarValue::try_from_array(c, 0))
        .collect::<Result<_, _>>()
        .map_err(|e| Status::invalid_argument(format!("cannot read a bound parameter: {e}")))
}

/// `plan` with `values` in place of its parameters, each cast to the type
/// the plan expects.
pub fn bind(plan: LogicalPlan, values: &[ScalarValue]) -> Result<LogicalPlan, Status> {
    let expected = parameter_schema(&plan)?;
    if expected.fields().is_empty() && values.is_empty() {
        return Ok(plan);
    }
    if values.len() != expected.fields().len() {
        return Err(Status::invalid_argument(format!(
            "the statement has {} parameter(s) ({}) and {} value(s) were bound",
            expected.fields().len(),
            expected
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
            values.len()
        )));
    }
    let values = values
        .iter()
        .zip(expected.fields())
        .map(|(v, f)| {
            if f.data_type() == &DataType::Null || &v.data_type() == f.data_type() {
                Ok(v.clone())
            } else {
                v.cast_to(f.data_type()).map_err(|e| {
                    Status::invalid_argument(format!(
                        "parameter {} ({}) cannot be used as {}: {}",
                        f.name(),
                        v.data_type(),
                        f.data_type(),
                        super::super::pgwire::errors::clean_message(&e)
                    ))
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    plan.with_param_values(values)
        .map_err(|e| from_datafusion(&e))
}

/// A prepared statement: its SQL, whose it is and its bound parameters.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub tenant: String,
    pub sql: String,
    pub params: Vec<ScalarValue>,
}

/// The open prepared statements by handle.
#[derive(Default)]
pub struct PreparedStatements {
    open: Mutex<HashMap<String, Prepared>>,
}

impl PreparedStatements {
    /// Keeps `sql` under a new handle.
    pub fn create(&self, tenant: &str, sql: &str) -> Result<String, Status> {
        let mut open = self.open.lock();
        if open.len() >= MAX_PREPARED {
            return Err(Status::resource_exhausted(format!(
                "{MAX_PREPARED} prepared statements are open; close some \
                 (ClosePreparedStatement) before preparing more"
            )));
        }
        let handle = uuid::Uuid::new_v4().simple().to_string();
        open.insert(
            handle.clone(),
            Prepared {
                tenant: tenant.to_string(),
                sql: sql.to_string(),
                params: vec![],
            },
        );
        Ok(handle)
    }

    /// The statement of `handle` if `tenant` prepared it.
    pub fn get(&self, handle: &[u8], tenant: &str) -> Result<Prepared, Status> {
        let open = self.open.lock();
        match std::str::from_utf8(handle).ok().and_then(|h| open.get(h)) {
            Some(p) if p.tenant == tenant => Ok(p.clone()),
            _ => Err(not_found(handle)),
        }
    }

    /// Binds `params` to the statement of `handle`.
    pub fn bind(
        &self,
        handle: &[u8],
        tenant: &str,
        params: Vec<ScalarValue>,
    ) -> Result<(), Status> {
        let mut open = self.open.lock();
        match std::str::from_utf8(handle)
            .ok()
            .and_then(|h| open.get_mut(h))
        {
            Some(p) if p.tenant == tenant => {
                p.params = params;
                Ok(())
            }
            _ => Err(not_found(handle)),
        }
    }

    /// Forgets the statement of `handle`.
    pub fn close(&self, handle: &[u8], tenant: &str) -> Result<(), Status> {
        let mut open = self.open.lock();
        let key = std::str::from_utf8(handle).map_err(|_| not_found(handle))?;
        match open.get(key) {
            Some(p) if p.tenant == tenant => {
                open.remove(key);
                Ok(())
            }
            _ => Err(not_found(handle)),
        }
    }
}

fn not_found(handle: &[u8]) -> Status {
    Status::not_found(format!(
        "no open prepared statement {:?} (closed, or prepared by another tenant)",
        String::from_utf8_lossy(handle)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parameters_are_ordered_typed_and_cast() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a BIGINT, b VARCHAR) AS VALUES (1, 'x'), (2, 'y')")
            .await
            .unwrap();
        let p = plan(&ctx, "SELECT b FROM t WHERE b = $2 AND a = $1")
            .await
            .unwrap();
        let schema = parameter_schema(&p).unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["$1", "$2"]);
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        // An Int32 value is cast to the Int64 the plan wants.
        let bound = bind(
            p.clone(),
            &[ScalarValue::Int32(Some(2)), ScalarValue::from("y")],
        )
        .unwrap();
        let rows = ctx
            .execute_logical_plan(bound)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        let err = bind(p, &[ScalarValue::Int32(Some(2))]).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("2 parameter(s) ($1, $2)"),
            "{}",
            err.message()
        );
    }

    #[tokio::test]
    async fn ddl_and_set_are_refused() {
        let ctx = SessionContext::new();
        for sql in [
            "CREATE TABLE x (a INT)",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let err = plan(&ctx, sql).await.unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{sql}");
            assert!(err.message().contains("not supported over Flight SQL"));
        }
        assert!(ctx.table_exist("x").unwrap().eq(&false));
    }

    #[test]
    fn handles_belong_to_their_tenant() {
        let store = PreparedStatements::default();
        let h = store.create("a", "SELECT 1").unwrap();
        assert!(store.get(h.as_bytes(), "a").is_ok());
        assert_eq!(
            store.get(h.as_bytes(), "b").unwrap_err().code(),
            tonic::Code::NotFound
        );
        assert!(store.close(h.as_bytes(), "b").is_err());
        store.close(h.as_bytes(), "a").unwrap();
        assert!(store.get(h.as_bytes(), "a").is_err());
    }
}
