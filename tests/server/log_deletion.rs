//! Loki's log deletion API on the real binary: a request hides the lines it
//! matches from the Loki API and SQL at once (other streams and tenants
//! untouched), cancelling brings them back, requests survive a restart, and
//! once past `delete_request_cancel_period` a compactor run removes the
//! lines from the blocks themselves (read back from the Parquet files).
//! Bad requests get 400, a tenant with deletion disabled 403.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{Server, http_exchange, tempdir};

const SECOND: i64 = 1_000_000_000;

fn config(cancel_period: &str) -> String {
    format!(
        r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[query]
memory_limit = "512MiB"
[compactor]
compaction_interval = "1h"
deletion_delay = "0s"
delete_request_cancel_period = "{cancel_period}"
[overrides.locked]
deletion_mode = "disabled"
"#
    )
}

fn enc(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

fn request(server: &Server, method: &str, path: &str, tenant: Option<&str>) -> (u16, String) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = tenant {
        headers.push(("X-Scope-OrgID", t));
    }
    let a = http_exchange(server.http, method, path, &headers, b"");
    (a.status, a.body)
}

fn push(server: &Server, tenant: Option<&str>, streams: Value) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = tenant {
        headers.push(("X-Scope-OrgID", t));
    }
    let body = json!({ "streams": streams }).to_string();
    let a = http_exchange(
        server.http,
        "POST",
        "/loki/api/v1/push",
        &headers,
        body.as_bytes(),
    );
    assert_eq!(a.status, 204, "push: {}", a.body);
}

/// Every line a Loki range query returns for `query`, sorted.
fn loki_lines(server: &Server, tenant: Option<&str>, query: &str, base_ns: i64) -> Vec<String> {
    let path = format!(
        "/loki/api/v1/query_range?query={}&start={}&end={}&limit=1000",
        enc(query),
        base_ns - 60 * SECOND,
        base_ns + 60 * SECOND
    );
    let (status, body) = request(server, "GET", &path, tenant);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut lines: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|e| e[1].as_str().unwrap().to_string())
        .collect();
    lines.sort();
    lines
}

/// `count_over_time` of every stream of the default tenant, summed.
fn loki_count(server: &Server, base_ns: i64) -> f64 {
    let path = format!(
        "/loki/api/v1/query?query={}&time={}",
        enc(r#"sum(count_over_time({app=~".+"}[5m]))"#),
        base_ns + 60 * SECOND
    );
    let (status, body) = request(server, "GET", &path, None);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn sql_lines(server: &Server) -> Vec<String> {
    let client = server.client().await;
    let rows = client
        .query("SELECT line FROM logs ORDER BY line", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

fn list(server: &Server, tenant: Option<&str>) -> Vec<Value> {
    let (status, body) = request(server, "GET", "/loki/api/v1/delete", tenant);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn delete(server: &Server, tenant: Option<&str>, query: &str, start: i64, end: i64) {
    let path = format!(
        "/loki/api/v1/delete?query={}&start={}&end={}",
        enc(query),
        start,
        end
    );
    let (status, body) = request(server, "POST", &path, tenant);
    assert_eq!(status, 204, "delete {query}: {body}");
}

/// The `line` column of every block file of a tenant's logs.
fn stored_lines(data_dir: &Path, tenant: &str) -> Vec<String> {
    use arrow::array::AsArray;
    let dir = data_dir.join(format!("blocks/tenants/{tenant}/logs/blocks"));
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = batch.column_by_name("line").unwrap();
            let column = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8).unwrap();
            lines.extend(
                column
                    .as_string::<i32>()
                    .iter()
                    .map(|l| l.unwrap().to_string()),
            );
        }
    }
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_lines_leave_queries_at_once_and_blocks_after_the_cancel_period() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut server = Server::start_with(&data, &config("1h"));
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let base = now - 5 * 60 * SECOND;
    let at = |i: i64| (base + i * SECOND).to_string();
    // Two streams of the default tenant, one part flushed into a block,
    // one still in the head; the same lines for tenant `other`.
    push(
        &server,
        None,
        json!([
            {"stream": {"app": "api"}, "values": [[at(1), "user=alice password=s1"], [at(2), "user=bob ok"]]},
            {"stream": {"app": "web"}, "values": [[at(3), "web password=s3"]]},
        ]),
    );
    push(
        &server,
        Some("other"),
        json!([{"stream": {"app": "api"}, "values": [[at(1), "user=alice password=s1"]]}]),
    );
    server.flush();
    push(
        &server,
        None,
        json!([
            {"stream": {"app": "api"}, "values": [[at(4), "user=carol password=s2"]]},
            {"stream": {"app": "web"}, "values": [[at(5), "web ok"]]},
        ]),
    );
    let all = [
        "user=alice password=s1",
        "user=bob ok",
        "user=carol password=s2",
        "web ok",
        "web password=s3",
    ];
    assert_eq!(sql_lines(&server).await, all);
    assert_eq!(loki_count(&server, base), 5.0);

    // Delete the password lines of {app="api"} (and only up to second 4).
    delete(
        &server,
        None,
        r#"{app="api"} |= "password""#,
        base / SECOND,
        base + 4 * SECOND,
    );
    let kept = ["user=bob ok", "web ok", "web password=s3"];
    assert_eq!(loki_lines(&server, None, r#"{app=~".+"}"#, base), kept);
    assert_eq!(sql_lines(&server).await, kept);
    assert_eq!(loki_count(&server, base), 3.0);
    // The other tenant is untouched.
    assert_eq!(
        loki_lines(&server, Some("other"), r#"{app="api"}"#, base),
        ["user=alice password=s1"]
    );
    let requests = list(&server, None);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["query"], r#"{app="api"} |= "password""#);
    assert_eq!(requests[0]["status"], "received");
    assert_eq!(requests[0]["start_time"], base / SECOND);
    assert!(list(&server, Some("other")).is_empty());

    // A second request, cancelled: its lines come back.
    delete(
        &server,
        None,
        r#"{app="web"}"#,
        base / SECOND,
        now / SECOND + 60,
    );
    assert_eq!(sql_lines(&server).await, ["user=bob ok"]);
    let web = list(&server, None)
        .into_iter()
        .find(|r| r["query"] == r#"{app="web"}"#)
        .unwrap();
    let id = web["request_id"].as_str().unwrap();
    let (status, body) = request(
        &server,
        "DELETE",
        &format!("/loki/api/v1/delete?request_id={id}"),
        None,
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(sql_lines(&server).await, kept);
    let (status, body) = request(
        &server,
        "DELETE",
        "/loki/api/v1/delete?request_id=nosuchid",
        None,
    );
    assert_eq!(status, 404, "{body}");

    // Requests survive a restart; with a short cancel period the compactor
    // removes the lines from the blocks (the head part once flushed).
    server.stop();
    let server = Server::start_with(&data, &config("1s"));
    assert_eq!(sql_lines(&server).await, kept);
    assert_eq!(list(&server, None).len(), 1);
    server.flush();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before = stored_lines(&data, "anonymous");
    assert!(
        before.contains(&"user=carol password=s2".to_string()),
        "{before:?}"
    );
    let (status, body) = server.http_post("/compactor/run");
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["rows_deleted"], 2, "{report}");
    assert_eq!(report["delete_requests_processed"], 1, "{report}");
    assert_eq!(stored_lines(&data, "anonymous"), kept);
    assert_eq!(
        stored_lines(&data, "other"),
        ["user=alice password=s1"],
        "the other tenant's blocks are untouched"
    );
    let storage: Value = serde_json::from_str(&server.http_get("/debug/storage").1).unwrap();
    assert_eq!(storage["tenants"]["anonymous"]["logs"]["block_rows"], 3);
    let requests = list(&server, None);
    assert_eq!(requests[0]["status"], "processed", "{requests:?}");
    assert_eq!(sql_lines(&server).await, kept);
    // A processed request can no longer be cancelled.
    let id = requests[0]["request_id"].as_str().unwrap();
    let (status, body) = request(
        &server,
        "DELETE",
        &format!("/loki/api/v1/delete?request_id={id}"),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not allowed"), "{body}");
}

#[test]
fn bad_delete_requests_are_refused_clearly() {
    let dir = tempdir();
    let server = Server::start_with(&dir.path().join("data"), &config("1h"));
    let post = |query: &str, rest: &str, tenant: Option<&str>| {
        request(
            &server,
            "POST",
            &format!("/loki/api/v1/delete?query={}{rest}", enc(query)),
            tenant,
        )
    };
    let cases = [
        (r#"{app="api"} | json"#, "&start=1", "not a parser"),
        (
            r#"count_over_time({app="api"}[1m])"#,
            "&start=1",
            "metric query",
        ),
        ("app", "&start=1", "invalid query"),
        (r#"{app="api"}"#, "", "start time not set"),
        (r#"{app="api"}"#, "&start=yesterday", "invalid start time"),
        (
            r#"{app="api"}"#,
            "&start=1700000100&end=1700000000",
            "can't be greater than end time",
        ),
        ("", "&start=1", "query not set"),
    ];
    for (query, rest, expected) in cases {
        let (status, body) = post(query, rest, None);
        assert_eq!(status, 400, "{query} {rest}: {body}");
        assert!(body.contains(expected), "{query} {rest}: {body}");
    }
    let (status, body) = post(r#"{app="api"}"#, "&start=1", Some("locked"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("deletion is not available"), "{body}");
    let (status, _) = request(&server, "GET", "/loki/api/v1/delete", Some("locked"));
    assert_eq!(status, 403);
    let (status, body) = request(&server, "DELETE", "/loki/api/v1/delete", None);
    assert_eq!(status, 400, "{body}");
    assert!(list(&server, None).is_empty(), "nothing was stored");
}
