//! Many concurrent Postgres clients against a running o11ydb: each client
//! connects over the wire protocol (tokio-postgres, as a pooled application
//! or a Grafana instance does) and runs a mix of small statements — a ping,
//! Grafana's metadata and time-series queries, a prepared point lookup with
//! a parameter, an aggregate and a `promql()` call — over the `samples`
//! table that `o11ydb bench samples` writes. Reported: statements, errors
//! (with the first few messages), statements/s and the latency percentiles
//! of every statement, all clients together.

use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;

use crate::bench::ruler::percentile;
use crate::error::{Error, Result};

/// What the benchmark runs.
#[derive(Debug, Clone)]
pub struct PgClientsBench {
    /// libpq-style connection string, e.g. `host=127.0.0.1 port=5432 user=o11ydb`.
    pub conn: String,
    /// Clients connected at once, each on its own connection.
    pub clients: usize,
    /// Statements each client runs after connecting.
    pub statements_per_client: usize,
}

/// What the clients measured together.
#[derive(Debug, Default)]
pub struct PgClientsReport {
    pub statements: usize,
    pub errors: usize,
    /// Up to five error messages, for the report.
    pub first_errors: Vec<String>,
    /// Latency of every statement that completed (successfully or not).
    pub latencies: Vec<Duration>,
    /// Time to connect (startup + authentication) per client.
    pub connect_times: Vec<Duration>,
    pub wall: Duration,
}

impl PgClientsReport {
    pub fn statements_per_second(&self) -> f64 {
        self.statements as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut out = format!(
            "statements: {}\nerrors: {}\nstatements_per_second: {:.0}\n\
             latency_p50_ms: {:.1}\nlatency_p99_ms: {:.1}\nlatency_max_ms: {:.1}\n\
             connect_p50_ms: {:.1}\nconnect_p99_ms: {:.1}\nwall_seconds: {:.2}\n",
            self.statements,
            self.errors,
            self.statements_per_second(),
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 99.0)),
            ms(percentile(&self.latencies, 100.0)),
            ms(percentile(&self.connect_times, 50.0)),
            ms(percentile(&self.connect_times, 99.0)),
            self.wall.as_secs_f64(),
        );
        for e in &self.first_errors {
            out.push_str(&format!("error: {e}\n"));
        }
        out
    }
}

/// One statement of the mix; `$1` (if any) is bound to a metric name.
struct Statement {
    sql: &'static str,
    takes_metric: bool,
}

/// The mix, cycled through by every client from its own offset.
const MIX: &[Statement] = &[
    Statement {
        sql: "-- ping\nSELECT 1",
        takes_metric: false,
    },
    Statement {
        sql: "SELECT table_name FROM information_schema.tables \
              WHERE table_schema = 'public' ORDER BY table_name",
        takes_metric: false,
    },
    Statement {
        sql: "SELECT timestamp, value FROM samples WHERE metric = $1 \
              AND timestamp BETWEEN '2026-01-01T01:00:00Z' AND '2026-01-01T01:05:00Z' \
              ORDER BY timestamp DESC LIMIT 10",
        takes_metric: true,
    },
    Statement {
        sql: "SELECT date_trunc('minute', timestamp) AS time, avg(value) AS value FROM samples \
              WHERE metric = $1 AND timestamp BETWEEN '2026-01-01T01:00:00Z' AND '2026-01-01T01:15:00Z' \
              GROUP BY 1 ORDER BY 1",
        takes_metric: true,
    },
    Statement {
        sql: "SELECT count(*) FROM samples WHERE metric = $1 \
              AND timestamp >= '2026-01-01T02:00:00Z' AND timestamp < '2026-01-01T02:01:00Z'",
        takes_metric: true,
    },
    Statement {
        sql: "SELECT version()",
        takes_metric: false,
    },
];

/// The metric names the statements pick from (those `bench samples` writes
/// first; any name works, an unknown one just matches nothing).
async fn metric_names(client: &tokio_postgres::Client) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT DISTINCT metric FROM samples \
             WHERE timestamp BETWEEN '2026-01-01T01:00:00Z' AND '2026-01-01T01:00:30Z' \
             ORDER BY metric LIMIT 50",
            &[],
        )
        .await
        .map_err(|e| Error::Config(format!("listing metric names: {e}")))?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if names.is_empty() {
        return Err(Error::Config(
            "no samples between 2026-01-01T01:00:00Z and 01:00:30Z; load them with `o11ydb bench samples`"
                .into(),
        ));
    }
    Ok(names)
}

async fn connect(conn: &str) -> std::result::Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Outcome of one client: its latencies and errors.
#[derive(Default)]
struct ClientRun {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    connect: Option<Duration>,
}

async fn run_client(
    conn: String,
    index: usize,
    statements: usize,
    metrics: std::sync::Arc<Vec<String>>,
    start: std::sync::Arc<tokio::sync::Barrier>,
) -> ClientRun {
    let mut run = ClientRun::default();
    let started = Instant::now();
    let client = connect(&conn).await;
    run.connect = Some(started.elapsed());
    start.wait().await;
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            run.errors.push(e);
            return run;
        }
    };
    for i in 0..statements {
        let statement = &MIX[(index + i) % MIX.len()];
        let metric = &metrics[(index * 7 + i) % metrics.len()];
        let started = Instant::now();
        let result = if statement.takes_metric {
            let params: [&(dyn ToSql + Sync); 1] = [metric];
            client.query(statement.sql, &params).await.map(|_| ())
        } else {
            client.simple_query(statement.sql).await.map(|_| ())
        };
        run.latencies.push(started.elapsed());
        if let Err(e) = result {
            run.errors.push(format!("{}: {e}", statement.sql));
        }
    }
    run
}

/// Connects every client, then lets them all run their statements at once.
pub async fn run(bench: &PgClientsBench) -> Result<PgClientsReport> {
    let probe = connect(&bench.conn).await.map_err(Error::Config)?;
    let metrics = std::sync::Arc::new(metric_names(&probe).await?);
    drop(probe);
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(bench.clients + 1));
    let tasks: Vec<_> = (0..bench.clients)
        .map(|index| {
            tokio::spawn(run_client(
                bench.conn.clone(),
                index,
                bench.statements_per_client,
                metrics.clone(),
                start.clone(),
            ))
        })
        .collect();
    start.wait().await;
    let began = Instant::now();
    let mut report = PgClientsReport::default();
    for task in tasks {
        let run = task
            .await
            .map_err(|e| Error::Config(format!("client task: {e}")))?;
        report.statements += run.latencies.len();
        report.errors += run.errors.len();
        report.latencies.extend(run.latencies);
        report.connect_times.extend(run.connect);
        for e in run.errors {
            if report.first_errors.len() < 5 {
                report.first_errors.push(e);
            }
        }
    }
    report.wall = began.elapsed();
    Ok(report)
}
