//! Server settings as Postgres clients read them: `SHOW name` and
//! `current_setting('name')`.
//!
//! Drivers read a handful of settings when they connect or introspect types
//! (`SHOW transaction_isolation`, `current_setting('jit')`,
//! `server_version_num`, ...). The values o11ydb fixes are answered here; the
//! settings a client can change (`TimeZone`, `statement_timeout`,
//! `application_name`, `DateStyle`, ...) are left to the session's
//! `SET`/`SHOW` hook, which keeps them per connection. A name neither knows
//! is an error `42704`, as in Postgres.
//!
//! A tenant's DataFusion session is shared by all of its connections, so a
//! `SET`/`RESET` that DataFusion would apply to it (`datafusion.*` options,
//! such as the default schema or the memory limit) is refused with `0A000`,
//! and `SET timezone = ...` becomes `SET TIME ZONE ...`, which the hook keeps
//! per connection ([`confine_to_connection`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, Volatility, lit,
};
use datafusion::sql::sqlparser::ast::{ObjectName, Reset, ResetStatement, Set, Statement};
use pgwire::api::ClientInfo;
use pgwire::error::PgWireResult;

use super::errors::{from_datafusion, user_error};

/// The `server_version` o11ydb reports (also in `version()`).
pub const SERVER_VERSION: &str = "16.6";

/// Settings whose value o11ydb fixes (Postgres names, lower case).
const FIXED: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", "160006"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("max_identifier_length", "63"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
    ("default_transaction_read_only", "off"),
    ("is_superuser", "on"),
    ("lc_collate", "C.UTF-8"),
    ("lc_ctype", "C.UTF-8"),
    ("lc_messages", "C.UTF-8"),
    ("lc_monetary", "C.UTF-8"),
    ("lc_numeric", "C.UTF-8"),
    ("lc_time", "C.UTF-8"),
    ("jit", "off"),
    ("max_connections", "100"),
    ("block_size", "8192"),
    ("default_text_search_config", "pg_catalog.english"),
];

/// Settings the connection's `SET`/`SHOW` hook answers, with their defaults
/// for `current_setting` (which cannot see the connection).
const PER_CONNECTION: &[(&str, &str)] = &[
    ("timezone", "UTC"),
    ("time zone", "UTC"),
    ("statement_timeout", "0"),
    ("application_name", ""),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("bytea_output", "hex"),
    ("extra_float_digits", "1"),
    ("search_path", "\"$user\", public"),
    ("catalogs", ""),
];

/// The value of a fixed setting.
pub fn fixed(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    FIXED.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn unrecognized(name: &str) -> String {
    format!("unrecognized configuration parameter \"{name}\"")
}

/// A `SET`/`RESET` as one connection may run it: `SET timezone = x`
/// (which DataFusion would apply to the session every connection of the
/// tenant shares) as `SET TIME ZONE x`, `RESET timezone` as
/// `SET TIME ZONE 'UTC'`; a `datafusion.*` option is refused.
/// Other statements pass unchanged.
pub fn confine_to_connection(statement: Statement) -> PgWireResult<Statement> {
    fn option_name(name: &ObjectName) -> String {
        name.to_string().replace('"', "").to_ascii_lowercase()
    }
    let refused = |name: String| {
        Err(user_error(
            "0A000",
            format!(
                "parameter \"{name}\" cannot be changed over the Postgres wire protocol: \
                 the session's options are shared by every connection of its tenant"
            ),
        ))
    };
    match statement {
        Statement::Set(Set::SingleAssignment {
            scope: _,
            hivevar: false,
            ref variable,
            ref values,
        }) => {
            let name = option_name(variable);
            if name.starts_with("datafusion.") {
                return refused(name);
            }
            if matches!(name.as_str(), "timezone" | "time.zone") && values.len() == 1 {
                return Ok(Statement::Set(Set::SetTimeZone {
                    local: false,
                    value: values[0].clone(),
                }));
            }
            Ok(statement)
        }
        Statement::Reset(ResetStatement {
            reset: Reset::ConfigurationParameter(ref name),
        }) => {
            let name = option_name(name);
            if name.starts_with("datafusion.") {
                return refused(name);
            }
            if matches!(name.as_str(), "timezone" | "time.zone") {
                // The sessions' time zone (see `Engine::tables_session`).
                return Ok(Statement::Set(Set::SetTimeZone {
                    local: false,
                    value: datafusion::sql::sqlparser::ast::Expr::value(
                        datafusion::sql::sqlparser::ast::Value::SingleQuotedString("UTC".into()),
                    ),
                }));
            }
            Ok(statement)
        }
        other => Ok(other),
    }
}

/// The plan of a `SHOW` statement o11ydb answers itself: one row, one column
/// named after the setting. `None` leaves the statement to the hooks;
/// an unknown name is an error.
pub fn plan_show<C: ClientInfo + ?Sized>(
    statement: &Statement,
    client: &C,
) -> Option<PgWireResult<LogicalPlan>> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let name = variable
        .iter()
        .map(|v| v.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    let (column, value) = match name.as_str() {
        "transaction isolation level" => ("transaction_isolation", "read committed"),
        "all" => {
            return Some(Err(user_error(
                "0A000",
                "SHOW ALL is not supported; query pg_catalog.pg_settings",
            )));
        }
        other => match fixed(other) {
            Some(value) => (other, value),
            None => {
                let known = PER_CONNECTION.iter().any(|(n, _)| *n == other)
                    || client.metadata().contains_key(other);
                if known {
                    return None;
                }
                return Some(Err(user_error("42704", unrecognized(other))));
            }
        },
    };
    Some(
        LogicalPlanBuilder::empty(true)
            .project(vec![lit(value).alias(column)])
            .and_then(|b| b.build())
            .map_err(|e| from_datafusion(&e, None)),
    )
}

/// `current_setting(name [, missing_ok])`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let names = arrow::compute::cast(&args.args[0].to_array(rows)?, &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let missing_ok = match args.args.get(1) {
            Some(m) => Some(m.to_array(rows)?.as_boolean().clone()),
            None => None,
        };
        let mut out = StringBuilder::new();
        for row in 0..rows {
            if names.is_null(row) {
                out.append_null();
                continue;
            }
            let name = names.value(row);
            let lower = name.to_ascii_lowercase();
            let value = fixed(&lower).or_else(|| {
                PER_CONNECTION
                    .iter()
                    .find(|(n, _)| *n == lower)
                    .map(|(_, v)| *v)
            });
            match value {
                Some(v) => out.append_value(v),
                None if missing_ok
                    .as_ref()
                    .is_some_and(|m| !m.is_null(row) && m.value(row)) =>
                {
                    out.append_null()
                }
                None => return exec_err!("{}", unrecognized(name)),
            }
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(ColumnarValue::Array(array))
    }
}

/// The `current_setting` function.
pub fn current_setting_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(CurrentSetting {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
    })
}

/// `set_config(name, value, is_local)`: accepted when it keeps a fixed
/// setting's value (asyncpg turns `jit` off before introspecting types);
/// anything else is refused, as o11ydb cannot change it from a query.
pub fn set_config_udf() -> ScalarUDF {
    datafusion::logical_expr::create_udf(
        "set_config",
        vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
        DataType::Utf8,
        Volatility::Volatile,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
            let values = arrow::compute::cast(&arrays[1], &DataType::Utf8)?;
            let (names, values) = (names.as_string::<i32>(), values.as_string::<i32>());
            let mut out = StringBuilder::new();
            for row in 0..names.len() {
                if names.is_null(row) || values.is_null(row) {
                    out.append_null();
                    continue;
                }
                let (name, value) = (names.value(row), values.value(row));
                match fixed(name) {
                    Some(current) if current.eq_ignore_ascii_case(value) => out.append_value(value),
                    Some(current) => {
                        return exec_err!(
                            "set_config cannot change \"{name}\": o11ydb fixes it at \"{current}\""
                        );
                    }
                    None => {
                        return exec_err!(
                            "set_config(\"{name}\") is not supported; use SET {name} = ..."
                        );
                    }
                }
            }
            let array: ArrayRef = Arc::new(out.finish());
            Ok(ColumnarValue::Array(array))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;
    use pgwire::error::PgWireError;

    async fn one(ctx: &SessionContext, sql: &str) -> DfResult<String> {
        let batches = ctx.sql(sql).await?.collect().await?;
        let column = arrow::compute::cast(batches[0].column(0), &DataType::Utf8)?;
        Ok(column.as_string::<i32>().value(0).to_string())
    }

    #[tokio::test]
    async fn current_setting_answers_what_drivers_ask() {
        let ctx = SessionContext::new();
        ctx.register_udf(current_setting_udf());
        assert_eq!(
            one(&ctx, "SELECT current_setting('jit')").await.unwrap(),
            "off"
        );
        assert_eq!(
            one(&ctx, "SELECT current_setting('server_version_num')")
                .await
                .unwrap(),
            "160006"
        );
        assert_eq!(
            one(&ctx, "SELECT current_setting('search_path')")
                .await
                .unwrap(),
            "\"$user\", public"
        );
        let err = one(&ctx, "SELECT current_setting('nope')")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("unrecognized configuration parameter \"nope\""),
            "{err}"
        );
        ctx.register_udf(set_config_udf());
        assert_eq!(
            one(&ctx, "SELECT set_config('jit', 'off', false)")
                .await
                .unwrap(),
            "off"
        );
        assert!(
            one(&ctx, "SELECT set_config('jit', 'on', false)")
                .await
                .is_err()
        );
        let batches = ctx
            .sql("SELECT current_setting('nope', true) IS NULL")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert!(batches[0].column(0).as_boolean().value(0));
    }

    #[test]
    fn settings_of_the_shared_session_stay_with_the_connection() {
        use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let confine = |sql: &str| {
            let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0);
            confine_to_connection(statement).map(|s| s.to_string())
        };
        for sql in [
            "SET datafusion.catalog.default_schema = 'other'",
            "SET \"datafusion.runtime.memory_limit\" = '100G'",
            "SET SESSION datafusion.execution.batch_size = 1",
            "RESET datafusion.catalog.default_schema",
        ] {
            let Err(PgWireError::UserError(e)) = confine(sql) else {
                panic!("{sql} must be refused");
            };
            assert_eq!(e.code, "0A000", "{sql}");
            assert!(e.message.contains("datafusion."), "{sql}: {}", e.message);
        }
        assert_eq!(
            confine("SET timezone = 'Europe/Berlin'").unwrap(),
            "SET TIME ZONE 'Europe/Berlin'"
        );
        assert_eq!(confine("RESET TimeZone").unwrap(), "SET TIME ZONE 'UTC'");
        for sql in [
            "SET search_path = public",
            "SET statement_timeout = '5s'",
            "SET TIME ZONE 'UTC'",
            "SELECT 1",
        ] {
            assert_eq!(confine(sql).unwrap(), sql);
        }
    }
}
