//! Network front ends. Each is a thin adapter over the [`crate::engine::Engine`]:
//! `pgwire` (Postgres wire protocol), `http` (readiness, flush, and the
//! Prometheus/Loki/Tempo/OTLP HTTP APIs as they arrive; `prometheus` is the
//! Prometheus query API), `otlp` (OTLP/gRPC
//! on its own listener; its OTLP/HTTP handlers mount on `http`) and `flight`
//! (Arrow Flight SQL); `users` holds the `[[users]]` both SQL front ends
//! log in against. [`run`] binds them all,
//! prints where they listen and runs until Ctrl-C or SIGTERM.

pub mod flight;
pub mod http;
pub mod loki;
pub mod otlp;
pub mod pgwire;
pub mod prometheus;
pub mod push;
pub mod push_logs;
pub mod rules_api;
pub mod tempo;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// How often `[limits]` and `[overrides]` are re-read from the config file.
pub const LIMITS_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Addresses actually bound (port 0 resolved).
#[derive(Debug, Clone)]
pub struct BoundAddrs {
    pub pg: SocketAddr,
    pub http: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub flight: SocketAddr,
}

async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen for {what} on {addr}: {e}")))
}

/// A running server: its addresses and the handle that stops it.
pub struct Running {
    pub addrs: BoundAddrs,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops accepting, lets the flush loop finish its current step, and returns.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds every listener of `config` and starts serving `engine`.
pub async fn start(engine: Arc<Engine>, config: &Config) -> Result<Running> {
    let pg_tls = pgwire::tls::acceptor(&config.pgwire)?;
    let flight_tls = flight::tls_config(&config.flight)?;
    let pg = bind("postgres", config.server.pg_listen).await?;
    let http = bind("http", config.server.http_listen).await?;
    let otlp_grpc = bind("otlp grpc", config.server.otlp_grpc_listen).await?;
    let flight = bind("flight sql", config.server.flight_listen).await?;
    let addrs = BoundAddrs {
        pg: pg.local_addr()?,
        http: http.local_addr()?,
        otlp_grpc: otlp_grpc.local_addr()?,
        flight: flight.local_addr()?,
    };
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(pgwire::serve(pg, engine.clone(), pg_tls, rx.clone())),
        tokio::spawn(http::serve(http, engine.clone(), rx.clone())),
        tokio::spawn(otlp::serve(otlp_grpc, engine.clone(), rx.clone())),
        tokio::spawn(flight::serve(
            flight,
            engine.clone(),
            flight_tls,
            rx.clone(),
        )),
        engine.ingester().spawn_flush_loop(rx.clone()),
    ];
    if config.compactor.enabled {
        tasks.push(engine.compactor().spawn_loop(rx.clone()));
    }
    if let Some(path) = &config.source_file {
        tasks.push(engine.spawn_limits_reload(path.clone(), LIMITS_RELOAD_INTERVAL, rx.clone()));
    }
    Ok(Running {
        addrs,
        shutdown,
        tasks,
    })
}
