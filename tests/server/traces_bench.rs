//! The traces benchmark end to end at a small scale: generated spans go to
//! the real server over OTLP/HTTP, every benchmark query answers over
//! pgwire, and the answers agree with the generated data.

use crate::common::Server;
use o11ydb::bench::traces::{TracesDataset, load, query};

#[tokio::test(flavor = "multi_thread")]
async fn traces_bench_loads_and_answers_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let dataset = TracesDataset {
        spans: 3_000,
        hours: 1,
        end_ns: (chrono::Utc::now().timestamp() - 300) * 1_000_000_000,
    };
    let http = server.http;
    let data = dataset.clone();
    let report = tokio::task::spawn_blocking(move || load(&data, http, 256, 2))
        .await
        .unwrap()
        .unwrap();
    assert!((2_700..3_300).contains(&report.spans), "{report:?}");
    let stored: i64 = server
        .client()
        .await
        .query_one("SELECT count(*) FROM spans", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored as u64, report.spans, "every span sent is stored");

    let needle = dataset.needle();
    let (traces, step) = dataset.plan();
    let first = dataset.end_ns as u64 - (traces - 1) * step;
    let expected = TracesDataset::trace(traces / 2, first + traces / 2 * step).len();
    let answers = query(&server.conn_string(), &needle, 1).await.unwrap();
    let digest = |name: &str| {
        answers
            .iter()
            .find(|(n, _, _)| n.starts_with(name))
            .map(|(_, _, d)| d.clone())
            .unwrap()
    };
    assert_eq!(answers.len(), 7);
    // service_graph()'s client → server pairs are the self-join's.
    assert_eq!(
        digest("service_graph() function"),
        digest("service graph"),
        "{answers:?}"
    );
    // TraceQL's structural operator finds exactly what the SQL self-join finds.
    assert_eq!(
        digest("TraceQL structural"),
        digest("structural: checkout"),
        "{answers:?}"
    );
    assert!(
        digest("trace by id").starts_with(&format!("{expected} rows")),
        "{answers:?}"
    );
    let graph = digest("service graph");
    assert!(!graph.starts_with("0 rows"), "{graph}");
    let red = digest("RED");
    assert!(red.contains("requests"), "{red}");
    // Bad input: a pgwire address where nothing listens is a clear error.
    let err = query("host=127.0.0.1 port=1 user=o11ydb", &needle, 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
