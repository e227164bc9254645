//! The Postgres system catalog of a SQL session, as psql and drivers read it.
//!
//! `datafusion-pg-catalog` provides `pg_catalog` (tables, views and the
//! columns of o11ydb's tables, plus Postgres' own functions in `pg_proc`).
//! On top of it this module adds what clients also call: o11ydb's table
//! functions (`promql`, `logql`, `traceql`, `service_graph`,
//! `span_metrics`) as rows of `pg_proc` in schema `public`, so `\df` lists
//! them; `pg_get_function_result` / `pg_get_function_arguments`;
//! `pg_function_is_visible`; `col_description` (NULL: no comments);
//! `current_setting`, `set_config`; `version()`;
//! `pg_type`'s one-letter codes as `"char"`; and the `json`
//! / `jsonb` casts (`'{"a":1}'::jsonb`), which check their input and mark
//! the column so it leaves as `json`/`jsonb`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Int16Array, Int32Array, RecordBatch,
    StringArray, StringBuilder, new_null_array,
};
use arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

use super::settings;

/// The catalog (Postgres "database") o11ydb's sessions use.
pub const CATALOG: &str = "datafusion";

/// Field metadata key naming the Postgres type a text column leaves as.
pub const PG_TYPE_KEY: &str = "o11ydb.pg_type";

/// One row of `pg_proc` for an o11ydb function (one per overload).
struct PgFunction {
    name: &'static str,
    /// `pg_get_function_arguments` text.
    arguments: &'static str,
    /// Argument type oids (`proargtypes`), required then defaulted.
    arg_types: &'static [i32],
    arg_names: &'static str,
    defaults: i16,
    /// `pg_get_function_result` text.
    result: &'static str,
}

const TEXT: i32 = 25;
const INT8: i32 = 20;
const TIMESTAMPTZ: i32 = 1184;
const INTERVAL: i32 = 1186;
const RECORD: i32 = 2249;
/// Oids of o11ydb's functions start here (above Postgres' built-ins and
/// below the oids the catalog hands to tables and schemas).
const FIRST_OID: i32 = 15000;

const FUNCTIONS: &[PgFunction] = &[
    PgFunction {
        name: "promql",
        arguments: "query text, \"time\" timestamp with time zone DEFAULT now()",
        arg_types: &[TEXT, TIMESTAMPTZ],
        arg_names: "{query,time}",
        defaults: 1,
        result: "TABLE(\"timestamp\" timestamp with time zone, metric text, labels jsonb, value double precision)",
    },
    PgFunction {
        name: "promql",
        arguments: "query text, start timestamp with time zone, \"end\" timestamp with time zone, step interval",
        arg_types: &[TEXT, TIMESTAMPTZ, TIMESTAMPTZ, INTERVAL],
        arg_names: "{query,start,end,step}",
        defaults: 0,
        result: "TABLE(\"timestamp\" timestamp with time zone, metric text, labels jsonb, value double precision)",
    },
    PgFunction {
        name: "logql",
        arguments: "query text, start timestamp with time zone, \"end\" timestamp with time zone, \"limit\" bigint DEFAULT 100",
        arg_types: &[TEXT, TIMESTAMPTZ, TIMESTAMPTZ, INT8],
        arg_names: "{query,start,end,limit}",
        defaults: 1,
        result: "TABLE(\"timestamp\" timestamp with time zone, labels jsonb, line text)",
    },
    PgFunction {
        name: "logql",
        arguments: "query text, start timestamp with time zone, \"end\" timestamp with time zone, step interval",
        arg_types: &[TEXT, TIMESTAMPTZ, TIMESTAMPTZ, INTERVAL],
        arg_names: "{query,start,end,step}",
        defaults: 0,
        result: "TABLE(\"timestamp\" timestamp with time zone, labels jsonb, value double precision)",
    },
    PgFunction {
        name: "traceql",
        arguments: "query text, start timestamp with time zone, \"end\" timestamp with time zone, \"limit\" bigint DEFAULT 100",
        arg_types: &[TEXT, TIMESTAMPTZ, TIMESTAMPTZ, INT8],
        arg_names: "{query,start,end,limit}",
        defaults: 1,
        result: "SETOF record",
    },
    PgFunction {
        name: "traceql",
        arguments: "query text, start timestamp with time zone, \"end\" timestamp with time zone, step interval",
        arg_types: &[TEXT, TIMESTAMPTZ, TIMESTAMPTZ, INTERVAL],
        arg_names: "{query,start,end,step}",
        defaults: 0,
        result: "TABLE(\"timestamp\" timestamp with time zone, labels jsonb, value double precision)",
    },
    PgFunction {
        name: "service_graph",
        arguments: "start timestamp with time zone, \"end\" timestamp with time zone",
        arg_types: &[TIMESTAMPTZ, TIMESTAMPTZ],
        arg_names: "{start,end}",
        defaults: 0,
        result: "SETOF record",
    },
    PgFunction {
        name: "span_metrics",
        arguments: "start timestamp with time zone, \"end\" timestamp with time zone, step interval DEFAULT NULL",
        arg_types: &[TIMESTAMPTZ, TIMESTAMPTZ, INTERVAL],
        arg_names: "{start,end,step}",
        defaults: 1,
        result: "SETOF record",
    },
];

/// Installs the Postgres catalog and the functions clients call into `ctx`.
pub async fn install(ctx: &SessionContext) -> DfResult<()> {
    datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
        ctx,
        CATALOG,
        datafusion_postgres::auth::AuthManager::default(),
    )
    .map_err(|e| *e)?;
    {
        let state_ref = ctx.state_ref();
        let mut state = state_ref.write();
        datafusion_postgres::datafusion_pg_functions::register_all(&mut *state);
    }
    ctx.register_udf(version_udf());
    ctx.register_udf(settings::current_setting_udf());
    ctx.register_udf(settings::set_config_udf());
    ctx.register_udf(always_true("pg_function_is_visible"));
    ctx.register_udf(always_true("pg_type_is_visible"));
    for name in ["col_description", "obj_description", "shobj_description"] {
        ctx.register_udf(ScalarUDF::new_from_impl(NoDescription {
            name,
            signature: Signature::variadic_any(Volatility::Stable),
        }));
    }
    ctx.register_udf(json_udf(JsonKind::Json));
    ctx.register_udf(json_udf(JsonKind::Jsonb));

    let public: i32 = match scalar(
        ctx,
        "SELECT CAST(oid AS INT) FROM pg_catalog.pg_namespace WHERE nspname = 'public'",
    )
    .await?
    {
        Some(ScalarValue::Int32(Some(oid))) => oid,
        other => return exec_err!("the public schema has no oid in pg_namespace: {other:?}"),
    };
    let catalog = ctx
        .catalog(CATALOG)
        .ok_or_else(|| DataFusionError::Plan(format!("catalog {CATALOG} is missing")))?;
    let inner = catalog
        .schema("pg_catalog")
        .ok_or_else(|| DataFusionError::Plan("schema pg_catalog is missing".into()))?;
    let static_proc = inner
        .table("pg_proc")
        .await?
        .ok_or_else(|| DataFusionError::Plan("pg_catalog.pg_proc is missing".into()))?;
    let mut batches = ctx.read_table(static_proc.clone())?.collect().await?;
    let schema = static_proc.schema();
    batches.push(functions_batch(&schema, public)?);
    let pg_proc: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![batches])?);
    let pg_type = char_typed_pg_type(ctx, inner.as_ref()).await?;
    let replaced = HashMap::from([
        ("pg_proc".to_string(), pg_proc),
        ("pg_type".to_string(), pg_type),
    ]);
    catalog.register_schema(
        "pg_catalog",
        Arc::new(PgCatalogWithFunctions { inner, replaced }),
    )?;

    let texts = Arc::new(function_texts(ctx).await.unwrap_or_else(|e| {
        tracing::warn!("pg_get_function_result knows only o11ydb's functions: {e}");
        own_function_texts()
    }));
    ctx.register_udf(function_text_udf(
        "pg_get_function_result",
        texts.clone(),
        |t| &t.0,
    ));
    ctx.register_udf(function_text_udf(
        "pg_get_function_arguments",
        texts.clone(),
        |t| &t.1,
    ));
    ctx.register_udf(function_text_udf(
        "pg_get_function_identity_arguments",
        texts,
        |t| &t.1,
    ));
    Ok(())
}

async fn scalar(ctx: &SessionContext, sql: &str) -> DfResult<Option<ScalarValue>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    match batches.iter().find(|b| b.num_rows() > 0) {
        Some(b) => Ok(Some(ScalarValue::try_from_array(b.column(0), 0)?)),
        None => Ok(None),
    }
}

/// `pg_type` whose one-letter code columns (`typtype`, `typcategory`,
/// `typdelim`, `typalign`, `typstorage`) are Postgres `"char"`, as clients
/// expect (asyncpg compares `typtype` with bytes).
async fn char_typed_pg_type(
    ctx: &SessionContext,
    pg_catalog: &dyn SchemaProvider,
) -> DfResult<Arc<dyn TableProvider>> {
    const CHAR_COLUMNS: [&str; 5] = [
        "typtype",
        "typcategory",
        "typdelim",
        "typalign",
        "typstorage",
    ];
    let table = pg_catalog
        .table("pg_type")
        .await?
        .ok_or_else(|| DataFusionError::Plan("pg_catalog.pg_type is missing".into()))?;
    let schema = table.schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut field = f.as_ref().clone();
            if CHAR_COLUMNS.contains(&f.name().as_str())
                && matches!(
                    f.data_type(),
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                )
            {
                let mut metadata = field.metadata().clone();
                metadata.insert(
                    arrow_pg::datatypes::PG_CHAR_KEY.to_string(),
                    "char".to_string(),
                );
                field = field.with_metadata(metadata);
            }
            field
        })
        .collect();
    let char_schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ));
    let batches = ctx
        .read_table(table)?
        .collect()
        .await?
        .into_iter()
        .map(|b| b.with_schema(char_schema.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(MemTable::try_new(char_schema, vec![batches])?))
}

/// `pg_catalog` with `pg_proc` extended by o11ydb's functions and `pg_type`
/// with `"char"` columns.
#[derive(Debug)]
struct PgCatalogWithFunctions {
    inner: Arc<dyn SchemaProvider>,
    replaced: HashMap<String, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for PgCatalogWithFunctions {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.replaced.get(&name.to_ascii_lowercase()) {
            return Ok(Some(table.clone()));
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// `pg_proc` rows of o11ydb's functions in `schema` (the static table's).
fn functions_batch(schema: &SchemaRef, namespace: i32) -> DfResult<RecordBatch> {
    let n = FUNCTIONS.len();
    let text = |f: &dyn Fn(&PgFunction) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(FUNCTIONS.iter().map(f)))
    };
    let int32 = |f: &dyn Fn(usize, &PgFunction) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(
            FUNCTIONS.iter().enumerate().map(|(i, p)| f(i, p)),
        ))
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column: ArrayRef = match field.name().as_str() {
                "oid" => int32(&|i, _| FIRST_OID + i as i32),
                "proname" | "prosrc" => text(&|p| p.name.to_string()),
                "pronamespace" => int32(&|_, _| namespace),
                "proowner" => int32(&|_, _| 10),
                "prolang" => int32(&|_, _| 12),
                "procost" => Arc::new(Float32Array::from(vec![100.0; n])),
                "prorows" => Arc::new(Float32Array::from(vec![1000.0; n])),
                "prosupport" => text(&|_| "-".into()),
                "prokind" => text(&|_| "f".into()),
                "proretset" => Arc::new(BooleanArray::from(vec![true; n])),
                "provolatile" => text(&|_| "v".into()),
                "proparallel" => text(&|_| "s".into()),
                "pronargs" => Arc::new(Int16Array::from_iter_values(
                    FUNCTIONS.iter().map(|p| p.arg_types.len() as i16),
                )),
                "pronargdefaults" => Arc::new(Int16Array::from_iter_values(
                    FUNCTIONS.iter().map(|p| p.defaults),
                )),
                "prorettype" => int32(&|_, _| RECORD),
                "proargtypes" => text(&|p| {
                    p.arg_types
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
                "proargnames" => text(&|p| p.arg_names.to_string()),
                _ => default_column(field, n),
            };
            arrow::compute::cast(&column, field.data_type()).map_err(DataFusionError::from)
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// NULLs, or the zero value of a NOT NULL column.
fn default_column(field: &Field, n: usize) -> ArrayRef {
    if field.is_nullable() {
        return new_null_array(field.data_type(), n);
    }
    match field.data_type() {
        DataType::Boolean => Arc::new(BooleanArray::from(vec![false; n])),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Arc::new(StringArray::from(vec![""; n]))
        }
        DataType::Float32 | DataType::Float64 => Arc::new(Float32Array::from(vec![0.0; n])),
        _ => Arc::new(Int32Array::from(vec![0; n])),
    }
}

/// (result, arguments) text per function oid.
type FunctionTexts = HashMap<i32, (String, String)>;

fn own_function_texts() -> FunctionTexts {
    FUNCTIONS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                FIRST_OID + i as i32,
                (p.result.to_string(), p.arguments.to_string()),
            )
        })
        .collect()
}

/// Function texts of Postgres' built-ins (from `pg_proc` and `pg_type`) and
/// of o11ydb's functions.
async fn function_texts(ctx: &SessionContext) -> DfResult<FunctionTexts> {
    let mut type_names: HashMap<i32, String> = HashMap::new();
    for batch in ctx
        .sql("SELECT CAST(oid AS INT), CAST(typname AS TEXT) FROM pg_catalog.pg_type")
        .await?
        .collect()
        .await?
    {
        let oids = batch
            .column(0)
            .as_primitive::<arrow::datatypes::Int32Type>();
        let names = arrow::compute::cast(batch.column(1), &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        for row in 0..batch.num_rows() {
            if !oids.is_null(row) && !names.is_null(row) {
                type_names.insert(oids.value(row), sql_type_name(names.value(row)));
            }
        }
    }
    let name_of = |oid: &str| -> String {
        oid.parse::<i32>()
            .ok()
            .and_then(|o| type_names.get(&o).cloned())
            .unwrap_or_else(|| oid.to_string())
    };
    let mut texts = own_function_texts();
    for batch in ctx
        .sql(
            "SELECT CAST(oid AS INT), proretset, CAST(CAST(prorettype AS INT) AS TEXT), \
             CAST(proargtypes AS TEXT) FROM pg_catalog.pg_proc",
        )
        .await?
        .collect()
        .await?
    {
        let oids = batch
            .column(0)
            .as_primitive::<arrow::datatypes::Int32Type>();
        let retset = batch.column(1).as_boolean();
        let rettype = arrow::compute::cast(batch.column(2), &DataType::Utf8)?;
        let rettype = rettype.as_string::<i32>();
        let argtypes = arrow::compute::cast(batch.column(3), &DataType::Utf8)?;
        let argtypes = argtypes.as_string::<i32>();
        for row in 0..batch.num_rows() {
            let oid = oids.value(row);
            if texts.contains_key(&oid) || rettype.is_null(row) {
                continue;
            }
            let mut result = name_of(rettype.value(row));
            if !retset.is_null(row) && retset.value(row) {
                result = format!("SETOF {result}");
            }
            let arguments = if argtypes.is_null(row) {
                String::new()
            } else {
                argtypes
                    .value(row)
                    .split_whitespace()
                    .map(name_of)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            texts.insert(oid, (result, arguments));
        }
    }
    Ok(texts)
}

/// The SQL name Postgres prints for a `pg_type.typname`.
fn sql_type_name(typname: &str) -> String {
    let (base, array) = match typname.strip_prefix('_') {
        Some(element) => (element, "[]"),
        None => (typname, ""),
    };
    let base = match base {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        "varchar" => "character varying",
        "bpchar" => "character",
        "timestamptz" => "timestamp with time zone",
        "timestamp" => "timestamp without time zone",
        "timetz" => "time with time zone",
        "time" => "time without time zone",
        other => other,
    };
    format!("{base}{array}")
}

/// `pg_get_function_result(oid)` and friends: text per function oid, NULL
/// for an unknown oid (as Postgres).
fn function_text_udf(
    name: &'static str,
    texts: Arc<FunctionTexts>,
    pick: fn(&(String, String)) -> &String,
) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int32],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let oids = arrow::compute::cast(&arrays[0], &DataType::Int32)?;
            let oids = oids.as_primitive::<arrow::datatypes::Int32Type>();
            let mut out = StringBuilder::new();
            for row in 0..oids.len() {
                match (!oids.is_null(row))
                    .then(|| texts.get(&oids.value(row)))
                    .flatten()
                {
                    Some(t) => out.append_value(pick(t)),
                    None => out.append_null(),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    )
}

/// A visibility check that is true for every object: o11ydb has one schema
/// on the search path besides `pg_catalog`.
fn always_true(name: &str) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let rows = match &args[0] {
                ColumnarValue::Array(a) => a.len(),
                ColumnarValue::Scalar(_) => 1,
            };
            let array: ArrayRef = Arc::new(BooleanArray::from(vec![true; rows]));
            Ok(match &args[0] {
                ColumnarValue::Array(_) => ColumnarValue::Array(array),
                ColumnarValue::Scalar(_) => ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))),
            })
        }),
    )
}

/// `col_description` / `obj_description`: o11ydb's objects carry no
/// comments, so every description is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NoDescription {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for NoDescription {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Array(new_null_array(
            &DataType::Utf8,
            args.number_rows,
        )))
    }
}

/// `version()` as Postgres clients parse it: `PostgreSQL <major.minor> ...`,
/// naming o11ydb after it.
fn version_udf() -> ScalarUDF {
    let text = format!(
        "PostgreSQL {} (o11ydb {}) on {}-linux, compiled by rustc",
        settings::SERVER_VERSION,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))
        }),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonKind {
    Json,
    Jsonb,
}

impl JsonKind {
    /// The function a `CAST(x AS json|jsonb)` becomes.
    pub fn function_name(self) -> &'static str {
        match self {
            JsonKind::Json => "pg_cast_json",
            JsonKind::Jsonb => "pg_cast_jsonb",
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            JsonKind::Json => "json",
            JsonKind::Jsonb => "jsonb",
        }
    }
}

/// `x::json` / `x::jsonb`: the text of `x`, checked to be JSON, in a column
/// marked so it is described and encoded as `json`/`jsonb`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonCast {
    kind: JsonKind,
    signature: Signature,
}

impl ScalarUDFImpl for JsonCast {
    fn name(&self) -> &str {
        self.kind.function_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let nullable = args.arg_fields.first().is_none_or(|f| f.is_nullable());
        Ok(Arc::new(
            Field::new(self.name(), DataType::Utf8, nullable).with_metadata(HashMap::from([(
                PG_TYPE_KEY.to_string(),
                self.kind.type_name().to_string(),
            )])),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let text = arrow::compute::cast(&array, &DataType::Utf8)?;
        let strings = text.as_string::<i32>();
        for row in 0..strings.len() {
            if !strings.is_null(row)
                && let Err(e) = serde_json::from_str::<serde_json::Value>(strings.value(row))
            {
                return exec_err!(
                    "invalid input syntax for type {}: {e}",
                    self.kind.type_name()
                );
            }
        }
        Ok(ColumnarValue::Array(text))
    }
}

fn json_udf(kind: JsonKind) -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonCast {
        kind,
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
    })
}

/// The Postgres type a column is marked to leave as (`json`, `jsonb`).
pub fn marked_pg_type(field: &Field) -> Option<&str> {
    field.metadata().get(PG_TYPE_KEY).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn session() -> SessionContext {
        let config = datafusion::prelude::SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, "public");
        let ctx = SessionContext::new_with_config(config);
        install(&ctx).await.expect("catalog installs");
        ctx
    }

    async fn strings(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out: Vec<String> = vec![];
        for b in batches {
            let c = arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
            let c = c.as_string::<i32>();
            out.extend((0..c.len()).map(|i| c.value(i).to_string()));
        }
        out
    }

    #[tokio::test]
    async fn pg_proc_lists_o11ydb_functions_in_public() {
        let ctx = session().await;
        let names = strings(
            &ctx,
            "SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = 'public' ORDER BY 1",
        )
        .await;
        assert_eq!(
            names,
            [
                "logql",
                "promql",
                "service_graph",
                "span_metrics",
                "traceql"
            ]
        );
        let args = strings(
            &ctx,
            "SELECT pg_get_function_arguments(oid) FROM pg_catalog.pg_proc \
             WHERE proname = 'service_graph'",
        )
        .await;
        assert_eq!(
            args,
            ["start timestamp with time zone, \"end\" timestamp with time zone"]
        );
        // Postgres' own functions keep their rows and get their texts too.
        let result = strings(
            &ctx,
            "SELECT pg_get_function_result(oid) || ' / ' || pg_get_function_arguments(oid) \
             FROM pg_catalog.pg_proc WHERE proname = 'generate_series' AND proargtypes = '23 23'",
        )
        .await;
        assert_eq!(result, ["SETOF integer / integer, integer"]);
    }

    #[tokio::test]
    async fn json_casts_check_their_input_and_mark_the_column() {
        let ctx = session().await;
        let df = ctx
            .sql("SELECT pg_cast_jsonb('{\"a\": 1}') AS j")
            .await
            .unwrap();
        let schema: arrow::datatypes::Schema = df.schema().as_arrow().clone();
        assert_eq!(marked_pg_type(schema.field(0)), Some("jsonb"));
        let err = ctx
            .sql("SELECT pg_cast_json('{nope')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid input syntax for type json"),
            "{err}"
        );
    }
}
