//! SQL over the Postgres wire protocol with real clients: psql and
//! tokio-postgres (simple and extended protocol), head and block reads,
//! types as Postgres shows them, and errors with SQLSTATE and position.

use chrono::{DateTime, TimeZone, Utc};
use tokio_postgres::error::ErrorPosition;

use crate::common::{Server, sqlstate, tempdir};

const INSERT_SPANS: &str = "INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, service, \
     start_time, end_time, status_code, attributes, resource_attributes) VALUES \
     ('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', NULL, 'GET /cart', 'SPAN_KIND_SERVER', 'frontend', \
      '2026-01-01T00:00:00Z', '2026-01-01T00:00:00.250Z', 'ok', \
      map(['http.request.method', 'http.route'], ['GET', '/cart']), map(['service.name'], ['frontend'])), \
     ('4bf92f3577b34da6a3ce929d0e0e4736', '1111111111111111', '00f067aa0ba902b7', 'SELECT cart', 'client', 'cart', \
      '2026-01-01T00:00:00.010Z', '2026-01-01T00:00:00.030Z', 'error', \
      map(['db.system'], ['postgresql']), map(['service.name'], ['cart'])), \
     ('5bf92f3577b34da6a3ce929d0e0e4737', '2222222222222222', NULL, 'GET /', 'server', 'frontend', \
      '2026-01-01T00:01:00Z', '2026-01-01T00:01:00.100Z', 'unset', map([], []), map([], []))";

#[test]
fn psql_lists_and_describes_the_tables() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let out = server.psql("\\dt");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in ["logs", "samples", "spans"] {
        assert!(text.contains(table), "\\dt lacks {table}:\n{text}");
    }
    let out = server.psql("\\d spans");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for column in [
        "trace_id",
        "parent_span_id",
        "duration_ns",
        "resource_attributes",
        "events",
        "links",
    ] {
        assert!(text.contains(column), "\\d spans lacks {column}:\n{text}");
    }
    assert!(text.contains("timestamp with time zone"), "{text}");
    // SET/SHOW that drivers send are accepted.
    let out = server.psql("SET application_name = 'x'; SHOW timezone; SELECT version()");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PostgreSQL 16.6 (o11ydb"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_read_back_the_same_from_head_and_blocks() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let client = server.client().await;
    let n = client.execute(INSERT_SPANS, &[]).await.unwrap();
    assert_eq!(n, 3);
    client
        .batch_execute(
            "INSERT INTO samples (timestamp, metric, labels, value) VALUES \
             ('2026-01-01T00:00:00Z', 'http_requests_total', map(['job', 'code'], ['api', '200']), 10), \
             ('2026-01-01T00:00:15Z', 'http_requests_total', map(['code', 'job'], ['200', 'api']), 12.5); \
             INSERT INTO logs (timestamp, labels, line, severity, trace_id) VALUES \
             ('2026-01-01T00:00:00.001Z', map(['service_name'], ['cart']), 'level=error msg=\"db timeout\"', 'error', \
              '4bf92f3577b34da6a3ce929d0e0e4736')",
        )
        .await
        .unwrap();

    let query = "SELECT service, name, kind, status_code, start_time, duration_ns, attributes \
                 FROM spans ORDER BY start_time";
    let read = |rows: Vec<tokio_postgres::Row>| {
        rows.iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, DateTime<Utc>>(4),
                    r.get::<_, i64>(5),
                    r.get::<_, serde_json::Value>(6),
                )
            })
            .collect::<Vec<_>>()
    };
    let from_head = read(client.query(query, &[]).await.unwrap());
    assert_eq!(from_head.len(), 3);
    assert_eq!(from_head[0].0, "frontend");
    assert_eq!(from_head[0].2, "server", "kinds are canonicalised");
    assert_eq!(
        from_head[0].4,
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    );
    assert_eq!(from_head[0].5, 250_000_000, "duration is derived");
    assert_eq!(
        from_head[0].6,
        serde_json::json!({"http.request.method": "GET", "http.route": "/cart"})
    );

    server.flush();
    let (_, status) = server.http_get("/debug/storage");
    assert!(status.contains("\"blocks\":1"), "{status}");
    let storage: serde_json::Value = serde_json::from_str(&status).unwrap();
    let spans = &storage["tenants"]["anonymous"]["spans"];
    assert!(
        spans["block_bytes"].as_u64().unwrap() > 0 && spans["index_bytes"].as_u64().unwrap() > 0,
        "Parquet and bloom index bytes are reported: {status}"
    );
    let from_blocks = read(client.query(query, &[]).await.unwrap());
    assert_eq!(
        from_head, from_blocks,
        "blocks answer exactly like the head"
    );

    let rows = client
        .query(
            "SELECT service, count(*) FROM spans GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let counts: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(counts, vec![("cart".into(), 1), ("frontend".into(), 2)]);

    // Same labels in another order are the same series.
    let rows = client
        .query(
            "SELECT count(DISTINCT series_id), sum(value), max(labels['job']) FROM samples",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    assert_eq!(rows[0].get::<_, f64>(1), 22.5);
    assert_eq!(rows[0].get::<_, String>(2), "api");

    // Shipped views.
    let rows = client
        .query(
            "SELECT root_service, root_name, span_count, error_count, duration_ns FROM traces ORDER BY start_time",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, String>(0), "frontend");
    assert_eq!(rows[0].get::<_, String>(1), "GET /cart");
    assert_eq!(rows[0].get::<_, i64>(2), 2);
    assert_eq!(rows[0].get::<_, i64>(3), 1);
    assert_eq!(rows[0].get::<_, i64>(4), 250_000_000);
    let rows = client
        .query("SELECT metric, labels, samples FROM series", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].get::<_, serde_json::Value>(1),
        serde_json::json!({"code": "200", "job": "api"})
    );
    assert_eq!(rows[0].get::<_, i64>(2), 2);

    // Logs join spans on trace_id.
    let rows = client
        .query(
            "SELECT l.line, s.name FROM logs l JOIN spans s ON l.trace_id = s.trace_id \
             WHERE s.parent_span_id IS NULL",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(1), "GET /cart");
}

#[tokio::test(flavor = "multi_thread")]
async fn extended_protocol_binds_parameters() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let client = server.client().await;
    client.execute(INSERT_SPANS, &[]).await.unwrap();
    let stmt = client
        .prepare("SELECT count(*) FROM spans WHERE service = $1 AND start_time >= $2")
        .await
        .unwrap();
    let since = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 30).unwrap();
    let rows = client.query(&stmt, &[&"frontend", &since]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    let rows = client.query(&stmt, &[&"cart", &since]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 0);
    let rows = client
        .query(
            "SELECT name FROM spans WHERE duration_ns > $1 ORDER BY name",
            &[&50_000_000i64],
        )
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, vec!["GET /", "GET /cart"]);
    // Inserting with parameters goes through the same write path.
    let n = client
        .execute(
            "INSERT INTO logs (timestamp, labels, line) VALUES ($1, map(['app'], ['x']), $2)",
            &[&since, &"hello"],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let rows = client.query("SELECT line FROM logs", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "hello");
}

fn position(e: &tokio_postgres::Error) -> Option<u32> {
    match e.as_db_error()?.position()? {
        ErrorPosition::Original(p) => Some(*p),
        ErrorPosition::Internal { .. } => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_sql_and_bad_values_get_sqlstates_and_the_server_keeps_serving() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let client = server.client().await;

    let e = client
        .simple_query("SELECT (1 + FROM spans")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42601");
    assert_eq!(position(&e), Some(18), "{e:?}"); // `FROM` parses as a column name here

    let e = client.simple_query("SELECT * FROM nope").await.unwrap_err();
    assert_eq!(sqlstate(&e), "42P01");
    assert_eq!(position(&e), Some(15));

    let e = client
        .simple_query("SELECT nope FROM spans")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42703");
    assert_eq!(position(&e), Some(8));

    let e = client
        .simple_query("INSERT INTO samples (timestamp, metric, value) VALUES (now(), 'x', 'abc')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22P02", "{e:?}");

    let e = client
        .simple_query("INSERT INTO samples (timestamp, value) VALUES (now(), 1)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "23502", "{e:?}");
    assert!(
        e.as_db_error().unwrap().message().contains("metric"),
        "{e:?}"
    );

    let e = client
        .simple_query(
            "INSERT INTO spans (trace_id, span_id, name, start_time, end_time, kind) \
             VALUES ('a', 'b', 'n', now(), now(), 'sideways')",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "22P02");
    assert!(
        e.as_db_error().unwrap().message().contains("sideways"),
        "{e:?}"
    );

    let e = client
        .simple_query("CREATE TABLE t (a INT)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "0A000");

    // Nothing was written by the failed statements, and the connection still works.
    let rows = client
        .query(
            "SELECT (SELECT count(*) FROM samples) + (SELECT count(*) FROM spans)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 0);

    // psql shows the caret under the error.
    let out = server.psql("SELECT * FROM nope");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("42P01") && err.contains('^'), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn promql_table_function_answers_rows_that_join_with_other_tables() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let client = server.client().await;
    // A counter growing by 60 per minute on two services, one sample per 15 s.
    let mut values = Vec::new();
    for (service, rate) in [("cart", 1), ("checkout", 2)] {
        for i in 0..=40 {
            values.push(format!(
                "(TIMESTAMP '2026-01-01T00:00:00Z' + INTERVAL '{} seconds', 'http_requests_total', \
                 map(['service'], ['{service}']), {})",
                i * 15,
                i * 15 * rate
            ));
        }
    }
    client
        .execute(
            &format!(
                "INSERT INTO samples (timestamp, metric, labels, value) VALUES {}",
                values.join(", ")
            ),
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO logs (timestamp, labels, line) VALUES \
             ('2026-01-01T00:09:00Z', map(['service'], ['checkout']), 'payment declined')",
            &[],
        )
        .await
        .unwrap();

    // Instant form: at a time, as Unix seconds or RFC 3339.
    let rows = client
        .query(
            "SELECT labels['service'], value FROM promql('sum by (service) (rate(http_requests_total[5m]))', \
             '2026-01-01T00:10:00Z') ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "cart");
    assert!((got[0].1 - 1.0).abs() < 1e-9, "{got:?}");
    assert!((got[1].1 - 2.0).abs() < 1e-9, "{got:?}");

    // Range form: one row per step and series; the metric name is kept by selectors.
    let rows = client
        .query(
            "SELECT count(*), min(timestamp), max(metric) FROM promql('http_requests_total{service=\"cart\"}', \
             TIMESTAMP '2026-01-01T00:05:00Z', TIMESTAMP '2026-01-01T00:10:00Z', INTERVAL '1 minute')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 6);
    assert_eq!(
        rows[0].get::<_, DateTime<Utc>>(1),
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 0).unwrap()
    );
    assert_eq!(rows[0].get::<_, String>(2), "http_requests_total");

    // Joins with logs on a label.
    let rows = client
        .query(
            "SELECT l.line, p.value FROM promql('rate(http_requests_total[5m]) > 1.5', '2026-01-01T00:10:00Z') p \
             JOIN logs l ON l.labels['service'] = p.labels['service']",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "payment declined");

    // EXPLAIN names the PromQL node; a bad query is a clear error and the server keeps serving.
    let plan = client
        .simple_query("EXPLAIN SELECT * FROM promql('up', 0)")
        .await
        .unwrap();
    let text = format!("{plan:?}");
    assert!(text.contains("PromqlExec: query=\\\"up\\\""), "{text}");
    let e = client
        .simple_query("SELECT * FROM promql('sum(rate(x[5m])')")
        .await
        .unwrap_err();
    assert!(
        format!("{e:?}").contains("unclosed left parenthesis"),
        "{e:?}"
    );
    let e = client
        .simple_query("SELECT * FROM promql('up', 0, 10, INTERVAL '0 seconds')")
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("step must be positive"), "{e:?}");
    client.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn logql_table_function_answers_log_and_metric_rows() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let client = server.client().await;
    let mut values = Vec::new();
    for i in 0..12 {
        let level = if i % 4 == 0 { "error" } else { "info" };
        values.push(format!(
            "(TIMESTAMP '2026-01-01T00:00:00Z' + INTERVAL '{} seconds', map(['app'], ['shop']), \
             'level={level} took={}ms')",
            i * 10,
            i + 1
        ));
    }
    client
        .execute(
            &format!(
                "INSERT INTO logs (timestamp, labels, line) VALUES {}",
                values.join(", ")
            ),
            &[],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO samples (timestamp, metric, labels, value) VALUES \
             ('2026-01-01T00:02:00Z', 'up', map(['app'], ['shop']), 1)",
            &[],
        )
        .await
        .unwrap();

    // Log query: newest first, limit, parsed labels in the map.
    let rows = client
        .query(
            "SELECT timestamp, labels['level'], line FROM logql('{app=\"shop\"} | logfmt | level=\"error\"', \
             TIMESTAMP '2026-01-01T00:00:00Z', TIMESTAMP '2026-01-01T00:05:00Z', 2)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].get::<_, DateTime<Utc>>(0),
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 20).unwrap()
    );
    assert_eq!(rows[0].get::<_, String>(1), "error");
    assert_eq!(rows[0].get::<_, String>(2), "level=error took=9ms");

    // Metric query: one row per step; joins with samples on a label.
    let rows = client
        .query(
            "SELECT l.timestamp, l.value, s.value FROM logql('sum by (app) (count_over_time({app=\"shop\"}[1m]))', \
             '2026-01-01T00:01:00Z', '2026-01-01T00:02:00Z', INTERVAL '1 minute') l \
             JOIN samples s ON s.labels['app'] = l.labels['app'] ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<f64> = rows.iter().map(|r| r.get::<_, f64>(1)).collect();
    // (0:00, 0:01] holds lines at 10..60 s; (0:01, 0:02] those at 70..110 s.
    assert_eq!(got, vec![6.0, 5.0]);

    let plan = client
        .simple_query("EXPLAIN SELECT * FROM logql('{app=\"shop\"}', 0, 60)")
        .await
        .unwrap();
    assert!(format!("{plan:?}").contains("LogqlExec"), "{plan:?}");
    let e = client
        .simple_query("SELECT * FROM logql('{app=\"shop\"} |= ', 0, 60)")
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("parse error"), "{e:?}");
    client.simple_query("SELECT 1").await.unwrap();
}
