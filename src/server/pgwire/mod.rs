//! The Postgres wire protocol front end (psql, Grafana's PostgreSQL
//! datasource, drivers): a TCP listener handing each connection to `pgwire`
//! with o11ydb's handlers. The protocol layer only translates; planning and
//! execution happen in the tenant's DataFusion session.
//!
//! `pgwire` does not read a connection while a query runs, so a client that
//! goes away mid-query would leave its query running to the end. Each
//! connection therefore gets a watcher (a duplicate of its socket, peeked
//! for end-of-file, like Postgres' `client_connection_check_interval`) whose
//! signal stops the connection's running query.
//!
//! - [`connection`]: the frames of one connection, checked before they are
//!   buffered (malformed, unknown or oversized messages → `FATAL` errors)
//! - [`auth`]: users, passwords and the tenant of a connection
//! - [`tls`]: the TLS acceptor of `[pgwire] tls_cert`/`tls_key`
//! - [`handler`]: simple and extended query protocol; [`execute`]: a
//!   portal's rows streamed to the client
//! - [`encode`], [`errors`]: Arrow → Postgres values, errors → SQLSTATEs

pub mod auth;
pub mod catalog;
pub mod compat;
pub mod connection;
pub mod encode;
pub mod errors;
pub mod execute;
pub mod handler;
pub mod settings;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers};
use pgwire::error::PgWireError;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::engine::Engine;
use auth::{PgAuth, PgStartup};
use handler::{PgBackend, PgExtended};

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        tracing::debug!(peer = %client.socket_addr(), "pgwire error: {error}");
    }
}

/// The handler set `pgwire` asks for on every connection.
pub struct PgHandlers {
    backend: Arc<PgBackend>,
    extended: Arc<PgExtended>,
    auth: Arc<PgAuth>,
    cancel: Arc<DefaultCancelHandler>,
}

/// Per live connection (by peer address): a signal that turns `true` once
/// the client has closed its end.
#[derive(Debug, Default)]
pub struct ConnectionWatch {
    closed: Mutex<HashMap<SocketAddr, watch::Receiver<bool>>>,
}

impl ConnectionWatch {
    /// The closed signal of the connection from `peer`, if it is watched.
    pub fn closed_signal(&self, peer: SocketAddr) -> Option<watch::Receiver<bool>> {
        self.closed.lock().get(&peer).cloned()
    }

    /// Splits off a probe of `socket` and watches it until the peer hangs up.
    /// Returns the socket for `pgwire` and the watcher task.
    fn watch(
        self: &Arc<Self>,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> std::io::Result<(TcpStream, tokio::task::JoinHandle<()>)> {
        let std_socket = socket.into_std()?;
        let probe = TcpStream::from_std(std_socket.try_clone()?)?;
        let socket = TcpStream::from_std(std_socket)?;
        let (tx, rx) = watch::channel(false);
        self.closed.lock().insert(peer, rx);
        let task = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            loop {
                match probe.peek(&mut byte).await {
                    // End of file or a broken connection: the client is gone.
                    Ok(0) | Err(_) => {
                        let _ = tx.send(true);
                        return;
                    }
                    // Data is waiting for pgwire; look again a little later.
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Ok((socket, task))
    }

    fn forget(&self, peer: SocketAddr) {
        self.closed.lock().remove(&peer);
    }
}

impl PgHandlers {
    pub fn new(engine: Arc<Engine>, connections: Arc<ConnectionWatch>) -> Self {
        let auth = Arc::new(PgAuth::new(
            engine.config(),
            Arc::new(ConnectionManager::new()),
        ));
        let connections_manager = auth.connections.clone();
        let backend = PgBackend::new(engine, connections);
        PgHandlers {
            extended: Arc::new(PgExtended::new(backend.clone())),
            backend,
            auth,
            cancel: Arc::new(DefaultCancelHandler::new(connections_manager)),
        }
    }
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.backend.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.extended.clone()
    }

    /// A new handler per connection: it holds the connection's
    /// authentication state.
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(PgStartup::new(self.auth.clone()))
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Accepts Postgres connections on `listener` until `shutdown` fires;
/// with `tls`, SSLRequest is answered with TLS.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let connections = Arc::new(ConnectionWatch::default());
    let max_message_bytes =
        usize::try_from(engine.config().pgwire.max_message_bytes).unwrap_or(usize::MAX);
    let handlers = Arc::new(PgHandlers::new(engine, connections.clone()));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let handlers = handlers.clone();
                    let connections = connections.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let (socket, watcher) = match connections.watch(socket, peer) {
                            Ok(x) => x,
                            Err(e) => {
                                tracing::warn!(%peer, "cannot watch postgres connection: {e}");
                                return;
                            }
                        };
                        if let Err(e) =
                            connection::process_socket(socket, tls, handlers, max_message_bytes).await
                        {
                            tracing::debug!(%peer, "postgres connection ended: {e}");
                        }
                        watcher.abort();
                        connections.forget(peer);
                    });
                }
                Err(e) => {
                    tracing::warn!("postgres accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}
