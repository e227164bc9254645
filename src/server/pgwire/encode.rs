//! Results for Postgres clients.
//!
//! Postgres has no map type, so before a query's rows leave the server every
//! nested output column (maps, structs, lists of those) is wrapped in
//! `to_json(...)` and reported as `jsonb`; lists of scalars leave as Postgres
//! arrays, text columns marked `json`/`jsonb` by a cast
//! ([`super::catalog::marked_pg_type`]) as that type, NULLs as NULL of any
//! type, and everything else is described and encoded by `arrow-pg`. Rows stream out batch by batch as DataFusion produces them,
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
    match t {
        DataType::List(element) | DataType::LargeList(element) => {
            !is_array_element(element.data_type())
        }
        DataType::Map(..) | DataType::FixedSizeList(..) | DataType::Struct(_) => true,
        _ => false,
    }
}

/// Element types of lists that leave as Postgres arrays (`int8[]`,
/// `float8[]`, `text[]`, ...) rather than as JSON.
fn is_array_element(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::Date32
            | DataType::Timestamp(..)
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
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
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
                match super::catalog::marked_pg_type(f) {
                    Some("json") => Type::JSON,
                    Some("jsonb") => Type::JSONB,
                    _ => field_into_pg_type(f)?,
                }
            };
            let mut info =
                FieldInfo::new(f.name().clone(), None, None, pg_type, format.format_for(i));
            if let Some(o) = &options {
                info = info.with_format_options(o.clone());
            }
            Ok(info)
        })
        .collect()
}

/// Already formatted text of a field: JSON for `jsonb`/`json` columns (with
/// the `jsonb` version byte in binary format), or the text form of a value
/// printed the way Postgres prints it.
#[derive(Debug)]
struct PgText<'a>(&'a str);

impl ToSql for PgText<'_> {
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
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
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

/// A timestamp as Postgres prints it in UTC: `2026-01-01 12:00:00.25+00`
/// (microsecond precision, trailing zeros dropped, `+00` for timestamptz).
pub fn postgres_timestamp_text(
    raw: i64,
    unit: arrow::datatypes::TimeUnit,
    with_tz: bool,
) -> String {
    use arrow::datatypes::TimeUnit;
    let nanos: i128 = match unit {
        TimeUnit::Second => raw as i128 * 1_000_000_000,
        TimeUnit::Millisecond => raw as i128 * 1_000_000,
        TimeUnit::Microsecond => raw as i128 * 1_000,
        TimeUnit::Nanosecond => raw as i128,
    };
    let secs = nanos.div_euclid(1_000_000_000) as i64;
    // Postgres keeps microseconds; round half away from zero like its input does.
    let mut micros = (nanos.rem_euclid(1_000_000_000) as i64 + 500) / 1000;
    let mut secs = secs;
    if micros == 1_000_000 {
        secs += 1;
        micros = 0;
    }
    let Some(t) = chrono::DateTime::from_timestamp(secs, 0) else {
        return raw.to_string();
    };
    let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    if micros > 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if with_tz {
        out.push_str("+00");
    }
    out
}

/// How one column's values are written.
enum ColumnText {
    /// `arrow-pg`'s encoding.
    Native,
    /// JSON text (converted by `to_json`, or checked by a `json` cast).
    Json(arrow::array::StringArray),
    /// Text-format floats, printed like Postgres.
    Float(arrow::array::Float64Array),
    /// Text-format timestamps as integers in `unit`, printed like Postgres.
    Timestamp(arrow::array::Int64Array, arrow::datatypes::TimeUnit, bool),
}

fn column_text(column: &arrow::array::ArrayRef, field: &FieldInfo, json: bool) -> ColumnText {
    use pgwire::api::results::FieldFormat;
    if json || *field.datatype() == Type::JSON || *field.datatype() == Type::JSONB {
        return arrow::compute::cast(column, &DataType::Utf8)
            .map(|a| ColumnText::Json(a.as_string::<i32>().clone()))
            .unwrap_or(ColumnText::Native);
    }
    if field.format() != FieldFormat::Text {
        return ColumnText::Native;
    }
    match column.data_type() {
        DataType::Float64 | DataType::Float32 => arrow::compute::cast(column, &DataType::Float64)
            .map(|a| ColumnText::Float(a.as_primitive::<arrow::datatypes::Float64Type>().clone()))
            .unwrap_or(ColumnText::Native),
        DataType::Timestamp(unit, tz) => arrow::compute::cast(column, &DataType::Int64)
            .map(|a| {
                ColumnText::Timestamp(
                    a.as_primitive::<arrow::datatypes::Int64Type>().clone(),
                    *unit,
                    tz.is_some(),
                )
            })
            .unwrap_or(ColumnText::Native),
        _ => ColumnText::Native,
    }
}

fn encode_batch(
    batch: &RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
    json: &[bool],
) -> Vec<PgWireResult<DataRow>> {
    let mut encoder = DataRowEncoder::new(fields.clone());
    let schema = batch.schema();
    let texts: Vec<ColumnText> = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(c, column)| column_text(column, &fields[c], json[c]))
        .collect();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut result = Ok(());
        for (c, column) in batch.columns().iter().enumerate() {
            let field = &fields[c];
            let mut text = |s: &str| {
                encoder.encode_field_with_type_and_format(
                    &PgText(s),
                    field.datatype(),
                    field.format(),
                    field.format_options(),
                )
            };
            result = if column.is_null(row) {
                encoder.encode_field(&None::<i8>)
            } else {
                match &texts[c] {
                    ColumnText::Native => {
                        encode_value(&mut encoder, column, row, schema.field(c), field)
                    }
                    ColumnText::Float(values) => text(&postgres_float_text(values.value(row))),
                    ColumnText::Timestamp(values, unit, tz) => {
                        text(&postgres_timestamp_text(values.value(row), *unit, *tz))
                    }
                    ColumnText::Json(values) => text(values.value(row)),
                }
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
    fn timestamps_print_like_postgres() {
        use super::postgres_timestamp_text as t;
        use arrow::datatypes::TimeUnit;
        assert_eq!(
            t(1_767_225_600_250_000_000, TimeUnit::Nanosecond, true),
            "2026-01-01 00:00:00.25+00"
        );
        assert_eq!(
            t(1_767_225_600_000, TimeUnit::Millisecond, true),
            "2026-01-01 00:00:00+00"
        );
        assert_eq!(
            t(1_767_225_600_123_456_789, TimeUnit::Nanosecond, false),
            "2026-01-01 00:00:00.123457"
        );
        assert_eq!(t(-1, TimeUnit::Second, true), "1969-12-31 23:59:59+00");
    }

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
