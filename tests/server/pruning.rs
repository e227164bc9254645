//! Block pruning: blocks outside a query's time range, or whose bloom says a
//! trace id or label value is absent, are never opened. Proven twice: by the
//! counts `EXPLAIN ANALYZE` reports, and by destroying the pruned blocks'
//! Parquet files — the pruned query still answers, an unpruned one fails.

use crate::common::{Server, tempdir};

async fn explain_analyze(client: &tokio_postgres::Client, sql: &str) -> String {
    let rows = client
        .simple_query(&format!("EXPLAIN ANALYZE {sql}"))
        .await
        .unwrap();
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(1).map(str::to_string),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The blocks listed by the newest manifest of a signal of tenant `anonymous`.
pub fn latest_manifest_blocks(data: &std::path::Path, signal: &str) -> Vec<serde_json::Value> {
    let manifest_dir = data.join(format!("blocks/tenants/anonymous/{signal}/manifests"));
    let latest = std::fs::read_dir(&manifest_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(latest).unwrap()).unwrap();
    manifest["blocks"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn untouched_blocks_are_not_read() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let client = server.client().await;
    // Three blocks: one per hour, each with its own trace and service label.
    for hour in 0..3i64 {
        let base = 1_767_225_600_000_000_000i64 + hour * 3_600_000_000_000;
        let sql = format!(
            "INSERT INTO spans (trace_id, span_id, name, service, start_time, end_time) \
             SELECT 'trace-{hour}-' || CAST(value AS VARCHAR), 'span', 'op', 'svc{hour}', \
                    to_timestamp_nanos({base} + value * 1000000000), \
                    to_timestamp_nanos({base} + value * 1000000000 + 5000000) \
             FROM generate_series(0, 999)"
        );
        assert_eq!(client.execute(sql.as_str(), &[]).await.unwrap(), 1000);
        server.flush();
    }
    let by_time = "SELECT count(*) FROM spans WHERE start_time >= '2026-01-01T01:00:00Z' \
                   AND start_time < '2026-01-01T02:00:00Z'";
    let plan = explain_analyze(&client, by_time).await;
    assert!(
        plan.contains(
            "blocks_scanned=1 blocks_pruned=2 (time=2, bloom=0, label_sets=0) of 3 blocks"
        ),
        "{plan}"
    );
    let by_trace = "SELECT name FROM spans WHERE trace_id = 'trace-2-17'";
    let plan = explain_analyze(&client, by_trace).await;
    assert!(
        plan.contains(
            "blocks_scanned=1 blocks_pruned=2 (time=0, bloom=2, label_sets=0) of 3 blocks"
        ),
        "{plan}"
    );
    let by_service = "SELECT count(*) FROM spans WHERE service IN ('svc0', 'svc2')";
    let plan = explain_analyze(&client, by_service).await;
    assert!(plan.contains("blocks_scanned=2 blocks_pruned=1"), "{plan}");

    // Destroy every block except hour 1's and hour 2's... by finding which
    // block holds which hour through the manifest.
    let blocks = latest_manifest_blocks(&data, "spans");
    assert_eq!(blocks.len(), 3);
    let hour1_start = 1_767_229_200_000_000_000i64; // 2026-01-01T01:00:00Z in ns
    for b in &blocks {
        if b["min_time"].as_i64().unwrap() != hour1_start {
            let path = data.join(format!(
                "blocks/tenants/anonymous/spans/blocks/{}.parquet",
                b["id"].as_str().unwrap()
            ));
            std::fs::write(path, b"not parquet any more").unwrap();
        }
    }
    let rows = client.query(by_time, &[]).await.unwrap();
    assert_eq!(
        rows[0].get::<_, i64>(0),
        1000,
        "the pruned query never opened the destroyed blocks"
    );
    let e = client
        .query("SELECT count(*) FROM spans WHERE name = 'op'", &[])
        .await;
    assert!(
        e.is_err(),
        "a query that must read the destroyed blocks fails"
    );
    // ... and the server keeps serving.
    let rows = client.query("SELECT 1", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn label_equality_prunes_sample_blocks_by_bloom() {
    let dir = tempdir();
    // No bloom is kept in memory: every query reads them from the store.
    let server = Server::start_with(&dir.path().join("data"), "[query]\nindex_cache_size = 0\n");
    let client = server.client().await;
    for job in ["api", "db", "cache"] {
        let sql = format!(
            "INSERT INTO samples (timestamp, metric, labels, value) \
             SELECT to_timestamp_millis(1767225600000 + value * 15000), 'up', \
                    map(['job', 'instance'], ['{job}', 'host-' || CAST(value % 10 AS VARCHAR)]), 1 \
             FROM generate_series(0, 99)"
        );
        client.execute(sql.as_str(), &[]).await.unwrap();
        server.flush();
    }
    let q = "SELECT count(*) FROM samples WHERE labels['job'] = 'db'";
    let plan = explain_analyze(&client, q).await;
    assert!(
        plan.contains("blocks_scanned=1 blocks_pruned=2 (time=0, bloom=2, label_sets=0)"),
        "{plan}"
    );
    let rows = client.query(q, &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 100);
    let q = "SELECT count(*) FROM samples WHERE labels['job'] = 'nope'";
    let plan = explain_analyze(&client, q).await;
    assert!(plan.contains("blocks_scanned=0 blocks_pruned=3"), "{plan}");
}

/// LogQL over blocks: the time range and a `| trace_id="…"` filter on
/// structured metadata prune blocks — proven by destroying the others.
#[tokio::test(flavor = "multi_thread")]
async fn logql_trace_id_filter_prunes_log_blocks() {
    use crate::common::http_exchange;
    let dir = tempdir();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let base = now - 30 * 60 * 1_000_000_000;
    let trace = |block: usize, i: usize| format!("{block:02x}{i:030x}");
    // Three blocks of 100 lines, each with its own trace ids and minutes.
    let first_ns = |block: usize| base + (block as i64) * 200 * 1_000_000_000;
    for block in 0..3 {
        let values: Vec<serde_json::Value> = (0..100)
            .map(|i| {
                serde_json::json!([
                    (first_ns(block) + (i as i64) * 1_000_000_000).to_string(),
                    format!("block={block} line={i}"),
                    {"trace_id": trace(block, i)}
                ])
            })
            .collect();
        let body = serde_json::json!({"streams": [{"stream": {"app": "shop"}, "values": values}]});
        let a = http_exchange(
            server.http,
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(a.status, 204, "{}", a.body);
        server.flush();
    }
    let blocks = latest_manifest_blocks(&data, "logs");
    assert_eq!(blocks.len(), 3);
    let query = |q: &str| {
        let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let path = format!(
            "/loki/api/v1/query_range?query={enc}&start={}&end={}&limit=1000",
            base - 1_000_000_000,
            now
        );
        http_exchange(server.http, "GET", &path, &[], b"")
    };
    let needle = format!(r#"{{app="shop"}} | trace_id="{}""#, trace(1, 42));
    let a = query(&needle);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("block=1 line=42"), "{}", a.body);
    // Destroy every block but block 1's (the query's time range covers all three).
    for b in &blocks {
        if b["min_time"].as_i64().unwrap() != first_ns(1) {
            let path = data.join(format!(
                "blocks/tenants/anonymous/logs/blocks/{}.parquet",
                b["id"].as_str().unwrap()
            ));
            std::fs::write(path, b"not parquet any more").unwrap();
        }
    }
    let a = query(&needle);
    assert_eq!(
        a.status, 200,
        "the pruned query never opened the destroyed blocks: {}",
        a.body
    );
    assert!(a.body.contains("block=1 line=42"), "{}", a.body);
    let a = query(r#"{app="shop"} |= "line=42""#);
    assert_ne!(
        a.status, 200,
        "a query that must read the destroyed blocks fails"
    );
    let a = query(&needle);
    assert_eq!(a.status, 200, "and the server keeps serving");
}

/// Logs ⨝ traces: `spans JOIN logs USING (trace_id)` filtered on one trace
/// id reads one block of each table — the filter reaches the logs scan
/// through the join key and both trace-id blooms prune the rest. (The
/// blooms answer with a 1% false-positive rate; the id is one without a
/// false positive in these blocks, which hash deterministically.)
#[tokio::test(flavor = "multi_thread")]
async fn spans_join_logs_on_trace_id_prunes_both_tables() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let client = server.client().await;
    for block in 0..3i64 {
        let base = 1_767_225_600_000_000_000i64 + block * 600_000_000_000;
        let spans = format!(
            "INSERT INTO spans (trace_id, span_id, name, service, start_time, end_time) \
             SELECT 't{block}-' || CAST(value AS VARCHAR), 's' || CAST(value AS VARCHAR), 'op', 'svc', \
                    to_timestamp_nanos({base} + value * 1000000000), \
                    to_timestamp_nanos({base} + value * 1000000000 + 5000000) \
             FROM generate_series(0, 199)"
        );
        client.execute(spans.as_str(), &[]).await.unwrap();
        let logs = format!(
            "INSERT INTO logs (timestamp, labels, line, trace_id) \
             SELECT to_timestamp_nanos({base} + value * 1000000000 + 1000000), map(['app'], ['shop']), \
                    'line ' || CAST(value AS VARCHAR), 't{block}-' || CAST(value AS VARCHAR) \
             FROM generate_series(0, 199)"
        );
        client.execute(logs.as_str(), &[]).await.unwrap();
        server.flush();
    }
    let join = "SELECT s.name, l.line FROM spans s JOIN logs l USING (trace_id) \
                WHERE s.trace_id = 't1-17'";
    let rows = client.query(join, &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(1), "line 17");
    let plan = explain_analyze(&client, join).await;
    let pruned = plan
        .matches("blocks_scanned=1 blocks_pruned=2 (time=0, bloom=2, label_sets=0) of 3 blocks")
        .count();
    assert_eq!(pruned, 2, "both scans prune by the trace-id bloom:\n{plan}");
}

/// Blocks are cut by `Server::flush` and merged by `/compactor/run` only.
const FLUSH_AND_COMPACT_BY_HAND: &str = r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[compactor]
compaction_interval = "1h"
deletion_delay = "0s"
"#;

/// A trace-id needle inside a log block reads only the row segments whose
/// bloom may hold the id (`blocks/<id>.rows`): log blocks are sorted by
/// stream, so one trace's lines scatter, and the rest of the block is
/// skipped — in a flushed block and in the compactor's merge of two.
#[tokio::test(flavor = "multi_thread")]
async fn trace_id_needle_reads_only_its_row_segments() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, FLUSH_AND_COMPACT_BY_HAND);
    server.wait_for_startup_compaction();
    let client = server.client().await;
    // Two blocks of 12,000 lines in 4 streams; line i of a block has trace
    // i / 4 of that block, so each trace has a line in every stream.
    let base = 1_767_225_600_000_000_000i64;
    for block in 0..2i64 {
        let sql = format!(
            "INSERT INTO logs (timestamp, labels, line, trace_id) \
             SELECT to_timestamp_nanos({base} + {block} * 3600000000000 + value * 1000000), \
                    map(['app'], ['s' || CAST(value % 4 AS VARCHAR)]), \
                    'block={block} line=' || CAST(value AS VARCHAR), \
                    'b{block}-trace-' || CAST(value / 4 AS VARCHAR) \
             FROM generate_series(0, 11999)"
        );
        assert_eq!(client.execute(sql.as_str(), &[]).await.unwrap(), 12_000);
        server.flush();
    }
    let blocks = latest_manifest_blocks(&data, "logs");
    assert_eq!(blocks.len(), 2);
    assert!(
        blocks
            .iter()
            .all(|b| b["row_index_bytes"].as_u64().unwrap() > 0),
        "{blocks:?}"
    );
    let needle = "SELECT line FROM logs WHERE trace_id = 'b1-trace-2222' ORDER BY line";
    let expect = |rows: Vec<tokio_postgres::Row>| {
        let lines: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            lines,
            (8888..8892)
                .map(|i| format!("block=1 line={i}"))
                .collect::<Vec<_>>()
        );
    };
    // The block bloom rules out block 0; in block 1 four segments of 2,048
    // rows (one per stream) at most are read (a false positive adds one).
    let skipped = |plan: &str| -> u64 {
        let at = plan
            .find("rows_skipped_by_row_index=")
            .unwrap_or_else(|| panic!("{plan}"));
        plan[at + "rows_skipped_by_row_index=".len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let plan = explain_analyze(&client, needle).await;
    assert!(plan.contains("blocks_scanned=1 blocks_pruned=1"), "{plan}");
    assert!(skipped(&plan) >= 12_000 - 5 * 2048, "{plan}");
    expect(client.query(needle, &[]).await.unwrap());
    // The compactor merges both blocks (one 2 h window) and writes the
    // merged block's row index.
    let (status, body) = server.http_post("/compactor/run");
    assert_eq!(status, 200, "{body}");
    let blocks = latest_manifest_blocks(&data, "logs");
    assert_eq!(blocks.len(), 1, "{body}");
    assert!(blocks[0]["row_index_bytes"].as_u64().unwrap() > 0);
    let plan = explain_analyze(&client, needle).await;
    assert!(skipped(&plan) >= 24_000 - 5 * 2048, "{plan}");
    expect(client.query(needle, &[]).await.unwrap());
    // A destroyed row index is not an error: the whole block is read. (A
    // restarted server, which has not cached the index it read before.)
    let id = blocks[0]["id"].as_str().unwrap();
    std::fs::write(
        data.join(format!("blocks/tenants/anonymous/logs/blocks/{id}.rows")),
        b"damaged",
    )
    .unwrap();
    drop(client);
    let mut server = server;
    server.stop();
    let server = Server::start_with(&data, FLUSH_AND_COMPACT_BY_HAND);
    server.wait_for_startup_compaction();
    let client = server.client().await;
    let plan = explain_analyze(&client, needle).await;
    assert_eq!(skipped(&plan), 0, "{plan}");
    expect(client.query(needle, &[]).await.unwrap());
}

/// Stream-label filters choose row groups by the label sets of each row
/// group (the dictionary pages of the packed `labels` column): a block of
/// three streams, one per row group of 131,072 lines, reads one row group
/// for a one-stream selector, none for a filter no stream passes (which no
/// bloom can answer), and LogQL counts agree.
#[tokio::test(flavor = "multi_thread")]
async fn stream_label_filters_read_only_row_groups_holding_the_streams() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let server = Server::start_with(
        &data,
        r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
"#,
    );
    let client = server.client().await;
    const PER_STREAM: i64 = 131_072;
    let base = chrono::Utc::now().timestamp_nanos_opt().unwrap() - 3_600_000_000_000;
    let sql = format!(
        "INSERT INTO logs (timestamp, labels, line) \
         SELECT to_timestamp_nanos({base} + (value % {PER_STREAM}) * 10000), \
                map(['app'], ['s' || CAST(value / {PER_STREAM} AS VARCHAR)]), \
                'line ' || CAST(value AS VARCHAR) \
         FROM generate_series(0, {})",
        3 * PER_STREAM - 1
    );
    assert_eq!(
        client.execute(sql.as_str(), &[]).await.unwrap(),
        3 * PER_STREAM as u64
    );
    server.flush();
    assert_eq!(latest_manifest_blocks(&data, "logs").len(), 1);
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            let row = client.query_one(sql, &[]).await.unwrap();
            row.get::<_, i64>(0)
        }
    };
    let one = "SELECT count(*) FROM logs WHERE labels['app'] = 's1'";
    let plan = explain_analyze(&client, one).await;
    assert!(
        plan.contains(&format!("rows_skipped_by_label_sets={}", 2 * PER_STREAM)),
        "{plan}"
    );
    assert_eq!(count(one).await, PER_STREAM);
    let two = "SELECT count(*) FROM logs WHERE labels['app'] IN ('s0', 's2')";
    assert_eq!(count(two).await, 2 * PER_STREAM);
    // No stream's name starts with x: the block is not opened.
    let none = "SELECT count(*) FROM logs WHERE labels['app'] LIKE 'x%'";
    let plan = explain_analyze(&client, none).await;
    assert!(
        plan.contains("blocks_pruned=1 (time=0, bloom=0, label_sets=1)"),
        "{plan}"
    );
    assert_eq!(count(none).await, 0);
    let not_s0 = "SELECT count(*) FROM logs WHERE labels['app'] <> 's0'";
    assert_eq!(count(not_s0).await, 2 * PER_STREAM);
    // LogQL: the selector's equality is pushed down the same way.
    let q: String =
        url::form_urlencoded::byte_serialize(br#"sum(count_over_time({app=~"s1|s2"}[2h]))"#)
            .collect();
    let (status, body) = server.http_get(&format!(
        "/loki/api/v1/query?query={q}&time={}",
        base + 3_600_000_000_000
    ));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("\"{}\"", 2 * PER_STREAM)), "{body}");
}

/// The line filters of a query over log blocks are decided per line
/// template (listed in each block's `.rows` sidecar): a block none of
/// whose templates can pass is not read, a block whose templates all decide
/// is filtered on its template column, and a filter on a variable (a status
/// code) reads the lines. Answers are the same from the head, from flushed
/// blocks and from the compactor's merge of them, through SQL and LogQL.
#[tokio::test(flavor = "multi_thread")]
async fn line_filters_are_decided_per_line_template() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, FLUSH_AND_COMPACT_BY_HAND);
    server.wait_for_startup_compaction();
    let client = server.client().await;
    let base = 1_767_225_600_000_000_000i64;
    // Block 0 has no "connection reset" line; block 1 and the head do.
    let messages = [
        "CASE value % 2 WHEN 0 THEN 'cache miss' ELSE 'upstream timeout' END",
        "CASE value % 3 WHEN 0 THEN 'connection reset by peer' WHEN 1 THEN 'cache miss' \
         ELSE 'upstream timeout' END",
        "CASE value % 3 WHEN 0 THEN 'connection reset by peer' WHEN 1 THEN 'cache miss' \
         ELSE 'upstream timeout' END",
    ];
    for (part, message) in messages.iter().enumerate() {
        let sql = format!(
            "INSERT INTO logs (timestamp, labels, line) \
             SELECT to_timestamp_nanos({base} + {part} * 3600000000000 + value * 1000000), \
                    map(['app'], ['a' || CAST(value % 2 AS VARCHAR)]), \
                    'level=info msg=\"' || {message} || '\" status=' || CAST(200 + value % 5 AS VARCHAR) \
                    || ' user=' || CAST(value AS VARCHAR) \
             FROM generate_series(0, 2999)"
        );
        assert_eq!(client.execute(sql.as_str(), &[]).await.unwrap(), 3000);
        if part < 2 {
            server.flush();
        }
    }
    // (query, expected count, what the line templates did: over the two
    // flushed blocks, then over the merged block and the head's block)
    type Case = (
        &'static str,
        i64,
        Option<&'static str>,
        Option<&'static str>,
    );
    let both = Some("line_templates(pruned=0, filtered=2)");
    let by_variables = Some("line_templates(pruned=0, filtered=2, by_variables=2)");
    let cases: [Case; 8] = [
        (
            "contains(line, 'connection reset')",
            2000,
            Some("line_templates(pruned=1, filtered=1)"),
            both,
        ),
        (
            "NOT contains(line, 'cache miss') AND line LIKE '%timeout%'",
            1500 + 1000 + 1000,
            both,
            both,
        ),
        (
            "regexp_like(line, '(?i)UPSTREAM') OR contains(line, 'reset by')",
            3500 + 2000,
            both,
            both,
        ),
        // A status is a variable: decided per line from the stored
        // variables, not the lines.
        (
            "contains(line, 'status=203')",
            600 * 3,
            by_variables,
            by_variables,
        ),
        (
            "contains(line, 'status=203') AND line ~ 'connection reset'",
            400,
            Some("line_templates(pruned=1, filtered=1, by_variables=1)"),
            by_variables,
        ),
        (
            r#"line ~ 'status[=":]+20[34] user=1'"#,
            (0..3000)
                .filter(|v| matches!(v % 5, 3 | 4) && v.to_string().starts_with('1'))
                .count() as i64
                * 3,
            by_variables,
            by_variables,
        ),
        // ILIKE is not decided per template: the lines are read.
        ("line ILIKE '%STATUS=203%'", 600 * 3, None, None),
        (
            "line LIKE 'level=info msg=\"cache miss\"%'",
            1500 + 1000 + 1000,
            both,
            both,
        ),
    ];
    let check = |plan: &str, answered: Option<&str>| match answered {
        Some(text) => assert!(plan.contains(text), "{plan}"),
        None => assert!(!plan.contains("line_templates("), "{plan}"),
    };
    for round in ["blocks", "merged"] {
        for (filter, expected, flushed, merged) in &cases {
            let sql = format!("SELECT count(*) FROM logs WHERE {filter}");
            let count: i64 = client.query_one(sql.as_str(), &[]).await.unwrap().get(0);
            assert_eq!(count, *expected, "{round}: {filter}");
            let answered = if round == "blocks" { flushed } else { merged };
            check(&explain_analyze(&client, &sql).await, *answered);
            // The lines themselves, with a limit below the matches.
            let sql = format!("SELECT line FROM logs WHERE {filter} LIMIT 7");
            let rows = client.query(sql.as_str(), &[]).await.unwrap();
            assert_eq!(rows.len(), 7.min(*expected as usize), "{round}: {filter}");
        }
        // Label filters are answered per label set, not re-checked on maps.
        let sql = "SELECT count(*) FROM logs WHERE labels['app'] = 'a1' \
                   AND contains(line, 'connection reset')";
        let count: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        assert_eq!(count, 1000, "{round}");
        // Nothing filters above the scan (the head's rows are filtered in it).
        let plan = explain_analyze(&client, sql).await;
        let above_scan = &plan[..plan.find("SignalScanExec").unwrap()];
        assert!(!above_scan.contains("FilterExec"), "{plan}");
        // Qualified columns, and a join's side.
        let sql = "SELECT count(*) FROM logs l WHERE l.labels['app'] = 'a1' \
                   AND contains(l.line, 'connection reset') AND l.line NOT LIKE '%user=1%'";
        let count: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        let users_from_1: i64 = (0..3000)
            .filter(|v| v % 6 == 3 && v.to_string().starts_with('1'))
            .count() as i64;
        assert_eq!(count, 1000 - 2 * users_from_1, "{round}");
        let sql = "SELECT count(*), min(labels['app']) FROM logs WHERE labels['app'] = 'a1'";
        let row = client.query_one(sql, &[]).await.unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, String>(1)),
            (4500, "a1".into())
        );
        // LogQL over HTTP: counting lines with a filter, and returning them.
        let query = |q: &str| {
            let path = format!(
                "/loki/api/v1/query_range?query={}&start={base}&end={}&step=3h&limit=1000",
                crate::common::urlencode(q),
                base + 3 * 3_600_000_000_000
            );
            let (status, body) = server.http_get(&path);
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        };
        let last = |v: &serde_json::Value| {
            let values = v["data"]["result"][0]["values"].as_array().unwrap().clone();
            values.last().unwrap()[1].clone()
        };
        let v = query(r#"sum(count_over_time({app=~"a.*"} |= "connection reset" [3h]))"#);
        assert_eq!(last(&v), "2000", "{round}: {v}");
        let v = query(
            r#"sum by (app) (count_over_time({app="a1"} != "cache miss" |~ "reset|timeout" [3h]))"#,
        );
        assert_eq!(last(&v), "3500", "{round}: {v}");
        let v = query(r#"{app="a0"} |= "connection reset" | logfmt | status="203""#);
        let lines: usize = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["values"].as_array().unwrap().len())
            .sum();
        assert_eq!(lines, 200, "{round}: {v}");
        if round == "blocks" {
            server.flush();
            let (status, body) = server.http_post("/compactor/run");
            assert_eq!(status, 200, "{body}");
            // Hours 0 and 1 merge; hour 2 (the head's block) stays.
            assert_eq!(latest_manifest_blocks(&data, "logs").len(), 2, "{body}");
        }
    }
}
