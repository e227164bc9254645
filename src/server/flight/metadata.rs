//! Flight SQL metadata answers from a tenant's DataFusion session:
//! `GetSqlInfo` (what o11ydb is and which SQL it speaks), `GetCatalogs`,
//! `GetDbSchemas`, `GetTables` (optionally with each table's Arrow
//! schema), `GetTableTypes` and `GetPrimaryKeys` (o11ydb's tables have
//! none). Catalogs, schemas and tables are read from the session's catalog
//! providers; the request's filters (exact catalog, `%`/`_` patterns for
//! schema and table names, table types) are applied by arrow-flight's
//! builders.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::metadata::{
    GetCatalogsBuilder, GetDbSchemasBuilder, GetTablesBuilder, SqlInfoData, SqlInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, SqlInfo, SqlNullOrdering,
    SqlSupportedCaseSensitivity, SqlSupportedTransaction, SupportedSqlGrammar,
};
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use tonic::Status;

/// The table types o11ydb's sessions have, as Flight SQL names them.
pub const TABLE_TYPES: [&str; 3] = ["LOCAL TEMPORARY", "TABLE", "VIEW"];

fn table_type_name(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// What `GetSqlInfo` answers.
pub fn sql_info() -> &'static SqlInfoData {
    static INFO: OnceLock<SqlInfoData> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "o11ydb");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        // The Arrow columnar format version (Schema.fbs MetadataVersion V5).
        b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
        b.append(SqlInfo::FlightSqlServerReadOnly, false);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.append(
            SqlInfo::FlightSqlServerTransaction,
            SqlSupportedTransaction::None as i32,
        );
        b.append(SqlInfo::FlightSqlServerCancel, true);
        b.append(SqlInfo::FlightSqlServerBulkIngestion, true);
        b.append(SqlInfo::SqlDdlCatalog, false);
        b.append(SqlInfo::SqlDdlSchema, false);
        b.append(SqlInfo::SqlDdlTable, false);
        b.append(
            SqlInfo::SqlIdentifierCase,
            SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
        );
        b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        // ASC puts nulls last and DESC first: nulls sort high.
        b.append(
            SqlInfo::SqlNullOrdering,
            SqlNullOrdering::SqlNullsSortedHigh as i32,
        );
        b.append(SqlInfo::SqlAllTablesAreSelectable, true);
        b.append(SqlInfo::SqlSupportsColumnAliasing, true);
        b.append(SqlInfo::SqlNullPlusNullIsNull, true);
        b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
        b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
        b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
        b.append(SqlInfo::SqlSearchStringEscape, "\\");
        // Bitmasks: bit n set for enum value n.
        b.append(
            SqlInfo::SqlSupportedGrammar,
            (1 << SupportedSqlGrammar::SqlMinimumGrammar as i32)
                | (1 << SupportedSqlGrammar::SqlCoreGrammar as i32),
        );
        // SupportedAnsi92SqlGrammarLevel::Ansi92EntrySql (0): entry level.
        b.append(SqlInfo::SqlAnsi92SupportedLevel, 1);
        b.append(SqlInfo::SqlSchemaTerm, "schema");
        b.append(SqlInfo::SqlCatalogTerm, "catalog");
        b.append(SqlInfo::SqlCatalogAtStart, true);
        let keywords: Vec<String> = datafusion::sql::sqlparser::keywords::ALL_KEYWORDS
            .iter()
            .map(|k| k.to_string())
            .collect();
        b.append(SqlInfo::SqlKeywords, keywords);
        b.build()
            .expect("the SqlInfo values have their declared types")
    })
}

/// Every catalog name of the session.
pub fn catalogs(ctx: &SessionContext) -> Result<RecordBatch, Status> {
    let mut b = GetCatalogsBuilder::new();
    for name in sorted(ctx.catalog_names()) {
        b.append(name);
    }
    b.build().map_err(internal)
}

/// The schemas matching the request.
pub fn db_schemas(ctx: &SessionContext, query: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let mut b: GetDbSchemasBuilder = query.into_builder();
    for catalog in sorted(ctx.catalog_names()) {
        let Some(provider) = ctx.catalog(&catalog) else {
            continue;
        };
        for schema in sorted(provider.schema_names()) {
            b.append(&catalog, schema);
        }
    }
    b.build().map_err(internal)
}

/// The tables matching the request, with their Arrow schemas when asked.
pub async fn tables(ctx: &SessionContext, query: CommandGetTables) -> Result<RecordBatch, Status> {
    // Only the catalogs and schemas asked for need their tables opened.
    let catalog_filter = query.catalog.clone();
    let mut b: GetTablesBuilder = query.into_builder();
    for catalog in sorted(ctx.catalog_names()) {
        if catalog_filter.as_ref().is_some_and(|c| *c != catalog) {
            continue;
        }
        let Some(catalog_provider) = ctx.catalog(&catalog) else {
            continue;
        };
        for schema in sorted(catalog_provider.schema_names()) {
            let Some(schema_provider) = catalog_provider.schema(&schema) else {
                continue;
            };
            for table in sorted(schema_provider.table_names()) {
                let Some(provider) = schema_provider.table(&table).await.map_err(|e| {
                    Status::internal(format!("cannot open table {catalog}.{schema}.{table}: {e}"))
                })?
                else {
                    continue;
                };
                b.append(
                    &catalog,
                    &schema,
                    &table,
                    table_type_name(provider.table_type()),
                    &super::statements::flight_schema(provider.schema()),
                )
                .map_err(internal)?;
            }
        }
    }
    b.build().map_err(internal)
}

/// The table types o11ydb has.
pub fn table_types() -> Result<RecordBatch, Status> {
    let mut b = CommandGetTableTypes {}.into_builder();
    for t in TABLE_TYPES {
        b.append(t);
    }
    b.build().map_err(internal)
}

/// The schema of a `GetPrimaryKeys` answer (Flight SQL's `CommandGetPrimaryKeys`).
pub fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[tokio::test]
    async fn tables_are_filtered_by_pattern() {
        let ctx = SessionContext::new();
        for t in ["logs", "log_lines", "spans"] {
            ctx.sql(&format!("CREATE TABLE {t} (a INT)")).await.unwrap();
        }
        let batch = tables(
            &ctx,
            CommandGetTables {
                table_name_filter_pattern: Some("log%".into()),
                include_schema: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let names: Vec<_> = batch
            .column_by_name("table_name")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(names, ["log_lines", "logs"]);
        assert!(batch.column_by_name("table_schema").is_some());
    }

    #[test]
    fn sql_info_names_o11ydb() {
        let batch = sql_info()
            .record_batch([SqlInfo::FlightSqlServerName as u32])
            .unwrap();
        assert_eq!(batch.num_rows(), 1);
    }
}
