//! The Arrow Flight SQL front end (ADBC, JDBC/ODBC Flight SQL drivers,
//! `pyarrow.flight`): a gRPC listener on `server.flight_listen` serving
//! [`service::FlightSql`]. Results leave as Arrow record batches, streamed
//! as DataFusion produces them; nothing is converted to rows or text.
//!
//! - [`auth`]: handshake tokens and the tenant of each call
//! - [`statements`]: planning, execution and prepared statements
//! - [`metadata`]: `GetSqlInfo`, catalogs, schemas, tables, table types
//! - [`errors`]: DataFusion errors as gRPC statuses
//!
//! `DoPut` ingest (`CommandStatementIngest`) reads a whole stream, bounded
//! by `server.max_request_body_bytes`, before writing any of it.
//! Not served yet: query cancellation, transactions, Substrait plans and TLS.

pub mod auth;
pub mod errors;
pub mod metadata;
pub mod service;
pub mod statements;

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;

use crate::engine::Engine;
pub use service::FlightSql;

/// Serves Flight SQL on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max = usize::try_from(engine.config().server.max_request_body_bytes).unwrap_or(usize::MAX);
    let service = FlightServiceServer::new(FlightSql::new(engine))
        .max_decoding_message_size(max)
        .accept_compressed(CompressionEncoding::Gzip);
    let result = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async move {
                let _ = shutdown.changed().await;
            },
        )
        .await;
    if let Err(e) = result {
        tracing::error!("Flight SQL server failed: {e}");
    }
}
