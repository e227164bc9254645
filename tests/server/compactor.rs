//! The compactor in the real server: `POST /compactor/run` merges flushed
//! blocks, drops duplicates and expired blocks, shows pending deletions on
//! `/debug/storage` and counts itself on `/metrics`; a crash (failpoint
//! abort) at each compactor step leaves a store that restarts with every
//! row once, and the next run finishes the work.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Launch, Server, tempdir};

const HOUR_MS: i64 = 3_600_000;

fn config(deletion_delay: &str) -> String {
    config_with(deletion_delay, "")
}

fn config_with(deletion_delay: &str, limits: &str) -> String {
    format!(
        r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[query]
memory_limit = "512MiB"
[limits]
retention_period = "3h"
{limits}
[compactor]
compaction_interval = "1h"
deletion_delay = "{deletion_delay}"
"#
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Inserts one row per (timestamp, value) of series `job` and flushes them into one block.
async fn insert_block(server: &Server, job: &str, rows: &[(i64, f64)]) {
    let client = server.client().await;
    let values: Vec<String> = rows
        .iter()
        .map(|(ts, v)| {
            format!("(to_timestamp_millis({ts}), 'compacted', map(['job'], ['{job}']), {v})")
        })
        .collect();
    let sql = format!(
        "INSERT INTO samples (timestamp, metric, labels, value) VALUES {}",
        values.join(", ")
    );
    let n = client.execute(sql.as_str(), &[]).await.unwrap();
    assert_eq!(n, rows.len() as u64);
    server.flush();
}

async fn count_and_sum(server: &Server) -> (i64, f64) {
    let client = server.client().await;
    let row = client
        .query_one(
            "SELECT count(*), coalesce(sum(value), 0) FROM samples WHERE metric = 'compacted'",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("count and sum: {e:?}"));
    (row.get(0), row.get(1))
}

fn storage_json(server: &Server) -> serde_json::Value {
    let (status, body) = server.http_get("/debug/storage");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn run_compactor(server: &Server) -> serde_json::Value {
    let (status, body) = server.http_post("/compactor/run");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn blocks_dir(data: &Path) -> PathBuf {
    data.join("blocks/tenants/anonymous/samples/blocks")
}

/// Block ids with a file of this extension in the samples blocks directory.
fn block_files(data: &Path, ext: &str) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(blocks_dir(data))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    ids.sort();
    ids
}

/// Start of the current 2h window: recent rows all fall in it.
fn window_start() -> i64 {
    let now = now_ms();
    now - now.rem_euclid(2 * HOUR_MS)
}

#[tokio::test(flavor = "multi_thread")]
async fn compactor_run_merges_deduplicates_and_reports() {
    let dir = tempdir();
    let data = dir.path().join("data");
    // Out-of-order samples are accepted, so a retried push lands twice.
    let config = config_with("10m", "out_of_order_time_window = \"2h\"");
    let server = Server::start_with(&data, &config);
    server.wait_for_startup_compaction();
    let w = window_start();
    let first: Vec<(i64, f64)> = (0..20).map(|i| (w + i * 1000, i as f64)).collect();
    insert_block(&server, "a", &first).await;
    insert_block(&server, "a", &[(w + 50_000, 100.0)]).await;
    // The same samples again (a client retrying a push): kept once.
    insert_block(&server, "a", &first).await;
    insert_block(&server, "b", &[(w + 1000, 7.0)]).await;
    // Past the 3h retention: the whole block is dropped.
    insert_block(&server, "old", &[(now_ms() - 5 * HOUR_MS, 1000.0)]).await;
    assert_eq!(count_and_sum(&server).await, (43, 1487.0));

    let report = run_compactor(&server);
    assert_eq!(report["blocks_in"], 4, "{report}");
    assert_eq!(report["blocks_out"], 1, "{report}");
    assert_eq!(report["rows_deduplicated"], 20, "{report}");
    assert_eq!(report["samples_conflicting"], 0, "{report}");
    assert_eq!(report["blocks_expired"], 1, "{report}");
    assert_eq!(report["jobs"][0]["kind"], "merge", "{report}");
    assert_eq!(count_and_sum(&server).await, (22, 297.0));

    let storage = storage_json(&server);
    let samples = &storage["tenants"]["anonymous"]["samples"];
    assert_eq!(samples["blocks"], 1, "{storage}");
    assert_eq!(samples["block_rows"], 22, "{storage}");
    let pending = samples["pending_deletions"].as_array().unwrap();
    assert_eq!(
        pending.len(),
        5,
        "replaced and expired blocks wait for the delay: {storage}"
    );
    // Their files are still there for queries in flight.
    assert_eq!(block_files(&data, "parquet").len(), 6);

    let (status, metrics) = server.http_get("/metrics");
    assert_eq!(status, 200);
    for line in [
        "o11ydb_compactor_blocks_compacted_total 4",
        "o11ydb_compactor_blocks_written_total 1",
        "o11ydb_compactor_rows_deduplicated_total 20",
        "o11ydb_compactor_blocks_expired_total 1",
        "# TYPE o11ydb_compactor_last_successful_run_timestamp_seconds gauge",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let runs: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("o11ydb_compactor_runs_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(runs >= 1.0, "{metrics}");
    assert!(
        server.stderr().contains("compacted blocks"),
        "progress is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_block_is_named_and_nothing_is_lost() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &config("10m"));
    server.wait_for_startup_compaction();
    let w = window_start();
    insert_block(&server, "a", &[(w + 1000, 1.0)]).await;
    let bad = block_files(&data, "parquet")[0].clone();
    insert_block(&server, "a", &[(w + 2000, 2.0)]).await;
    std::fs::write(
        blocks_dir(&data).join(format!("{bad}.parquet")),
        b"not parquet",
    )
    .unwrap();
    let (status, body) = server.http_post("/compactor/run");
    assert_eq!(status, 500, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let failed = report["failed"].to_string();
    assert!(
        failed.contains(&bad) && failed.contains("unreadable"),
        "{failed}"
    );
    assert_eq!(report["blocks_out"], 0);
    // Both blocks stay listed, and the server keeps serving.
    let storage = storage_json(&server);
    assert_eq!(
        storage["tenants"]["anonymous"]["samples"]["blocks"], 2,
        "{storage}"
    );
    assert_eq!(server.http_get("/ready").0, 200);
    let (_, metrics) = server.http_get("/metrics");
    assert!(
        metrics.contains("o11ydb_compactor_runs_failed_total 1"),
        "{metrics}"
    );
}

#[test]
fn bad_compactor_and_retention_config_is_refused_at_start() {
    let dir = tempdir();
    for (config, expected) in [
        (
            "[compactor]\nblock_ranges = [\"2h\", \"3h\"]\n",
            "block_ranges[1]",
        ),
        (
            "[[limits.retention_stream]]\nselector = '{app=}'\nperiod = \"1h\"\n",
            "retention_stream[0] selector",
        ),
    ] {
        let err = match Server::launch(Launch {
            data_dir: &dir.path().join("data"),
            config,
            prefix: vec![],
            args: vec![],
        }) {
            Ok(_) => panic!("started with {config}"),
            Err(stderr) => stderr,
        };
        assert!(err.contains(expected), "{expected} not in: {err}");
    }
}

/// Crashes the compactor at `step` and checks the store after a restart:
/// every row once, consistent files, and the next run completes the work.
async fn crash_at(step: &str) {
    let dir = tempdir();
    let data = dir.path().join("data");
    // Short, but queries racing the restarted server's first run still
    // find the blocks they planned with.
    let delay = Duration::from_secs(2);
    let config = config("2s");
    let mut server = Server::launch(Launch {
        data_dir: &data,
        config: &config,
        prefix: vec!["env".into(), format!("O11YDB_FAILPOINT=compactor:{step}")],
        args: vec![],
    })
    .expect("server starts");
    server.wait_for_startup_compaction();
    let w = window_start();
    for block in 0..3i64 {
        let rows: Vec<(i64, f64)> = (0..10)
            .map(|i| (w + block * 10_000 + i * 1000, (block * 10 + i) as f64))
            .collect();
        insert_block(&server, "a", &rows).await;
    }
    insert_block(&server, "old", &[(now_ms() - 5 * HOUR_MS, 1000.0)]).await;
    assert_eq!(count_and_sum(&server).await, (31, 1435.0));

    if step == "during_delete" {
        // Compact, then delete once the replaced blocks are due.
        run_compactor(&server);
        std::thread::sleep(delay);
    }
    let (status, body) = server.http_post("/compactor/run");
    assert_eq!(
        status, 0,
        "the failpoint aborts the server mid-request: {body}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.is_running() {
        assert!(std::time::Instant::now() < deadline, "server still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.stderr();
    assert!(
        log.contains(&format!("failpoint compactor:{step}: aborting")),
        "{log}"
    );
    drop(server);

    // Restarted: every row once (the expired block is gone in every case:
    // dropping it is the first step), every listed block readable.
    let server = Server::start_with(&data, &config);
    assert_eq!(
        count_and_sum(&server).await,
        (30, 435.0),
        "after a crash at {step}"
    );
    let report = run_compactor(&server);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    // Once the delay has passed, replaced blocks and orphans go.
    std::thread::sleep(delay);
    let report = run_compactor(&server);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(
        count_and_sum(&server).await,
        (30, 435.0),
        "after the next run"
    );
    let storage = storage_json(&server);
    let samples = &storage["tenants"]["anonymous"]["samples"];
    assert_eq!(samples["blocks"], 1, "{storage}");
    assert_eq!(
        samples["pending_deletions"].as_array().unwrap().len(),
        0,
        "{storage}"
    );
    // No file is left that no manifest lists.
    assert_eq!(block_files(&data, "parquet").len(), 1, "{storage}");
    assert_eq!(block_files(&data, "index"), block_files(&data, "parquet"));
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_merged_block_is_written() {
    crash_at("after_output").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_manifest_swap_is_published() {
    crash_at("after_publish").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_expired_blocks_are_dropped() {
    crash_at("after_expire").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_while_deleting_replaced_blocks() {
    crash_at("during_delete").await;
}

/// Each published merge pauses (a failpoint standing in for a slow object
/// store), so the run can be watched under way: `GET /compactor/status`,
/// the gauges and the log show groups done of total, and a second
/// `POST /compactor/run` is refused with 409 naming the running job.
#[tokio::test(flavor = "multi_thread")]
async fn compactor_status_shows_progress_and_a_second_run_is_refused() {
    let dir = tempdir();
    let data = dir.path().join("data");
    // Six blocks in one window, at most two merged at a time: three groups.
    let config = format!("{}max_blocks_per_compaction = 2\n", config("10m"));
    let server = Server::launch(Launch {
        data_dir: &data,
        config: &config,
        prefix: vec![
            "env".into(),
            "O11YDB_FAILPOINT=compactor:after_publish:sleep=1500ms".into(),
        ],
        args: vec![],
    })
    .expect("server starts");
    let w = window_start();
    for block in 0..6i64 {
        let rows: Vec<(i64, f64)> = (0..10)
            .map(|i| (w + block * 10_000 + i * 1000, 1.0))
            .collect();
        insert_block(&server, "a", &rows).await;
    }
    let status = || -> serde_json::Value {
        let (code, body) = server.http_get("/compactor/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    // The run at start (nothing to do) has finished.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status()["state"] != "idle" {
        assert!(std::time::Instant::now() < deadline, "{}", status());
        std::thread::sleep(Duration::from_millis(50));
    }

    let http = server.http;
    let run =
        std::thread::spawn(move || crate::common::http_request(http, "POST", "/compactor/run"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mid = loop {
        let s = status();
        let job = &s["running"];
        if s["state"] == "running" && job["groups_total"] == 3 && job["groups_done"] == 1 {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never seen under way: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let job = &mid["running"];
    assert_eq!(job["trigger"], "api", "{mid}");
    assert_eq!(job["current"], "anonymous/samples", "{mid}");
    assert_eq!(job["rows_read"], 20, "{mid}");
    assert_eq!(job["rows_written"], 20, "{mid}");
    assert!(job["bytes_read"].as_u64().unwrap() > 0, "{mid}");
    assert!(job["bytes_written"].as_u64().unwrap() > 0, "{mid}");
    assert!(job["elapsed_seconds"].as_f64().unwrap() > 0.0, "{mid}");
    let signals_total = job["signals_total"].as_u64().unwrap();
    assert!(signals_total >= 3, "{mid}");
    assert!(
        job["signals_done"].as_u64().unwrap() < signals_total,
        "{mid}"
    );
    let id = job["id"].as_u64().unwrap();
    let groups_done = crate::common::metric_value(http, "o11ydb_compactor_job_groups_done");
    let groups_total = crate::common::metric_value(http, "o11ydb_compactor_job_groups_total");
    assert_eq!(groups_total, 3.0);
    assert!(groups_done < 3.0, "{groups_done}");
    assert_eq!(
        crate::common::metric_value(http, "o11ydb_compactor_job_running"),
        1.0
    );

    // A second run while this one is under way: refused, naming it.
    let (code, body) = server.http_post("/compactor/run");
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains(&format!("compaction run {id} (started by api at "))
            && body.contains("under way"),
        "{body}"
    );

    let (code, body) = run.join().unwrap();
    assert_eq!(code, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["blocks_in"], 6, "{report}");
    assert_eq!(report["blocks_out"], 3, "{report}");
    let done = status();
    assert_eq!(done["state"], "idle", "{done}");
    assert!(done["running"].is_null(), "{done}");
    assert_eq!(done["last"]["id"], id, "{done}");
    assert_eq!(done["last"]["trigger"], "api", "{done}");
    assert_eq!(done["last"]["report"]["blocks_in"], 6, "{done}");
    assert_eq!(
        crate::common::metric_value(http, "o11ydb_compactor_job_groups_done"),
        3.0
    );
    assert_eq!(
        crate::common::metric_value(http, "o11ydb_compactor_job_groups_total"),
        3.0
    );
    assert_eq!(
        crate::common::metric_value(http, "o11ydb_compactor_job_running"),
        0.0
    );
    let log = strip_ansi(&server.stderr());
    for done in 1..=3 {
        assert!(
            log.contains(&format!("groups_done={done} groups_total=3")),
            "progress of group {done} not logged:\n{log}"
        );
    }
    // Everything is readable after the run, once.
    assert_eq!(count_and_sum(&server).await, (60, 60.0));
}

/// `text` without ANSI colour sequences (the log colours field names).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
