//! Bulk import (`o11ydb import`): Parquet files → record batches → a
//! running server over Arrow Flight SQL (`CommandStatementIngest`, the
//! DoPut path, so the server's distributor validates, applies limits and
//! writes the WAL as for every other write).
//!
//! What flows through: each file is read as a stream of record batches of
//! at most `batch_rows` rows (memory stays bounded whatever the file's
//! size); each batch is one ingest call, so a batch the server refuses is
//! named exactly (file, batch number, rows), every batch before it is
//! stored, and nothing of it or after it is. Progress (rows and bytes
//! sent, percent of the file, rows/s) goes to a callback about every
//! `progress_interval`, and a summary per file at its end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_flight::error::FlightError;
use arrow_flight::sql::CommandStatementIngest;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::StreamExt;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use tonic::transport::Channel;

use crate::model::Signal;
use crate::server::otlp::TENANT_METADATA;

/// What to import where.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub table: Signal,
    /// The tenant (`x-scope-orgid`); the server's default tenant when `None`.
    pub tenant: Option<String>,
    /// The server's Flight SQL address, `host:port`.
    pub server: String,
    /// A `[[users]]` name and password for the Flight SQL handshake (needed
    /// when the server has users); the tenant is then one of the user's.
    pub credentials: Option<(String, String)>,
    /// Most rows sent in one ingest call.
    pub batch_rows: usize,
    pub progress_interval: Duration,
}

/// Where the import of one file stands.
#[derive(Debug, Clone)]
pub struct FileProgress {
    pub file: PathBuf,
    /// Rows the server stored.
    pub rows: u64,
    /// Rows in the file (its Parquet footer).
    pub total_rows: u64,
    /// Arrow bytes of the stored batches.
    pub bytes: u64,
    pub batches: u64,
    pub elapsed: Duration,
}

impl FileProgress {
    pub fn percent(&self) -> f64 {
        if self.total_rows == 0 {
            100.0
        } else {
            self.rows as f64 * 100.0 / self.total_rows as f64
        }
    }

    pub fn rows_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.rows as f64 / s } else { 0.0 }
    }
}

impl std::fmt::Display for FileProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} of {} rows ({:.1}%), {:.1} MiB sent, {:.0} rows/s",
            self.file.display(),
            self.rows,
            self.total_rows,
            self.percent(),
            self.bytes as f64 / (1024.0 * 1024.0),
            self.rows_per_second()
        )
    }
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot connect to the Flight SQL server at {server}: {message}")]
    Connect { server: String, message: String },
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
    #[error(
        "{}: batch {batch} (rows {first_row} to {last_row}) was refused by the server: {message} \
         ({stored} rows of the file before it were stored)",
        file.display()
    )]
    Refused {
        file: PathBuf,
        batch: u64,
        first_row: u64,
        last_row: u64,
        stored: u64,
        message: String,
    },
}

/// A Flight SQL client to `options.server`, acting for `options.tenant`.
pub async fn connect(
    options: &ImportOptions,
) -> Result<FlightSqlServiceClient<Channel>, ImportError> {
    let error = |message: String| ImportError::Connect {
        server: options.server.clone(),
        message,
    };
    let url = if options.server.contains("://") {
        options.server.clone()
    } else {
        format!("http://{}", options.server)
    };
    let channel = Channel::from_shared(url)
        .map_err(|e| error(e.to_string()))?
        .connect()
        .await
        .map_err(|e| error(format!("{e} ({})", source_chain(&e))))?;
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(t) = &options.tenant {
        client.set_header(TENANT_METADATA, t);
    }
    if let Some((user, password)) = &options.credentials {
        client
            .handshake(user, password)
            .await
            .map_err(|e| error(format!("the handshake as user {user:?} failed: {}", e)))?;
    }
    Ok(client)
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// What the server said, without the client library's wrapping.
fn server_message(e: FlightError) -> String {
    match e {
        FlightError::Tonic(status) => format!("{} ({:?})", status.message(), status.code()),
        other => other.to_string(),
    }
}

/// Imports one Parquet file; `progress` is called about every
/// `progress_interval` while it runs. Returns the final progress.
pub async fn import_file(
    client: &mut FlightSqlServiceClient<Channel>,
    options: &ImportOptions,
    file: &Path,
    progress: &mut dyn FnMut(&FileProgress),
) -> Result<FileProgress, ImportError> {
    let file_error = |message: String| ImportError::File {
        file: file.to_path_buf(),
        message,
    };
    let handle = tokio::fs::File::open(file)
        .await
        .map_err(|e| file_error(format!("cannot open: {e}")))?;
    let builder = ParquetRecordBatchStreamBuilder::new(handle)
        .await
        .map_err(|e| file_error(format!("not a readable Parquet file: {e}")))?;
    let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let mut batches = builder
        .with_batch_size(options.batch_rows.max(1))
        .build()
        .map_err(|e| file_error(format!("not a readable Parquet file: {e}")))?;
    let started = Instant::now();
    let mut last_report = started;
    let mut state = FileProgress {
        file: file.to_path_buf(),
        rows: 0,
        total_rows,
        bytes: 0,
        batches: 0,
        elapsed: Duration::ZERO,
    };
    let mut rows_read = 0u64;
    while let Some(batch) = batches.next().await {
        let number = state.batches + 1;
        let batch = batch.map_err(|e| {
            file_error(format!(
                "reading batch {number} (after row {rows_read}): {e}"
            ))
        })?;
        let n = batch.num_rows() as u64;
        let bytes = batch.get_array_memory_size() as u64;
        let command = CommandStatementIngest {
            table: options.table.table_name().to_string(),
            ..Default::default()
        };
        let stored = client
            .execute_ingest(command, futures::stream::iter(vec![Ok(batch)]))
            .await
            .map_err(|e| ImportError::Refused {
                file: file.to_path_buf(),
                batch: number,
                first_row: rows_read + 1,
                last_row: rows_read + n,
                stored: state.rows,
                message: server_message(e),
            })?;
        rows_read += n;
        state.rows += stored.max(0) as u64;
        state.bytes += bytes;
        state.batches = number;
        state.elapsed = started.elapsed();
        if last_report.elapsed() >= options.progress_interval {
            last_report = Instant::now();
            progress(&state);
        }
    }
    state.elapsed = started.elapsed();
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_a_line() {
        let p = FileProgress {
            file: "a.parquet".into(),
            rows: 250,
            total_rows: 1000,
            bytes: 3 * 1024 * 1024,
            batches: 1,
            elapsed: Duration::from_millis(500),
        };
        assert_eq!(
            p.to_string(),
            "a.parquet: 250 of 1000 rows (25.0%), 3.0 MiB sent, 500 rows/s"
        );
        let empty = FileProgress {
            total_rows: 0,
            rows: 0,
            ..p
        };
        assert_eq!(empty.percent(), 100.0);
    }
}
