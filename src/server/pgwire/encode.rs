//! Results for Postgres clients.
//!
//! Postgres has no map type, so before a query's rows leave the server every
//! nested output column (maps, lists, structs) is wrapped in `to_json(...)`
//! and reported as `jsonb`; everything else is described and encoded by
//! `arrow-pg`. Rows stream out batch by batch as DataFusion produces them,
//! and an error in the middle of the stream becomes a proper `ErrorResponse`.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use arrow_pg::datatypes::field_into_pg_type;
use arrow_pg::encoder::encode_value;
use bytes::{BufMut, BytesMut};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, stream};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql, to_sql_checked};

use super::errors::from_datafusion;

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Map(..)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
    )
}

/// Wraps a query's plan so nested columns come out as JSON text. Returns the
/// plan and, per output column, whether it is JSON. Plans that do not return
/// rows of data (DDL, DML, `EXPLAIN`) are returned unchanged.
pub fn jsonify_plan(plan: LogicalPlan) -> DfResult<(LogicalPlan, Vec<bool>)> {
    let fields = plan.schema().fields().clone();
    let nested: Vec<bool> = fields.iter().map(|f| is_nested(f.data_type())).collect();
    let is_query = !matches!(
        plan,
        LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)
    );
    if !is_query || !nested.iter().any(|n| *n) {
        return Ok((plan, vec![false; fields.len()]));
    }
    let to_json = Arc::new(o11ydb_udfs::to_json::to_json_udf());
    let schema = plan.schema().clone();
    let exprs: Vec<Expr> = schema
        .iter()
        .zip(&nested)
        .map(|((qualifier, field), nested)| {
            let column = Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ));
            if *nested {
                to_json.call(vec![column]).alias(field.name())
            } else {
                column
            }
        })
        .collect();
    let plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
    Ok((plan, nested))
}

/// RowDescription fields for `schema`, JSON columns as `jsonb`.
pub fn pg_fields(
    schema: &Schema,
    json: &[bool],
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let pg_type = if json.get(i).copied().unwrap_or(false) {
                Type::JSONB
            } else {
                field_into_pg_type(f)?
            };
            let mut info = FieldInfo::new(f.name().clone(), None, None, pg_type, format.format_for(i));
            if let Some(o) = &options {
                info = info.with_format_options(o.clone());
            }
            Ok(info)
        })
        .collect()
}

/// JSON text, written with the `jsonb` binary version byte when asked for binary.
#[derive(Debug)]
struct JsonText<'a>(&'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}

impl ToSqlText for JsonText<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

/// Already formatted text for a text-format field.
#[derive(Debug)]
struct PgText<'a>(&'a str);

impl ToSql for PgText<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl ToSqlText for PgText<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

/// A float as Postgres prints `float8` (shortest exact digits; exponent form
/// below 1e-4 and from 1e15 on, as `1e+20` / `1.5e-07`).
pub fn postgres_float_text(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("numeric exponent");
    if (-4..15).contains(&exp) {
        format!("{v}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn encode_batch(batch: &RecordBatch, fields: &Arc<Vec<FieldInfo>>, json: &[bool]) -> Vec<PgWireResult<DataRow>> {
    let mut encoder = DataRowEncoder::new(fields.clone());
    let schema = batch.schema();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut result = Ok(());
        for (c, column) in batch.columns().iter().enumerate() {
            let field = &fields[c];
            let float_text = field.format() == pgwire::api::results::FieldFormat::Text
                && matches!(column.data_type(), DataType::Float64 | DataType::Float32);
            result = if float_text {
                if column.is_null(row) {
                    encoder.encode_field(&None::<i8>)
                } else {
                    let v = match column.data_type() {
                        DataType::Float32 => column.as_primitive::<arrow::datatypes::Float32Type>().value(row) as f64,
                        _ => column.as_primitive::<arrow::datatypes::Float64Type>().value(row),
                    };
                    encoder.encode_field_with_type_and_format(
                        &PgText(&postgres_float_text(v)),
                        field.datatype(),
                        field.format(),
                        field.format_options(),
                    )
                }
            } else if json[c] {
                if column.is_null(row) {
                    encoder.encode_field(&None::<i8>)
                } else {
                    let text = column.as_string::<i32>().value(row);
                    encoder.encode_field_with_type_and_format(
                        &JsonText(text),
                        field.datatype(),
                        field.format(),
                        field.format_options(),
                    )
                }
            } else {
                encode_value(&mut encoder, column, row, schema.field(c), field)
            };
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => rows.push(Ok(encoder.take_row())),
            Err(e) => {
                rows.push(Err(e));
                break;
            }
        }
    }
    rows
}

/// Executes `plan` (already through [`jsonify_plan`]) and streams its rows.
pub async fn query_response(
    ctx: &SessionContext,
    plan: LogicalPlan,
    json: Vec<bool>,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
    query: Option<String>,
) -> PgWireResult<QueryResponse> {
    let df = ctx
        .execute_logical_plan(plan)
        .await
        .map_err(|e| from_datafusion(&e, query.as_deref()))?;
    let schema: Schema = df.schema().as_arrow().clone();
    let fields = Arc::new(pg_fields(&schema, &json, format, options)?);
    let stream: SendableRecordBatchStream = df
        .execute_stream()
        .await
        .map_err(|e| from_datafusion(&e, query.as_deref()))?;
    let json = Arc::new(json);
    let fields_for_rows = fields.clone();
    let rows = stream
        .map(move |batch| {
            let rows: Vec<PgWireResult<DataRow>> = match batch {
                Ok(batch) => encode_batch(&batch, &fields_for_rows, &json),
                Err(e) => vec![Err::<DataRow, PgWireError>(from_datafusion(&e, None))],
            };
            stream::iter(rows)
        })
        .flatten();
    Ok(QueryResponse::new(fields, rows))
}

#[cfg(test)]
mod tests {
    use super::postgres_float_text as f;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(f(1.0), "1");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1.5e-7), "1.5e-07");
        assert_eq!(f(123456789012345.0), "123456789012345");
        assert_eq!(f(1234567890123456.0), "1.234567890123456e+15");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::NEG_INFINITY), "-Infinity");
    }
}
