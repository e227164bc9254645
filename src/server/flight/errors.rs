//! gRPC statuses from DataFusion and o11ydb errors: the user's mistakes
//! (syntax, unknown names, bad casts, unsupported statements) are
//! `INVALID_ARGUMENT` with DataFusion's message, a query over the memory
//! limit `RESOURCE_EXHAUSTED`, anything else `INTERNAL`. The class comes
//! from the SQLSTATE the Postgres front end reports for the same error.

use datafusion::error::DataFusionError;
use tonic::Status;

use crate::error::datafusion_sqlstate;
use crate::server::pgwire::errors::clean_message;

/// The status of a DataFusion error raised while planning or running a query.
pub fn from_datafusion(err: &DataFusionError) -> Status {
    let code = datafusion_sqlstate(err);
    let message = clean_message(err);
    match &code[..2] {
        // Syntax/access rule violations, data exceptions, integrity
        // constraints, feature not supported.
        "42" | "22" | "23" | "0A" => Status::invalid_argument(message),
        "53" => Status::resource_exhausted(message),
        _ => Status::internal(message),
    }
}

/// The status of an o11ydb error outside a query (opening a session).
pub fn from_engine(err: &crate::error::Error) -> Status {
    Status::internal(err.to_string())
}

/// The status of a refused ingest: bad rows are `INVALID_ARGUMENT`, a rate
/// limit `RESOURCE_EXHAUSTED`, an overloaded or failing write path
/// `UNAVAILABLE` (retry later), each with the message.
pub fn from_ingest(err: &crate::error::Error) -> Status {
    let message = err.to_string();
    match &err.sqlstate()[..2] {
        "22" | "23" | "42" => Status::invalid_argument(message),
        "53" if err.sqlstate() == "53400" => Status::resource_exhausted(message),
        "53" => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn user_errors_are_invalid_argument() {
        let ctx = SessionContext::new();
        for sql in [
            "SELEC 1",
            "SELECT * FROM nowhere",
            "SELECT nope FROM (SELECT 1 AS a)",
        ] {
            let err = ctx.sql(sql).await.unwrap_err();
            let status = from_datafusion(&err);
            assert_eq!(
                status.code(),
                tonic::Code::InvalidArgument,
                "{sql}: {status}"
            );
            assert!(!status.message().is_empty());
        }
        let status = from_datafusion(&DataFusionError::Internal("boom".into()));
        assert_eq!(status.code(), tonic::Code::Internal);
    }
}
