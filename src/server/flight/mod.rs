//! The Arrow Flight SQL front end (ADBC, JDBC/ODBC Flight SQL drivers,
//! `pyarrow.flight`): a gRPC listener on `server.flight_listen` serving
//! [`service::FlightSql`], over TLS with `[flight] tls_cert`/`tls_key`
//! ([`tls_config`]). Results leave as Arrow record batches, streamed as
//! DataFusion produces them; nothing is converted to rows or text.
//!
//! - [`auth`]: handshake tokens and the tenant of each call
//! - [`statements`]: planning, execution and prepared statements
//! - [`running`]: statement tickets, running queries and their cancellation
//!   (`CancelFlightInfo`, `CancelQuery`, a client dropping its `DoGet`)
//! - [`metadata`]: `GetSqlInfo`, catalogs, schemas, tables, table types
//! - [`errors`]: DataFusion errors as gRPC statuses
//!
//! `DoPut` ingest (`CommandStatementIngest`) reads a whole stream, bounded
//! by `server.max_request_body_bytes`, before writing any of it.
//! Not served yet: transactions and Substrait plans.

pub mod auth;
pub mod errors;
pub mod metadata;
pub mod running;
pub mod service;
pub mod statements;

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::config::FlightConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
pub use service::FlightSql;

/// The TLS config of `[flight] tls_cert`/`tls_key`, or `None` without them.
/// The files are checked here, so that a bad certificate stops the server
/// at start with the file named.
pub fn tls_config(config: &FlightConfig) -> Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    crate::server::pgwire::tls::server_config("flight", cert, key)?;
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| Error::Config(format!("flight.{what} {}: {e}", path.display())))
    };
    let identity = Identity::from_pem(read("tls_cert", cert)?, read("tls_key", key)?);
    Ok(Some(ServerTlsConfig::new().identity(identity)))
}

/// Serves Flight SQL on `listener` (over TLS with `tls`) until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    tls: Option<ServerTlsConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max = usize::try_from(engine.config().server.max_request_body_bytes).unwrap_or(usize::MAX);
    let service = FlightServiceServer::new(FlightSql::new(engine))
        .max_decoding_message_size(max)
        .accept_compressed(CompressionEncoding::Gzip);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = match builder.tls_config(tls) {
            Ok(builder) => builder,
            Err(e) => {
                tracing::error!("Flight SQL TLS: {e}");
                return;
            }
        };
    }
    let result = builder
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
