//! `max_fetched_series_per_query` on the real binary: a PromQL query that
//! selects more series than the tenant's limit fails with 422 `execution`
//! over HTTP and SQLSTATE 54000 over pgwire, naming the limit and its
//! value; narrower queries and other tenants still answer.

use serde_json::Value;

use crate::common::{Server, http_exchange, sqlstate, tempdir};

const CONFIG: &str = r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[query]
memory_limit = "512MiB"
[overrides.anonymous]
max_fetched_series_per_query = 2
"#;

fn query(server: &Server, promql: &str, tenant: Option<&str>) -> (u16, Value) {
    let q: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let mut headers = vec![];
    if let Some(t) = tenant {
        headers.push(("X-Scope-OrgID", t));
    }
    let a = http_exchange(
        server.http,
        "GET",
        &format!("/api/v1/query?query={q}"),
        &headers,
        b"",
    );
    (a.status, serde_json::from_str(&a.body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_selecting_too_many_series_fail_naming_the_limit() {
    let dir = tempdir();
    let server = Server::start_with(&dir.path().join("data"), CONFIG);
    let client = server.client().await;
    client
        .execute(
            "INSERT INTO samples (timestamp, metric, labels, value) VALUES \
             (now(), 'up', map(['job'], ['a']), 1), \
             (now(), 'up', map(['job'], ['b']), 1), \
             (now(), 'up', map(['job'], ['c']), 1)",
            &[],
        )
        .await
        .unwrap();

    let (status, body) = query(&server, "up", None);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution", "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("max_fetched_series_per_query") && error.contains("limit: 2 series"),
        "{error}"
    );
    // Two selectors of two series each are three distinct series.
    let (status, body) = query(&server, r#"up{job=~"a|b"} + up{job=~"b|c"}"#, None);
    assert_eq!(status, 422, "{body}");
    let (status, body) = query(&server, r#"up{job=~"a|b"}"#, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 2);

    let err = client
        .query("SELECT * FROM promql('up', now())", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{err:?}");
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(
        message.contains("max_fetched_series_per_query") && message.contains('2'),
        "{message}"
    );
    let rows = client
        .query("SELECT * FROM promql('up{job=\"a\"}', now())", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}
