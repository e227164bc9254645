//! Embedding o11ydb: open an engine on a local directory, write samples with
//! SQL through the real write path (WAL, head), flush them into a Parquet
//! block, and query them back — no server involved.
//!
//! Run: `cargo run --example embedded`

use o11ydb::{Config, Engine};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let (engine, _) = Engine::open(config).await?;
    let sql = engine.session("example").await?;

    sql.sql(
        "INSERT INTO samples (timestamp, metric, labels, value) VALUES \
         ('2026-01-01T00:00:00Z', 'http_requests_total', map(['job'], ['api']), 10), \
         ('2026-01-01T00:00:15Z', 'http_requests_total', map(['job'], ['api']), 25), \
         ('2026-01-01T00:00:15Z', 'http_requests_total', map(['job'], ['db']), 3)",
    )
    .await?
    .collect()
    .await?;
    let report = engine.flush().await;
    println!(
        "flushed {} rows into {} block(s)",
        report.rows, report.blocks
    );

    let rate = sql
        .sql(
            "SELECT labels['job'] AS job, (max(value) - min(value)) / 15 AS per_second \
             FROM samples GROUP BY 1 ORDER BY 1",
        )
        .await?;
    rate.show().await?;
    Ok(())
}
