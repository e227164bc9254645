//! Downsampling in the real server: three days of old counters and gauges
//! (one counter resets) → `POST /compactor/run` writes a 5m block and a 1h
//! block beside the raw one → range queries at step 1h read the 5m block,
//! at step 6h the 1h block, and answer like `max_source_resolution=raw`
//! within the error downsampling allows; a bad `max_source_resolution` is a
//! 400; a crash after writing a downsampled block leaves a store that the
//! next run finishes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{Launch, Server, metric_value, tempdir};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Samples every 30 s, 10 s past the half minute: never on a window edge,
/// so windows hold exactly the samples a left-open range selects.
const SCRAPE_MS: i64 = 30_000;
const OFFSET_MS: i64 = 10_000;
const DAYS: i64 = 3;

const CONFIG: &str = r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[query]
memory_limit = "512MiB"
[compactor]
compaction_interval = "1h"
deletion_delay = "2s"
downsample = true
downsample_5m_after = "40h"
downsample_1h_after = "10d"
"#;

/// Midnight 14 days ago: old enough for both resolutions.
fn data_start() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now.rem_euclid(DAY_MS) - 14 * DAY_MS
}

/// Counter increments per scrape, varying a little.
fn counter_series() -> Vec<(&'static str, &'static str, f64, Option<i64>)> {
    // (job, instance, base increment, reset after this many scrapes)
    vec![
        ("a", "1", 3.0, None),
        ("a", "2", 5.0, Some(4321)),
        ("b", "1", 1.0, None),
    ]
}

fn gauge_value(job_phase: f64, t: i64) -> f64 {
    50.0 + 10.0 * (2.0 * std::f64::consts::PI * (t as f64 / DAY_MS as f64) + job_phase).sin()
}

async fn load(server: &Server, start: i64) -> usize {
    let client = server.client().await;
    let scrapes = (DAYS * DAY_MS / SCRAPE_MS) as usize;
    let mut rows: Vec<String> = Vec::new();
    let mut total = 0;
    for (job, instance, inc, reset) in counter_series() {
        let mut value = 0.0;
        for k in 0..scrapes {
            if reset == Some(k as i64) {
                value = 0.0;
            }
            value += inc + (k % 7) as f64 * 0.25;
            let t = start + k as i64 * SCRAPE_MS + OFFSET_MS;
            rows.push(format!(
                "(to_timestamp_millis({t}), 'ds_requests_total', map(['job', 'instance'], ['{job}', '{instance}']), {value})"
            ));
        }
    }
    for (job, phase) in [("a", 0.0), ("b", 1.0), ("c", 2.0)] {
        for k in 0..scrapes {
            let t = start + k as i64 * SCRAPE_MS + OFFSET_MS;
            rows.push(format!(
                "(to_timestamp_millis({t}), 'ds_temperature', map(['job'], ['{job}']), {})",
                gauge_value(phase, t)
            ));
        }
    }
    for chunk in rows.chunks(5000) {
        let sql = format!(
            "INSERT INTO samples (timestamp, metric, labels, value) VALUES {}",
            chunk.join(", ")
        );
        total += client.execute(sql.as_str(), &[]).await.unwrap() as usize;
    }
    server.flush();
    total
}

/// `POST /compactor/run`, after the run under way (the one the server
/// starts with) if there is one: that answers 409 until it ends.
fn run_compactor(server: &Server) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, body) = server.http_post("/compactor/run");
        if status == 409 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        assert_eq!(status, 200, "{body}");
        return serde_json::from_str(&body).unwrap();
    }
}

/// `/api/v1/query_range` → labels → (time, value).
fn query_range(
    server: &Server,
    query: &str,
    (start, end, step): (i64, i64, i64),
    resolution: &str,
) -> BTreeMap<String, Vec<(f64, f64)>> {
    let path = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step={}s&max_source_resolution={resolution}",
        urlencode(query),
        start / 1000,
        end / 1000,
        step / 1000
    );
    let (status, body) = server.http_get(&path);
    assert_eq!(status, 200, "{path}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().unwrap() {
        let points = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_f64().unwrap(),
                    p[1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect();
        out.insert(s["metric"].to_string(), points);
    }
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every series and point of `got` within `tolerance(raw value)` of `raw`.
fn assert_close(
    what: &str,
    raw: &BTreeMap<String, Vec<(f64, f64)>>,
    got: &BTreeMap<String, Vec<(f64, f64)>>,
    tolerance: impl Fn(f64) -> f64,
) {
    assert!(!raw.is_empty(), "{what}: no raw answer");
    assert_eq!(
        raw.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "{what}: series"
    );
    for (labels, points) in raw {
        let other = &got[labels];
        assert_eq!(points.len(), other.len(), "{what} {labels}: points");
        for ((t, a), (t2, b)) in points.iter().zip(other) {
            assert_eq!(t, t2, "{what} {labels}");
            assert!(
                (a - b).abs() <= tolerance(*a),
                "{what} {labels} at {t}: raw {a}, downsampled {b}"
            );
        }
    }
}

/// How far a downsampled answer may be from the raw one, given the raw value.
type Tolerance = Box<dyn Fn(f64) -> f64>;

fn blocks_read(server: &Server, resolution: &str) -> f64 {
    metric_value(
        server.http,
        &format!("o11ydb_samples_blocks_read_total{{resolution=\"{resolution}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn old_blocks_are_downsampled_and_range_queries_read_them() {
    let dir = tempdir();
    let server = Server::start_with(&dir.path().join("data"), CONFIG);
    let start = data_start();
    let rows = load(&server, start).await;
    let scrapes = (DAYS * DAY_MS / SCRAPE_MS) as u64;
    assert_eq!(rows as u64, 6 * scrapes);

    let report = run_compactor(&server);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    let jobs = report["downsampled"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{report}");
    // 5m: every series has a row per 5-minute window of the three days.
    assert_eq!(jobs[0]["resolution"], "5m");
    assert_eq!(jobs[0]["rows_in"], 6 * scrapes);
    assert_eq!(jobs[0]["rows_out"], 6 * (DAYS * 288) as u64);
    assert_eq!(jobs[0]["series"], 6);
    // 1h from the 5m block.
    assert_eq!(jobs[1]["resolution"], "1h");
    assert_eq!(jobs[1]["rows_in"], 6 * (DAYS * 288) as u64);
    assert_eq!(jobs[1]["rows_out"], 6 * (DAYS * 24) as u64);
    assert!(jobs[1]["bytes_out"].as_u64() < jobs[0]["bytes_out"].as_u64());
    assert!(jobs[0]["bytes_out"].as_u64() < jobs[0]["bytes_in"].as_u64());
    // Idempotent: nothing more to write.
    let again = run_compactor(&server);
    assert!(
        again["downsampled"].as_array().unwrap().is_empty(),
        "{again}"
    );
    let (_, metrics) = server.http_get("/metrics");
    assert!(
        metrics.contains("o11ydb_compactor_downsampled_blocks_total{resolution=\"5m\"} 1"),
        "{metrics}"
    );
    // The raw samples are all still there.
    let client = server.client().await;
    let row = client
        .query_one("SELECT count(*) FROM samples", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0) as u64, 6 * scrapes);

    let (q_start, q_end) = (start + 6 * HOUR_MS, start + DAYS * DAY_MS - 6 * HOUR_MS);
    // Relative error a rate over 55 minutes of 5m points (extrapolated to
    // the hour) may have against one over the raw hour; 1h data: one point
    // per hour, so rate over [2h] at 6h steps.
    let rate_tolerance = |v: f64| 0.03 * v.abs() + 1e-9;
    let exact = |v: f64| 1e-9 * v.abs().max(1.0);
    // A gauge read without a function is the window average: the sine
    // (amplitude 10, period 1 day) moves at most 10·2π·r/1d over a window r.
    let gauge_tolerance =
        |r: i64| move |_: f64| 10.0 * 2.0 * std::f64::consts::PI * r as f64 / DAY_MS as f64;
    for (step, resolution, range) in [(HOUR_MS, "5m", "1h"), (6 * HOUR_MS, "1h", "2h")] {
        let grid = (q_start, q_end, step);
        let before = blocks_read(&server, resolution);
        let queries: Vec<(String, Tolerance)> = vec![
            (
                format!("rate(ds_requests_total[{range}])"),
                Box::new(rate_tolerance),
            ),
            (
                format!("increase(ds_requests_total[{range}])"),
                Box::new(rate_tolerance),
            ),
            (
                format!("sum by (job) (rate(ds_requests_total[{range}]))"),
                Box::new(rate_tolerance),
            ),
            (
                format!("avg_over_time(ds_temperature[{range}])"),
                Box::new(exact),
            ),
            (
                format!("max_over_time(ds_temperature[{range}])"),
                Box::new(exact),
            ),
            (
                format!("min_over_time(ds_temperature[{range}])"),
                Box::new(exact),
            ),
            (
                format!("count_over_time(ds_temperature[{range}])"),
                Box::new(exact),
            ),
            (
                format!("sum_over_time(ds_temperature[{range}])"),
                Box::new(exact),
            ),
            (
                "ds_temperature".to_string(),
                Box::new(gauge_tolerance(if resolution == "5m" {
                    5 * MINUTE_MS
                } else {
                    HOUR_MS
                })),
            ),
        ];
        for (query, tolerance) in &queries {
            let raw = query_range(&server, query, grid, "raw");
            let auto = query_range(&server, query, grid, "auto");
            assert_close(&format!("{query} step {step}ms"), &raw, &auto, tolerance);
            let explicit = query_range(&server, query, grid, resolution);
            assert_eq!(auto, explicit, "{query}: auto picks {resolution}");
        }
        let read = blocks_read(&server, resolution) - before;
        assert!(
            read >= queries.len() as f64,
            "{resolution} blocks read {read} times for {} queries",
            queries.len()
        );
    }
    // Raw answers read no downsampled block; a step of 24m is too fine for 5m data.
    let before = blocks_read(&server, "5m") + blocks_read(&server, "1h");
    query_range(
        &server,
        "rate(ds_requests_total[1h])",
        (q_start, q_end, 24 * MINUTE_MS),
        "auto",
    );
    query_range(
        &server,
        "rate(ds_requests_total[1h])",
        (q_start, q_end, 6 * HOUR_MS),
        "raw",
    );
    assert_eq!(
        blocks_read(&server, "5m") + blocks_read(&server, "1h"),
        before
    );

    // A bad max_source_resolution is a 400 naming it.
    let (status, body) = server.http_get(&format!(
        "/api/v1/query_range?query=ds_temperature&start={}&end={}&step=3600s&max_source_resolution=fast",
        q_start / 1000,
        q_end / 1000
    ));
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorType"], "bad_data", "{body}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("max_source_resolution")
            && v["error"].as_str().unwrap().contains("fast"),
        "{body}"
    );
    // The promql() table function takes it too.
    let rows = client
        .query(
            &format!(
                "SELECT count(*) FROM promql('max_over_time(ds_temperature[1h])', {}, {}, '1h', '5m')",
                q_start / 1000,
                q_end / 1000
            ),
            &[],
        )
        .await
        .unwrap();
    assert!(rows[0].get::<_, i64>(0) > 0);
    assert_eq!(server.http_get("/ready").0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_after_a_downsampled_block_is_written() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut server = Server::launch(Launch {
        data_dir: &data,
        config: CONFIG,
        prefix: vec![
            "env".into(),
            "O11YDB_FAILPOINT=compactor:after_downsample_output".into(),
        ],
        args: vec![],
    })
    .expect("server starts");
    let start = data_start();
    load(&server, start).await;
    let (status, _) = server.http_post("/compactor/run");
    assert_eq!(status, 0, "the failpoint aborts the server mid-request");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.is_running() {
        assert!(std::time::Instant::now() < deadline, "server still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.stderr().contains("failpoint"), "{}", server.stderr());
    drop(server);
    // The crash left the raw block and the 5m block no manifest lists.
    let before_restart = parquet_files(&data);
    assert!(before_restart.len() >= 2, "{before_restart:?}");

    // Restarted: the unlisted block is ignored, a run (the one at startup or
    // the next) writes both resolutions, and the orphan goes once the
    // deletion delay has passed.
    let server = Server::start_with(&data, CONFIG);
    let grid = (start + 6 * HOUR_MS, start + 2 * DAY_MS, HOUR_MS);
    let raw_before = query_range(&server, "max_over_time(ds_temperature[1h])", grid, "raw");
    let first = run_compactor(&server);
    assert!(first["failed"].as_array().unwrap().is_empty(), "{first}");
    std::thread::sleep(Duration::from_secs(3));
    let second = run_compactor(&server);
    assert!(second["failed"].as_array().unwrap().is_empty(), "{second}");
    assert!(
        second["downsampled"].as_array().unwrap().is_empty(),
        "{second}"
    );
    for resolution in ["5m", "1h"] {
        assert_eq!(
            metric_value(
                server.http,
                &format!(
                    "o11ydb_compactor_downsampled_blocks_total{{resolution=\"{resolution}\"}}"
                )
            ),
            1.0,
            "one {resolution} block written after the restart"
        );
    }
    let five = query_range(&server, "max_over_time(ds_temperature[1h])", grid, "5m");
    assert_eq!(raw_before, five);
    let storage: serde_json::Value =
        serde_json::from_str(&server.http_get("/debug/storage").1).unwrap();
    assert_eq!(
        storage["tenants"]["anonymous"]["samples"]["blocks"], 3,
        "{storage}"
    );
    // The block written before the crash is deleted: the files on disk are
    // the three listed blocks.
    let after = parquet_files(&data);
    assert_eq!(after.len(), 3, "{after:?}");
    let orphan: Vec<_> = before_restart
        .iter()
        .filter(|f| !after.contains(f))
        .collect();
    assert_eq!(orphan.len(), 1, "{before_restart:?} → {after:?}");
}

/// Block ids with a Parquet file in the samples blocks directory.
fn parquet_files(data: &std::path::Path) -> Vec<String> {
    let dir = data.join("blocks/tenants/anonymous/samples/blocks");
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    ids.sort();
    ids
}
