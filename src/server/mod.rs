//! Network front ends. Each is a thin adapter over the [`crate::engine::Engine`]:
//! `pgwire` (Postgres wire protocol) and `http` (readiness, flush, and the
//! Prometheus/Loki/Tempo APIs as they arrive). [`run`] binds them all,
//! prints where they listen and runs until Ctrl-C or SIGTERM.

pub mod http;
pub mod pgwire;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};

/// Addresses actually bound (port 0 resolved).
#[derive(Debug, Clone)]
pub struct BoundAddrs {
    pub pg: SocketAddr,
    pub http: SocketAddr,
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
    let pg = bind("postgres", config.server.pg_listen).await?;
    let http = bind("http", config.server.http_listen).await?;
    let addrs = BoundAddrs {
        pg: pg.local_addr()?,
        http: http.local_addr()?,
    };
    let (shutdown, rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(pgwire::serve(pg, engine.clone(), rx.clone())),
        tokio::spawn(http::serve(http, engine.clone(), rx.clone())),
        engine.ingester().spawn_flush_loop(rx.clone()),
    ];
    Ok(Running {
        addrs,
        shutdown,
        tasks,
    })
}
