//! The crate's error type and its single mapping to each protocol's error
//! vocabulary: Postgres SQLSTATE codes (pgwire), and later HTTP statuses and
//! gRPC codes. Errors cross into DataFusion as `DataFusionError::External`
//! and are recovered from there by [`Error::find_in`], so the code a client
//! sees does not depend on which layer noticed the problem.

use std::io;

use crate::ingest::distributor::PushError;
use datafusion::error::DataFusionError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value that does not fit its column (wrong type, out of range, unknown enum).
    #[error("invalid value for column \"{column}\" of \"{table}\" at row {row}: {reason}")]
    InvalidValue {
        table: &'static str,
        column: String,
        row: usize,
        reason: String,
    },

    /// A required column is null.
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint (row {row})"
    )]
    NotNull {
        table: &'static str,
        column: String,
        row: usize,
    },

    /// A configured limit was hit; names the limit and the value seen.
    #[error("{limit} exceeded: {value} > {max}")]
    LimitExceeded {
        limit: &'static str,
        value: u64,
        max: u64,
    },

    /// The write path refuses writes (e.g. after a failed fsync or a full disk).
    #[error("write path unavailable: {0}")]
    WriteUnavailable(String),

    /// A write refused by the distributor (limits, overload, write path).
    #[error(transparent)]
    Push(#[from] PushError),

    #[error("invalid configuration: {0}")]
    Config(String),

    #[error(
        "data directory {path} is locked by another o11ydb process (lock file {lock}): {source}"
    )]
    Locked {
        path: String,
        lock: String,
        source: io::Error,
    },

    #[error("WAL: {0}")]
    Wal(String),

    #[error("storage: {0}")]
    Storage(String),

    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
}

impl Error {
    /// The Postgres SQLSTATE code for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::InvalidValue { .. } => "22P02",
            Error::NotNull { .. } => "23502",
            Error::LimitExceeded { .. } => "54000",
            Error::WriteUnavailable(_) => "53100",
            Error::Push(p) => match p {
                PushError::RateLimited { .. } => "53400",
                PushError::Overloaded(_) => "53000",
                // The write path itself failed (disk full, WAL stopped), as WriteUnavailable.
                PushError::Unavailable(_) => "53100",
                PushError::Invalid { .. } => "22023",
            },
            Error::Config(_) => "F0000",
            Error::Locked { .. } => "55006",
            Error::Io(e) if e.kind() == io::ErrorKind::StorageFull => "53100",
            Error::DataFusion(e) => datafusion_sqlstate(e),
            _ => "XX000",
        }
    }

    /// Finds an o11ydb error wrapped (possibly several times) inside a DataFusion error.
    pub fn find_in(err: &DataFusionError) -> Option<&Error> {
        match err {
            DataFusionError::External(e) => e.downcast_ref::<Error>(),
            DataFusionError::Context(_, inner) => Self::find_in(inner),
            DataFusionError::Shared(inner) => Self::find_in(inner),
            DataFusionError::Diagnostic(_, inner) => Self::find_in(inner),
            _ => None,
        }
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(inner) => inner,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// SQLSTATE for an error raised inside DataFusion.
pub fn datafusion_sqlstate(err: &DataFusionError) -> &'static str {
    if let Some(own) = Error::find_in(err) {
        return own.sqlstate();
    }
    match err.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ArrowError(e, _) => match e.as_ref() {
            arrow::error::ArrowError::CastError(_) | arrow::error::ArrowError::ParseError(_) => {
                "22P02"
            }
            arrow::error::ArrowError::DivideByZero => "22012",
            arrow::error::ArrowError::ArithmeticOverflow(_) => "22003",
            arrow::error::ArrowError::MemoryError(_) => "53200",
            _ => "XX000",
        },
        DataFusionError::SchemaError(e, _) => {
            use datafusion::common::SchemaError;
            match e.as_ref() {
                SchemaError::FieldNotFound { .. } => "42703",
                SchemaError::AmbiguousReference { .. } => "42702",
                SchemaError::DuplicateQualifiedField { .. }
                | SchemaError::DuplicateUnqualifiedField { .. } => "42701",
            }
        }
        DataFusionError::Plan(msg) => plan_message_sqlstate(msg),
        DataFusionError::Execution(msg) => {
            if msg.contains("Cannot cast")
                || msg.contains("Cannot parse")
                || msg.contains("invalid input syntax")
            {
                "22P02"
            } else if msg.contains("unrecognized configuration parameter") {
                "42704"
            } else if msg.contains("Divide by zero") {
                "22012"
            } else {
                "XX000"
            }
        }
        _ => "XX000",
    }
}

fn plan_message_sqlstate(msg: &str) -> &'static str {
    if msg.contains("table") && msg.contains("not found") {
        "42P01"
    } else if msg.contains("No field named") || msg.contains("Schema error: No field") {
        "42703"
    } else if msg.contains("Invalid function")
        || msg.contains("function") && msg.contains("not found")
    {
        "42883"
    } else if msg.contains("Cannot cast") || msg.contains("Cannot automatically convert") {
        "22P02"
    } else if msg.contains("not nullable") {
        "23502"
    } else {
        "42000"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn code_of(sql: &str) -> &'static str {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT, b VARCHAR)").await.unwrap();
        let err = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.unwrap_err(),
            Err(e) => e,
        };
        datafusion_sqlstate(&err)
    }

    #[tokio::test]
    async fn datafusion_errors_map_to_postgres_codes() {
        assert_eq!(code_of("SELEC 1").await, "42601");
        assert_eq!(code_of("SELECT * FROM nope").await, "42P01");
        assert_eq!(code_of("SELECT nope FROM t").await, "42703");
        assert_eq!(code_of("SELECT CAST('abc' AS INT)").await, "22P02");
    }

    #[test]
    fn postgres_worded_execution_errors_keep_their_codes() {
        let bad_json = DataFusionError::Execution("invalid input syntax for type json: x".into());
        assert_eq!(datafusion_sqlstate(&bad_json), "22P02");
        let setting =
            DataFusionError::Execution("unrecognized configuration parameter \"x\"".into());
        assert_eq!(datafusion_sqlstate(&setting), "42704");
    }

    #[test]
    fn own_errors_survive_datafusion_wrapping() {
        let e: DataFusionError = Error::NotNull {
            table: "samples",
            column: "metric".into(),
            row: 3,
        }
        .into();
        let wrapped = DataFusionError::Context("insert".into(), Box::new(e));
        assert_eq!(datafusion_sqlstate(&wrapped), "23502");
    }
}
