//! Downsampling in the real server: three days of old counters and gauges
//! (one counter resets) → `POST /compactor/run` writes a 5m block and a 1h
//! block beside the raw one → range queries at step 1h read the 5m block,
//! at step 6h the 1h block, and answer like `max_source_resolution=raw`
//! within the error downsampling allows; a bad `max_source_resolution` is a
//! 400; a crash after writing a downsampled block leaves a store that the
//! next run finishes.

use std::collections::BTreeMap;
use std::time::Duration;

use o11ydb::model::histogram::{FloatHistogram, Span};

use crate::common::{Launch, Server, metric_value, tempdir, urlencode};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Samples every 30 s, 10 s past the half minute: never on a window edge,
/// so windows hold exactly the samples a left-open range selects.
const SCRAPE_MS: i64 = 30_000;
const OFFSET_MS: i64 = 10_000;
const DAYS: i64 = 3;
/// Native histogram samples of `ds_latency`: one per 5 minutes.
const HISTOGRAMS: u64 = (DAYS * 288) as u64;

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
    // A native histogram counter: not downsampled, read raw beside the
    // downsampled floats.
    let histograms: Vec<String> = (0..HISTOGRAMS as i64)
        .map(|k| {
            let t = start + k * 5 * MINUTE_MS + OFFSET_MS;
            let h = FloatHistogram {
                count: (3 * k) as f64,
                sum: (6 * k) as f64,
                positive_spans: vec![Span {
                    offset: 1,
                    length: 1,
                }],
                positive_buckets: vec![(3 * k) as f64],
                ..Default::default()
            };
            let mut bytes = Vec::new();
            h.encode(&mut bytes);
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "(to_timestamp_millis({t}), 'ds_latency', map(['job'], ['a']), CAST('NaN' AS DOUBLE), decode('{hex}', 'hex'))"
            )
        })
        .collect();
    for chunk in histograms.chunks(500) {
        let sql = format!(
            "INSERT INTO samples (timestamp, metric, labels, value, histogram) VALUES {}",
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
    server.wait_for_startup_compaction();
    let start = data_start();
    let rows = load(&server, start).await;
    let scrapes = (DAYS * DAY_MS / SCRAPE_MS) as u64;
    assert_eq!(rows as u64, 6 * scrapes + HISTOGRAMS);

    let report = run_compactor(&server);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    let jobs = report["downsampled"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{report}");
    // 5m: every series has a row per 5-minute window of the three days.
    assert_eq!(jobs[0]["resolution"], "5m");
    assert_eq!(jobs[0]["rows_in"], 6 * scrapes + HISTOGRAMS);
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
    assert_eq!(row.get::<_, i64>(0) as u64, 6 * scrapes + HISTOGRAMS);

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
                format!("histogram_count(rate(ds_latency[{range}]))"),
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

/// One 5m and one 1h window over several raw blocks: hour 5 of a day of
/// samples is flushed in three small blocks (cut inside 5-minute windows),
/// with a stale marker and a gap before the first cut, a counter reset
/// inside the second block and another at the first sample of the third.
/// `block_ranges = ["1m"]` keeps the raw blocks apart (no block fits a
/// minute), so the three are downsampled together (they share windows)
/// and every window still gets one row per series.
const MULTI_BLOCK_CONFIG: &str = r#"
[ingester]
flush_max_age = "1h"
flush_check_interval = "1h"
[query]
memory_limit = "512MiB"
[limits]
reject_old_samples = false
[compactor]
compaction_interval = "1h"
deletion_delay = "2s"
block_ranges = ["1m"]
downsample = true
downsample_5m_after = "40h"
downsample_1h_after = "10d"
"#;

/// The raw samples of the multi-block test: per metric, (time, value) in
/// order, the stale marker included.
struct MultiBlockData {
    start: i64,
    /// Flush boundaries: block `i` holds `cuts[i] <= t < cuts[i + 1]`.
    cuts: Vec<i64>,
    /// What is downsampled together: blocks sharing a window (the three
    /// of hour 5), as `[from, to)`.
    clusters: Vec<i64>,
    series: Vec<(&'static str, Vec<(i64, f64)>)>,
}

fn multi_block_data() -> MultiBlockData {
    let start = data_start();
    let at = |h: i64, m: i64, s: i64| start + h * HOUR_MS + m * MINUTE_MS + s * 1000;
    let stale_at = at(5, 10, 25);
    let gap_end = at(5, 12, 10);
    let resets = [at(5, 25, 10), at(5, 38, 40)];
    let stale = f64::from_bits(o11ydb::model::STALE_NAN_BITS);
    let (mut counter, mut gauge) = (Vec::new(), Vec::new());
    let mut value = 0.0;
    for k in 0..(DAY_MS / SCRAPE_MS) {
        let t = start + k * SCRAPE_MS + OFFSET_MS;
        if t > stale_at && t < gap_end {
            continue;
        }
        if resets.contains(&t) {
            value = 0.0;
        }
        value += 2.0 + (k % 5) as f64 * 0.5;
        counter.push((t, value));
        gauge.push((t, gauge_value(0.5, t)));
        if t < stale_at && t + SCRAPE_MS > stale_at {
            counter.push((stale_at, stale));
            gauge.push((stale_at, stale));
        }
    }
    MultiBlockData {
        start,
        cuts: vec![
            start,
            at(5, 0, 0),
            at(5, 18, 0),
            at(5, 38, 20),
            at(6, 0, 0),
            start + DAY_MS,
        ],
        clusters: vec![start, at(5, 0, 0), at(6, 0, 0), start + DAY_MS],
        series: vec![("mb_requests_total", counter), ("mb_temperature", gauge)],
    }
}

/// A downsampled row as the test computes it from raw samples.
#[derive(Debug, Clone, Copy)]
struct ExpectedRow {
    t: i64,
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    counter: f64,
    counter_last: f64,
}

/// Per metric, the rows blocks of `resolution` should hold, computed from
/// the raw samples: per cluster of raw blocks downsampled together and
/// window, skipping stale markers; the counter counted from the cluster's
/// first raw value, a lower value counting whole (a reset).
fn expected_rows(
    data: &MultiBlockData,
    resolution: i64,
) -> BTreeMap<&'static str, Vec<ExpectedRow>> {
    let mut out = BTreeMap::new();
    for (metric, points) in &data.series {
        let mut rows: Vec<ExpectedRow> = Vec::new();
        for block in data.clusters.windows(2) {
            let (mut counter, mut last_raw, mut window) = (0.0, 0.0, None);
            let mut first = true;
            for &(t, v) in points
                .iter()
                .filter(|(t, _)| *t >= block[0] && *t < block[1])
            {
                if v.to_bits() == o11ydb::model::STALE_NAN_BITS {
                    continue;
                }
                if first {
                    counter = v;
                    first = false;
                } else if v < last_raw {
                    counter += v;
                } else {
                    counter += v - last_raw;
                }
                last_raw = v;
                if window != Some(t.div_euclid(resolution)) {
                    window = Some(t.div_euclid(resolution));
                    rows.push(ExpectedRow {
                        t,
                        count: 0.0,
                        sum: 0.0,
                        min: f64::INFINITY,
                        max: f64::NEG_INFINITY,
                        counter,
                        counter_last: v,
                    });
                }
                let row = rows.last_mut().expect("pushed above");
                row.t = t;
                row.count += 1.0;
                row.sum += v;
                row.min = row.min.min(v);
                row.max = row.max.max(v);
                row.counter = counter;
                row.counter_last = v;
            }
        }
        rows.sort_by_key(|r| r.t);
        out.insert(*metric, rows);
    }
    out
}

/// The rows of every listed block of `resolution` (ms), per metric, in
/// time order: read from the Parquet files the newest manifest lists.
fn downsampled_rows(
    data_dir: &std::path::Path,
    resolution: i64,
) -> BTreeMap<String, Vec<ExpectedRow>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, TimestampMillisecondType};
    let samples = data_dir.join("blocks/tenants/anonymous/samples");
    let newest = std::fs::read_dir(samples.join("manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .expect("a manifest");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(newest).unwrap()).unwrap();
    let mut out: BTreeMap<String, Vec<ExpectedRow>> = BTreeMap::new();
    for block in manifest["blocks"].as_array().unwrap() {
        if block["resolution_ms"].as_i64().unwrap_or(0) != resolution {
            continue;
        }
        let path = samples.join(format!("blocks/{}.parquet", block["id"].as_str().unwrap()));
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let metric = arrow::compute::cast(
                batch.column_by_name("metric").unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let metric = metric.as_string::<i32>();
            let times = batch
                .column_by_name("timestamp")
                .unwrap()
                .as_primitive::<TimestampMillisecondType>();
            let f = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap()
                    .as_primitive::<Float64Type>()
                    .clone()
            };
            let (count, sum, min, max, counter, counter_last) = (
                f("count"),
                f("sum"),
                f("min"),
                f("max"),
                f("counter"),
                f("counter_last"),
            );
            for row in 0..batch.num_rows() {
                assert!(!metric.is_null(row));
                out.entry(metric.value(row).to_string())
                    .or_default()
                    .push(ExpectedRow {
                        t: times.value(row),
                        count: count.value(row),
                        sum: sum.value(row),
                        min: min.value(row),
                        max: max.value(row),
                        counter: counter.value(row),
                        counter_last: counter_last.value(row),
                    });
            }
        }
    }
    for rows in out.values_mut() {
        rows.sort_by_key(|r| r.t);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn windows_spread_over_several_raw_blocks_downsample_like_raw() {
    let dir = tempdir();
    let data_dir = dir.path().join("data");
    let server = Server::start_with(&data_dir, MULTI_BLOCK_CONFIG);
    server.wait_for_startup_compaction();
    let data = multi_block_data();
    let labels = |metric: &str| {
        vec![
            ("__name__".to_string(), metric.to_string()),
            ("job".to_string(), "multi".to_string()),
        ]
    };
    for block in data.cuts.windows(2) {
        let series: Vec<_> = data
            .series
            .iter()
            .map(|(metric, points)| {
                (
                    labels(metric),
                    points
                        .iter()
                        .copied()
                        .filter(|(t, _)| *t >= block[0] && *t < block[1])
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let body = o11ydb::ingest::remote_write::encode_write_request(&series);
        let answer =
            o11ydb::bench::prom_http::remote_write(server.http, &body).expect("remote write");
        assert_eq!(answer.status, 204, "remote write: {}", answer.body);
        server.flush();
    }
    let storage: serde_json::Value =
        serde_json::from_str(&server.http_get("/debug/storage").1).unwrap();
    assert_eq!(
        storage["tenants"]["anonymous"]["samples"]["blocks"], 5,
        "one raw block per flush: {storage}"
    );

    let report = run_compactor(&server);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    let jobs = report["downsampled"].as_array().unwrap();
    let per_resolution = |r: &str| jobs.iter().filter(|j| j["resolution"] == r).count();
    assert_eq!(
        (per_resolution("5m"), per_resolution("1h")),
        (3, 3),
        "the three blocks of hour 5 downsampled together: {report}"
    );
    let hour_5 = jobs
        .iter()
        .find(|j| j["resolution"] == "5m" && j["inputs"].as_array().unwrap().len() == 3);
    assert!(hour_5.is_some(), "{report}");

    // The aggregates: per block and window, what the raw samples give.
    for (resolution, name) in [(5 * MINUTE_MS, "5m"), (HOUR_MS, "1h")] {
        let want = expected_rows(&data, resolution);
        let got = downsampled_rows(&data_dir, resolution);
        assert_eq!(
            got.keys().map(String::as_str).collect::<Vec<_>>(),
            want.keys().copied().collect::<Vec<_>>(),
            "{name}: metrics"
        );
        for (metric, rows) in &want {
            let have = &got[*metric];
            assert_eq!(have.len(), rows.len(), "{name} {metric}: rows");
            for (g, w) in have.iter().zip(rows) {
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
                assert!(
                    g.t == w.t
                        && g.count == w.count
                        && close(g.sum, w.sum)
                        && g.min == w.min
                        && g.max == w.max
                        && close(g.counter, w.counter)
                        && g.counter_last == w.counter_last,
                    "{name} {metric}: downsampled {g:?}, from raw {w:?}"
                );
            }
        }
        // One row per series and window, the cut ones included.
        let rows = &got["mb_temperature"];
        let mut windows: Vec<i64> = rows.iter().map(|r| r.t.div_euclid(resolution)).collect();
        windows.dedup();
        assert_eq!(windows.len(), rows.len(), "{name}: a window has two rows");
    }

    // PromQL through the downsampled path answers like raw.
    let start = data.start;
    let rate_tolerance = |v: f64| 0.03 * v.abs() + 1e-9;
    let exact = |v: f64| 1e-9 * v.abs().max(1.0);
    for (grid, resolution, range) in [
        (
            (start + 2 * HOUR_MS, start + 22 * HOUR_MS, HOUR_MS),
            "5m",
            "1h",
        ),
        (
            (start + HOUR_MS, start + 23 * HOUR_MS, 6 * HOUR_MS),
            "1h",
            "2h",
        ),
    ] {
        let before = blocks_read(&server, resolution);
        let queries: Vec<(String, Tolerance)> = vec![
            (
                format!("rate(mb_requests_total[{range}])"),
                Box::new(rate_tolerance),
            ),
            (
                format!("increase(mb_requests_total[{range}])"),
                Box::new(rate_tolerance),
            ),
            (
                format!("count_over_time(mb_temperature[{range}])"),
                Box::new(exact),
            ),
            (
                format!("sum_over_time(mb_requests_total[{range}])"),
                Box::new(exact),
            ),
            (
                format!("max_over_time(mb_requests_total[{range}])"),
                Box::new(exact),
            ),
            (
                format!("min_over_time(mb_temperature[{range}])"),
                Box::new(exact),
            ),
        ];
        for (query, tolerance) in &queries {
            let raw = query_range(&server, query, grid, "raw");
            let auto = query_range(&server, query, grid, "auto");
            assert_close(
                &format!("{query} step {}ms", grid.2),
                &raw,
                &auto,
                tolerance,
            );
        }
        // avg_over_time over aggregates averages the windows' averages
        // (Thanos' sum / count per window): exact where every window has
        // as many samples, off by at most the gauge's swing over the range
        // where the gap after the stale marker leaves one window short.
        let range_ms = if range == "1h" { HOUR_MS } else { 2 * HOUR_MS };
        let query = format!("avg_over_time(mb_temperature[{range}])");
        let raw = query_range(&server, &query, grid, "raw");
        let auto = query_range(&server, &query, grid, "auto");
        assert_eq!(
            raw.keys().collect::<Vec<_>>(),
            auto.keys().collect::<Vec<_>>()
        );
        let (gap_from, gap_to) = (
            start + 5 * HOUR_MS + 10 * MINUTE_MS,
            start + 5 * HOUR_MS + 15 * MINUTE_MS,
        );
        let swing = 10.0 * 2.0 * std::f64::consts::PI * range_ms as f64 / DAY_MS as f64;
        let mut inexact = 0;
        for (labels, points) in &raw {
            assert_eq!(points.len(), auto[labels].len(), "{query}");
            for ((t, a), (t2, b)) in points.iter().zip(&auto[labels]) {
                assert_eq!(t, t2, "{query}");
                let t_ms = (*t * 1000.0) as i64;
                let short_window_in_range = t_ms - range_ms < gap_to && t_ms >= gap_from;
                let tolerance = if short_window_in_range {
                    inexact += 1;
                    swing
                } else {
                    exact(*a)
                };
                assert!(
                    (a - b).abs() <= tolerance,
                    "{query} at {t}: raw {a}, downsampled {b}"
                );
            }
        }
        assert!(
            inexact == 1,
            "{query}: {inexact} points see the short window"
        );
        let read = blocks_read(&server, resolution) - before;
        assert!(
            read > queries.len() as f64,
            "{resolution} blocks read {read} times"
        );
    }
}

/// Samples backfilled into an already downsampled range are not in its
/// aggregates (the compactor does not aggregate that range again): range
/// queries read raw samples there — from the head, then from the raw block
/// they are flushed to — and still read the rest from the downsampled block.
#[tokio::test(flavor = "multi_thread")]
async fn samples_backfilled_after_downsampling_are_read_raw() {
    let dir = tempdir();
    // No results cache: the same queries run again once the data moved.
    let config = format!("{CONFIG}\n[query_frontend]\ncache_results = false\n");
    let server = Server::start_with(&dir.path().join("data"), &config);
    server.wait_for_startup_compaction();
    let start = data_start();
    load(&server, start).await;
    let report = run_compactor(&server);
    assert_eq!(
        report["downsampled"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    // A new series over the first day's hours 2 to 8, written afterwards.
    let client = server.client().await;
    let rows: Vec<String> = (0..6 * HOUR_MS / SCRAPE_MS)
        .map(|k| {
            let t = start + 2 * HOUR_MS + k * SCRAPE_MS + OFFSET_MS;
            format!("(to_timestamp_millis({t}), 'ds_backfilled', map(['job'], ['late']), 1)")
        })
        .collect();
    for chunk in rows.chunks(5000) {
        let sql = format!(
            "INSERT INTO samples (timestamp, metric, labels, value) VALUES {}",
            chunk.join(", ")
        );
        client.execute(sql.as_str(), &[]).await.unwrap();
    }
    let grid = (start + 3 * HOUR_MS, start + 2 * DAY_MS, HOUR_MS);
    for place in ["head", "raw block"] {
        if place == "raw block" {
            server.flush();
        }
        let got = query_range(&server, "count_over_time(ds_backfilled[1h])", grid, "auto");
        let raw = query_range(&server, "count_over_time(ds_backfilled[1h])", grid, "raw");
        assert_close(place, &raw, &got, |_| 1e-9);
        let points = &got["{\"job\":\"late\"}"];
        // The hours ending at 3h to 8h each hold 120 of them; none later.
        assert_eq!(points.len(), 6, "{place}: {points:?}");
        assert!(
            points.iter().all(|(_, v)| *v == 120.0),
            "{place}: {points:?}"
        );
        // The old series outside the backfilled hours still come from the 5m block.
        let before = blocks_read(&server, "5m");
        let got = query_range(&server, "sum(rate(ds_requests_total[1h]))", grid, "auto");
        let raw = query_range(&server, "sum(rate(ds_requests_total[1h]))", grid, "raw");
        assert_close(place, &raw, &got, |v| 0.03 * v.abs() + 1e-9);
        assert!(
            blocks_read(&server, "5m") > before,
            "{place}: 5m block not read"
        );
    }
}
