//! Client SQL → SQL DataFusion plans: the rewrites o11ydb adds to
//! `datafusion-pg-catalog`'s Postgres-compatibility parser for what psql and
//! drivers send.
//!
//! * `ARRAY(SELECT e FROM ... [ORDER BY o])` (psql `\du`, catalog queries)
//!   becomes the scalar subquery `(SELECT array_agg(e ORDER BY o) FROM ...)`;
//!   over no rows it is NULL where Postgres gives `{}`.
//! * `x::json` / `x::jsonb` become `pg_cast_json(x)` / `pg_cast_jsonb(x)`
//!   ([`super::catalog`]): checked JSON text that leaves as `json`/`jsonb`.
//! * `'array_in'::regproc` becomes the name itself: `pg_type`'s `regproc`
//!   columns hold function names (pgjdbc's array check compares them).
//! * psql `\d+`'s TOAST options (`c.reloptions || array(select 'toast.' ||
//!   x from pg_catalog.unnest(tc.reloptions) x)`) become a NULL `text[]`:
//!   o11ydb's tables have no storage options and no TOAST tables.
//! * asyncpg's type introspection (a recursive CTE over `pg_type` for
//!   domains, ranges and composites, which o11ydb does not have) becomes the
//!   equivalent one-level lookup of the requested base and array types.
//! * `$1::oid[]` parameters are described as `oid[]` (DataFusion plans them
//!   as `int4[]`; asyncpg only encodes `oid[]` without introspection) and
//!   their binary values read as `int4[]`.
//! * Interval parameters in text with abbreviated units (pgjdbc's
//!   `0 years 0 mons 1 days 0 hours 0 mins 5.0 secs`), which Postgres reads
//!   but the parameter decoder does not, get the long unit names.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::sql::sqlparser::ast::{
    self, DataType as SqlType, Expr, FunctionArguments, Ident, ObjectName, Query, SelectItem,
    SetExpr, Statement, visit_expressions, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use pgwire::api::Type;
use regex::Regex;

use pgwire::api::portal::Portal;

use super::catalog::JsonKind;

static REGPROC_LITERAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)'(?:pg_catalog\.)?([a-z_][a-z0-9_]*)'\s*::\s*(?:pg_catalog\s*\.\s*)?regproc\b")
        .expect("valid regex")
});

static PSQL_TOAST_OPTIONS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)c\.reloptions\s*\|\|\s*array\s*\(\s*select\s+'toast\.'\s*\|\|\s*x\s+from\s+pg_catalog\.unnest\s*\(\s*tc\.reloptions\s*\)\s*x\s*\)",
    )
    .expect("valid regex")
});

/// asyncpg's type lookup for o11ydb's catalog, where every type is a base
/// type or an array of one (same columns and parameter as asyncpg's query).
const ASYNCPG_TYPE_LOOKUP: &str = "SELECT t.oid AS oid, ns.nspname AS ns, t.typname AS name, \
     t.typtype AS kind, CAST(NULL AS INT) AS basetype, t.typelem AS elemtype, \
     elem_t.typdelim AS elemdelim, CAST(NULL AS INT) AS range_subtype, \
     CAST(NULL AS TEXT[]) AS attrtypoids, CAST(NULL AS TEXT[]) AS attrnames, 0 AS depth, \
     CAST(NULL AS TEXT) AS basetype_name, elem_t.typname AS elemtype_name, \
     CAST(NULL AS TEXT) AS range_subtype_name \
     FROM pg_catalog.pg_type t \
     JOIN pg_catalog.pg_namespace ns ON ns.oid = t.typnamespace \
     LEFT JOIN pg_catalog.pg_type elem_t \
     ON t.typlen = -1 AND t.typelem <> 0 AND t.typelem = elem_t.oid \
     WHERE t.oid = any($1::oid[])";

/// Parses `sql` into statements DataFusion can plan.
pub fn parse(
    parser: &PostgresCompatibilityParser,
    sql: &str,
) -> Result<Vec<Statement>, ParserError> {
    if sql.contains("typeinfo_tree") && sql.contains("WITH RECURSIVE") {
        return parser.parse(ASYNCPG_TYPE_LOOKUP);
    }
    let mut text = std::borrow::Cow::Borrowed(sql);
    if text.to_ascii_lowercase().contains("regproc") {
        text = REGPROC_LITERAL
            .replace_all(&text, "'$1'")
            .into_owned()
            .into();
    }
    if text.contains("toast.") {
        text = PSQL_TOAST_OPTIONS
            .replace_all(&text, "CAST(NULL AS TEXT[])")
            .into_owned()
            .into();
    }
    let mut statements = parser.parse(&text)?;
    for statement in &mut statements {
        rewrite(statement);
    }
    Ok(statements)
}

fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Some(new) = array_subquery(expr).or_else(|| json_cast(expr)) {
            *expr = new;
        }
        ControlFlow::<()>::Continue(())
    });
}

fn function_call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(ast::Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `CAST(x AS json|jsonb)` → `pg_cast_json[b](x)`.
fn json_cast(expr: &Expr) -> Option<Expr> {
    let Expr::Cast {
        expr: inner,
        data_type,
        ..
    } = expr
    else {
        return None;
    };
    let kind = match data_type {
        SqlType::JSON => JsonKind::Json,
        SqlType::JSONB => JsonKind::Jsonb,
        SqlType::Custom(name, modifiers) if modifiers.is_empty() => {
            match name.to_string().to_ascii_lowercase().as_str() {
                "json" | "pg_catalog.json" => JsonKind::Json,
                "jsonb" | "pg_catalog.jsonb" => JsonKind::Jsonb,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(function_call(kind.function_name(), vec![*inner.clone()]))
}

/// `ARRAY(SELECT e FROM ... [ORDER BY o])` → `(SELECT array_agg(e ORDER BY o) FROM ...)`.
fn array_subquery(expr: &Expr) -> Option<Expr> {
    let Expr::Function(f) = expr else {
        return None;
    };
    if !f.name.to_string().eq_ignore_ascii_case("array") {
        return None;
    }
    let FunctionArguments::Subquery(query) = &f.args else {
        return None;
    };
    let mut query: Query = (**query).clone();
    let order_by = query.order_by.take();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let no_grouping = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, modifiers) => exprs.is_empty() && modifiers.is_empty(),
        ast::GroupByExpr::All(_) => false,
    };
    if select.projection.len() != 1 || !no_grouping || select.having.is_some() {
        return None;
    }
    let element = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let order = order_by.map(|o| format!(" {o}")).unwrap_or_default();
    let aggregate = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!("array_agg({element}{order})"))
        .and_then(|mut p| p.parse_expr())
        .ok()?;
    select.projection = vec![SelectItem::ExprWithAlias {
        expr: aggregate,
        alias: Ident::new("array"),
    }];
    Some(Expr::Subquery(Box::new(query)))
}

/// An interval's text with the unit names the parameter decoder knows, if
/// any needed changing.
pub fn interval_text(text: &str) -> Option<String> {
    let mut changed = false;
    let mut words: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        let long = match word.to_ascii_lowercase().as_str() {
            "@" => None,
            "min" | "mins" => Some("minutes"),
            "sec" | "secs" => Some("seconds"),
            "hr" | "hrs" => Some("hours"),
            "yr" | "yrs" => Some("years"),
            _ => {
                words.push(word);
                continue;
            }
        };
        changed = true;
        words.extend(long);
    }
    changed.then(|| words.join(" "))
}

/// Postgres types of parameters that `statement` casts to a type DataFusion
/// plans as another: `$n::oid`, `$n::oid[]`, `$n::json`, `$n::jsonb` (by
/// parameter number).
pub fn declared_parameter_types(statement: &Statement) -> HashMap<usize, Type> {
    let mut declared = HashMap::new();
    let placeholder_number = |e: &Expr| match e {
        Expr::Value(ast::ValueWithSpan {
            value: ast::Value::Placeholder(p),
            ..
        }) => p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()),
        _ => None,
    };
    let _ = visit_expressions(statement, |expr| {
        if let Expr::Function(f) = expr
            && let FunctionArguments::List(list) = &f.args
            && let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))] =
                list.args.as_slice()
            && let Some(n) = placeholder_number(arg)
        {
            let name = f.name.to_string();
            if name == JsonKind::Json.function_name() {
                declared.insert(n, Type::JSON);
            } else if name == JsonKind::Jsonb.function_name() {
                declared.insert(n, Type::JSONB);
            }
        }
        if let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = expr
            && let Expr::Value(ast::ValueWithSpan {
                value: ast::Value::Placeholder(p),
                ..
            }) = inner.as_ref()
            && let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
        {
            let name = data_type.to_string().to_ascii_lowercase();
            match name.strip_prefix("pg_catalog.").unwrap_or(&name) {
                "oid" => {
                    declared.insert(n, Type::OID);
                }
                "oid[]" => {
                    declared.insert(n, Type::OID_ARRAY);
                }
                _ => {}
            }
        }
        ControlFlow::<()>::Continue(())
    });
    declared
}

/// The type a parameter is described as to the client: the declared one
/// (see [`declared_parameter_types`]), else DataFusion's.
pub fn described_parameter_type(
    declared: &HashMap<usize, Type>,
    index: usize,
    inferred: Option<&DataType>,
) -> pgwire::error::PgWireResult<Type> {
    match (declared.get(&(index + 1)), inferred) {
        (Some(t), _) => Ok(t.clone()),
        (None, Some(t)) => arrow_pg::datatypes::into_pg_type(t),
        (None, None) => Ok(Type::UNKNOWN),
    }
}

/// `portal` with client parameters rewritten into what the decoder reads:
/// text intervals with long unit names ([`interval_text`]), binary `oid[]`
/// as `int4[]` (the same 4-byte values) and binary `jsonb` without its
/// version byte. `None` when nothing changes.
pub fn client_parameters<S: Default>(
    portal: &Portal<S>,
    inferred: &[Option<DataType>],
    declared: &HashMap<usize, Type>,
) -> Option<Portal<S>>
where
    Portal<S>: Default,
{
    let mut parameters = portal.parameters.clone();
    let mut changed = false;
    for (i, value) in parameters.iter_mut().enumerate() {
        let Some(bytes) = value else { continue };
        let client_type = portal.statement.parameter_types.get(i).cloned().flatten();
        let wire_type = match client_type {
            Some(t) if t != Type::UNKNOWN => Some(t),
            _ => declared.get(&(i + 1)).cloned(),
        };
        let binary = portal.parameter_format.is_binary(i);
        if binary && wire_type == Some(Type::JSONB) && bytes.first() == Some(&1) {
            *value = Some(bytes.slice(1..));
            changed = true;
            continue;
        }
        if binary && wire_type == Some(Type::OID_ARRAY) {
            if let Some(fixed) = oid_array_as_int4_array(bytes) {
                *value = Some(fixed);
                changed = true;
            }
            continue;
        }
        let interval = match &wire_type {
            Some(t) => *t == Type::INTERVAL,
            None => matches!(inferred.get(i), Some(Some(DataType::Interval(_)))),
        };
        if interval
            && !binary
            && let Ok(text) = std::str::from_utf8(bytes)
            && let Some(fixed) = interval_text(text)
        {
            *value = Some(bytes::Bytes::from(fixed));
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let mut copy = Portal::<S>::default();
    copy.name = portal.name.clone();
    copy.statement = portal.statement.clone();
    copy.parameter_format = portal.parameter_format.clone();
    copy.parameters = parameters;
    copy.result_column_format = portal.result_column_format.clone();
    Some(copy)
}

/// A binary `oid[]` value (header: dimensions, has-nulls, element type oid)
/// with its element type changed to `int4`.
fn oid_array_as_int4_array(bytes: &bytes::Bytes) -> Option<bytes::Bytes> {
    if bytes.len() < 12 || bytes[8..12] != Type::OID.oid().to_be_bytes() {
        return None;
    }
    let mut out = bytes.to_vec();
    out[8..12].copy_from_slice(&Type::INT4.oid().to_be_bytes());
    Some(bytes::Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let parser = PostgresCompatibilityParser::new();
        parse(&parser, sql)
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn oid_parameters_are_described_as_oids_and_read_as_int4() {
        let parser = PostgresCompatibilityParser::new();
        let statements =
            parse(&parser, "SELECT 1 WHERE 1 = any($1::oid[]) AND $2::oid > 0").unwrap();
        let declared = declared_parameter_types(&statements[0]);
        assert_eq!(declared.get(&1), Some(&Type::OID_ARRAY));
        assert_eq!(declared.get(&2), Some(&Type::OID));
        let statements = parse(&parser, "SELECT $1::jsonb, $2::json, $3::text").unwrap();
        let declared = declared_parameter_types(&statements[0]);
        assert_eq!(declared.get(&1), Some(&Type::JSONB));
        assert_eq!(declared.get(&2), Some(&Type::JSON));
        assert_eq!(declared.get(&3), None);
        // One dimension, no NULLs, element oid 26, 1 element, 4 bytes, value 20.
        let mut oids = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 26, 0, 0, 0, 1, 0, 0, 0, 1];
        oids.extend([0, 0, 0, 4, 0, 0, 0, 20]);
        let int4 = oid_array_as_int4_array(&bytes::Bytes::from(oids.clone())).unwrap();
        assert_eq!(&int4[8..12], &[0, 0, 0, 23]);
        assert_eq!(&int4[12..], &oids[12..]);
    }

    #[test]
    fn asyncpg_type_introspection_becomes_a_one_level_lookup() {
        let sql = rewritten(
            "WITH RECURSIVE typeinfo_tree(oid, ns) AS (SELECT 1, 2 UNION ALL SELECT 1, 2 FROM typeinfo_tree) \
             SELECT * FROM typeinfo_tree",
        );
        assert!(sql.contains("elem_t.typdelim AS elemdelim"), "{sql}");
    }

    #[test]
    fn abbreviated_interval_units_get_long_names() {
        assert_eq!(
            interval_text("0 years 0 mons 1 days 0 hours 0 mins 5.0 secs").as_deref(),
            Some("0 years 0 mons 1 days 0 hours 0 minutes 5.0 seconds")
        );
        assert_eq!(interval_text("@ 2 hrs").as_deref(), Some("2 hours"));
        assert_eq!(interval_text("1 day 00:00:05"), None);
    }

    #[test]
    fn array_subqueries_become_array_agg() {
        let sql = rewritten(
            "SELECT ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON m.roleid = b.oid \
             WHERE m.member = r.oid ORDER BY 1) AS memberof FROM pg_roles r",
        );
        assert!(
            sql.contains("(SELECT array_agg(b.rolname ORDER BY 1) AS array FROM"),
            "{sql}"
        );
        assert!(!sql.contains("ARRAY(SELECT"), "{sql}");
    }

    #[test]
    fn json_casts_become_checked_functions() {
        let sql = rewritten("SELECT $1::jsonb, CAST('{}' AS json), x::pg_catalog.jsonb FROM t");
        assert_eq!(
            sql,
            "SELECT pg_cast_jsonb($1), pg_cast_json('{}'), pg_cast_jsonb(x) FROM t"
        );
    }

    #[test]
    fn regproc_literals_become_names_and_toast_options_go() {
        let sql = rewritten(
            "SELECT typinput = 'pg_catalog.array_in'::pg_catalog.regproc FROM pg_catalog.pg_type",
        );
        assert!(sql.contains("typinput = 'array_in'"), "{sql}");
        let sql = rewritten(
            "SELECT pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from \
             pg_catalog.unnest(tc.reloptions) x), ', ') FROM pg_catalog.pg_class c",
        );
        assert!(
            sql.contains("array_to_string(CAST(NULL AS TEXT[]), ', ')"),
            "{sql}"
        );
    }
}
