//! `o11ydb import`: the real binary streams a Parquet file written here to
//! a running server over Flight SQL; the rows are queried back per tenant,
//! and a file whose schema the server refuses stops the import with the
//! server's message, the file and the batch.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::TimestampNanosecondArray;
use arrow::array::{Array, ArrayRef, MapBuilder, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;

use crate::common::{BIN, Server, http_exchange, tempdir};

const ROWS: usize = 50_000;

/// `rows` log lines in batches of 10 000, labelled `source=import`; with
/// `wrong`, the text column is called `message` instead of `line`.
fn write_logs_parquet(path: &Path, rows: usize, wrong: bool) {
    let text_column = if wrong { "message" } else { "line" };
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new(
            "labels",
            MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
                .finish()
                .data_type()
                .clone(),
            false,
        ),
        Field::new(text_column, DataType::Utf8, false),
    ]));
    let start_ns = (chrono::Utc::now().timestamp_millis() - 30 * 60 * 1000) * 1_000_000;
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), None).unwrap();
    for chunk in (0..rows).collect::<Vec<_>>().chunks(10_000) {
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for _ in chunk {
            labels.keys().append_value("source");
            labels.values().append_value("import");
            labels.append(true).unwrap();
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampNanosecondArray::from_iter_values(
                    chunk.iter().map(|&i| start_ns + i as i64 * 1_000_000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(labels.finish()),
            Arc::new(StringArray::from_iter_values(
                chunk.iter().map(|i| format!("imported line {i}")),
            )),
        ];
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
}

fn import(server: &Server, args: &[&str], files: &[&Path]) -> std::process::Output {
    Command::new(BIN)
        .args(["import", "--server", &server.flight.to_string()])
        .args(args)
        .args(files)
        .output()
        .expect("run o11ydb import")
}

/// A LogQL query for `tenant` (instant, or over the last hour with
/// `range`); the `result` array.
fn logql_at(server: &Server, query: &str, tenant: &str, range: bool) -> Vec<serde_json::Value> {
    let q: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let path = if range {
        let end = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        format!(
            "/loki/api/v1/query_range?query={q}&start={}&end={end}",
            end - 3_600_000_000_000
        )
    } else {
        format!("/loki/api/v1/query?query={q}")
    };
    let a = http_exchange(server.http, "GET", &path, &[("X-Scope-OrgID", tenant)], b"");
    assert_eq!(a.status, 200, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    v["data"]["result"].as_array().unwrap().clone()
}

fn logql(server: &Server, query: &str, tenant: &str) -> Vec<serde_json::Value> {
    logql_at(server, query, tenant, false)
}

#[test]
fn import_streams_a_parquet_file_and_stops_at_a_refused_batch() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let good = dir.path().join("lines.parquet");
    write_logs_parquet(&good, ROWS, false);

    let out = import(
        &server,
        &[
            "--table",
            "logs",
            "--tenant",
            "team-a",
            "--batch-rows",
            "5000",
        ],
        &[&good],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: imported {ROWS} rows (", good.display()))
            && stderr.contains("in 10 batches into logs"),
        "{stderr}"
    );

    // Every row is there, for the tenant named and no other.
    let count = logql(
        &server,
        "sum(count_over_time({source=\"import\"}[1h]))",
        "team-a",
    );
    assert_eq!(count.len(), 1, "{count:?}");
    assert_eq!(count[0]["value"][1], ROWS.to_string());
    let line = logql_at(
        &server,
        "{source=\"import\"} |= \"imported line 12345\"",
        "team-a",
        true,
    );
    assert_eq!(line.len(), 1, "{line:?}");
    assert_eq!(line[0]["values"][0][1], "imported line 12345");
    assert!(
        logql(
            &server,
            "sum(count_over_time({source=\"import\"}[1h]))",
            "anonymous"
        )
        .is_empty()
    );

    // A file whose schema the server refuses: its message, the file and the
    // batch, a failing exit code, nothing stored.
    let wrong = dir.path().join("wrong.parquet");
    write_logs_parquet(&wrong, 100, true);
    let out = import(
        &server,
        &["--table", "logs", "--tenant", "team-b"],
        &[&wrong, &good],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: batch 1 (rows 1 to 100) was refused by the server: ",
            wrong.display()
        )) && stderr.contains("no column \"message\" in logs"),
        "{stderr}"
    );
    assert!(
        logql(
            &server,
            "sum(count_over_time({source=\"import\"}[1h]))",
            "team-b"
        )
        .is_empty()
    );

    // Not a Parquet file, and a server that is not there: named.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = import(&server, &["--table", "logs"], &[&text]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: not a readable Parquet file", text.display())),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args([
            "import",
            "--table",
            "logs",
            "--server",
            &format!("127.0.0.1:{}", crate::common::free_port()),
        ])
        .arg(&good)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("cannot connect to the Flight SQL server at 127.0.0.1:"),
        "{stderr}"
    );
}

/// Against a server with `[[users]]`: `--user` with the password from
/// O11YDB_PASSWORD imports into the user's tenant; without credentials or
/// with a wrong password nothing is imported and the error says why.
#[test]
fn import_with_a_user_and_password() {
    let dir = tempdir();
    let config = r#"
[[users]]
name = "loader"
password = "loader-secret"
tenants = ["team-load"]
"#;
    let server = Server::start_with(&dir.path().join("data"), config);
    let file = dir.path().join("lines.parquet");
    write_logs_parquet(&file, 1000, false);
    let run = |user: Option<&str>, password: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .args(["import", "--server", &server.flight.to_string()])
            .args(["--table", "logs"])
            .env_remove("O11YDB_PASSWORD");
        if let Some(user) = user {
            command.args(["--user", user]);
        }
        if let Some(password) = password {
            command.env("O11YDB_PASSWORD", password);
        }
        let out = command.arg(&file).output().expect("run o11ydb import");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let count = || {
        logql(
            &server,
            "sum(count_over_time({source=\"import\"}[1h]))",
            "team-load",
        )
    };

    let (ok, stderr) = run(Some("loader"), Some("wrong"));
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("the handshake as user \"loader\" failed"),
        "{stderr}"
    );
    let (ok, stderr) = run(Some("loader"), None);
    assert!(!ok && stderr.contains("O11YDB_PASSWORD"), "{stderr}");
    let (ok, stderr) = run(None, None);
    assert!(!ok, "{stderr}");
    assert!(count().is_empty());

    let (ok, stderr) = run(Some("loader"), Some("loader-secret"));
    assert!(ok, "{stderr}");
    let c = count();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["value"][1], "1000");
}
