//! A deterministic generator of realistic Prometheus-style samples for
//! benchmarks, shaped like what node_exporter and application metrics send
//! when scraped every `interval`.
//!
//! Targets of 32 series each are scraped together: all series of a target
//! share the scrape timestamp, which is on the interval grid for 90 % of
//! scrapes and 1–2 ms off for the rest (a late scrape). The series mix:
//! * 30 % integer counters (requests, bytes, packets, errors) at rates spread
//!   log-uniformly from 0.001 to 100 per second, Poisson increments, rare resets;
//! * 10 % float counters with 2 decimals (`*_cpu_seconds_total`);
//! * 20 % integer gauges (memory in 4 KiB pages, open fds, goroutines, queue
//!   depth) that change at 30 % of scrapes by a few units;
//! * 10 % decimal gauges (temperatures with 1 decimal, load averages with 2,
//!   ratios with 4) that change at half the scrapes;
//! * 30 % gauges that do not change within the data (`up`, `*_info`, limits,
//!   filesystem and memory sizes) — a large share of any real exporter.
//!
//! Rows come out scrape by scrape (all series at one time, then the next), as
//! an ingester receives them.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::Signal;
use crate::model::labels::{LabelSet, build_string_map, series_id};

#[derive(Debug, Clone, Copy)]
enum Kind {
    IntCounter { rate: f64 },
    FloatCounter { rate: f64 },
    IntGauge { step: f64, scale: f64 },
    DecimalGauge { decimals: i32, step: f64 },
    Constant,
}

#[derive(Debug, Clone)]
struct Series {
    metric: String,
    labels: LabelSet,
    kind: Kind,
    value: f64,
    id: i64,
}

/// Generates `series × scrapes` samples.
pub struct SampleGenerator {
    series: Vec<Series>,
    rng: StdRng,
    interval_ms: i64,
    next_scrape_ms: i64,
    scrapes_left: usize,
    /// Series index where the current scrape continues (batches may split a scrape).
    cursor: usize,
    scrape_time: Vec<i64>,
}

/// Series scraped together (one target).
const SERIES_PER_TARGET: usize = 32;

/// A Poisson-distributed count with mean `lambda` (normal approximation above 30).
fn poisson(rng: &mut StdRng, lambda: f64) -> f64 {
    if lambda > 30.0 {
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random_range(0.0..1.0);
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        return (lambda + z * lambda.sqrt()).round().max(0.0);
    }
    let limit = (-lambda).exp();
    let mut k = 0.0;
    let mut p = 1.0;
    loop {
        p *= rng.random_range(0.0..1.0f64);
        if p <= limit {
            return k;
        }
        k += 1.0;
    }
}

const JOBS: [&str; 8] = [
    "node",
    "api",
    "checkout",
    "cart",
    "payment",
    "inventory",
    "postgres",
    "kafka",
];

impl SampleGenerator {
    pub fn new(series: usize, scrapes: usize, interval_ms: i64, start_ms: i64, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(series);
        for i in 0..series {
            let job = JOBS[i % JOBS.len()];
            let target = i / SERIES_PER_TARGET;
            let instance = format!("10.0.{}.{}:9100", target / 256, target % 256);
            let share = (i * 7919) % 100;
            let (metric, kind, value) = match share {
                0..30 => {
                    let rate = 10f64.powf(rng.random_range(-3.0..2.0));
                    let name = [
                        "http_requests_total",
                        "node_network_receive_bytes_total",
                        "node_disk_reads_completed_total",
                        "http_request_errors_total",
                    ][i % 4];
                    (
                        name,
                        Kind::IntCounter { rate },
                        rng.random_range(0..1_000_000) as f64,
                    )
                }
                30..40 => {
                    let rate = rng.random_range(0.001..0.5);
                    (
                        "node_cpu_seconds_total",
                        Kind::FloatCounter { rate },
                        (rng.random_range(0..10_000_000) as f64) / 100.0,
                    )
                }
                40..60 => {
                    let (name, scale, step) = [
                        ("process_resident_memory_bytes", 4096.0, 50.0),
                        ("process_open_fds", 1.0, 3.0),
                        ("go_goroutines", 1.0, 5.0),
                        ("queue_depth", 1.0, 10.0),
                    ][i % 4];
                    let start = (rng.random_range(10..100_000) as f64) * scale;
                    (name, Kind::IntGauge { step, scale }, start)
                }
                60..70 => {
                    let (name, decimals, step) = [
                        ("node_hwmon_temp_celsius", 1, 0.3),
                        ("node_load1", 2, 0.05),
                        ("cache_hit_ratio", 4, 0.002),
                    ][i % 3];
                    let start = match decimals {
                        1 => rng.random_range(300..800) as f64 / 10.0,
                        2 => rng.random_range(0..400) as f64 / 100.0,
                        _ => rng.random_range(5000..9999) as f64 / 10_000.0,
                    };
                    (name, Kind::DecimalGauge { decimals, step }, start)
                }
                _ => {
                    let (name, v) = [
                        ("up", 1.0),
                        ("node_uname_info", 1.0),
                        ("process_max_fds", 1_048_576.0),
                        (
                            "node_filesystem_size_bytes",
                            (rng.random_range(1..4096) as f64) * 268_435_456.0,
                        ),
                        (
                            "node_memory_MemTotal_bytes",
                            (rng.random_range(1..512) as f64) * 1_073_741_824.0,
                        ),
                    ][i % 5];
                    (name, Kind::Constant, v)
                }
            };
            let labels = LabelSet::from_pairs([
                ("job", job.to_string()),
                ("instance", instance),
                ("series", format!("s{i}")),
            ]);
            let id = series_id(metric, labels.pairs());
            out.push(Series {
                metric: metric.to_string(),
                labels,
                kind,
                value,
                id,
            });
        }
        SampleGenerator {
            series: out,
            rng,
            interval_ms,
            next_scrape_ms: start_ms,
            scrapes_left: scrapes,
            cursor: 0,
            scrape_time: Vec::new(),
        }
    }

    fn advance(&mut self, i: usize) -> f64 {
        let secs = self.interval_ms as f64 / 1000.0;
        let rng = &mut self.rng;
        let s = &mut self.series[i];
        s.value = match s.kind {
            Kind::IntCounter { rate } => {
                if rng.random_bool(0.00005) {
                    0.0 // a restart resets the counter
                } else {
                    s.value + poisson(rng, rate * secs)
                }
            }
            Kind::FloatCounter { rate } => {
                let inc = (rate * secs * rng.random_range(0.5..1.5) * 100.0).round() / 100.0;
                ((s.value + inc) * 100.0).round() / 100.0
            }
            Kind::IntGauge { step, scale } => {
                if rng.random_bool(0.3) {
                    let delta = rng.random_range(-step..=step).round() * scale;
                    (s.value + delta).max(0.0)
                } else {
                    s.value
                }
            }
            Kind::DecimalGauge { decimals, step } => {
                if rng.random_bool(0.5) {
                    let p = 10f64.powi(decimals);
                    ((s.value + rng.random_range(-step..step)) * p).round() / p
                } else {
                    s.value
                }
            }
            Kind::Constant => s.value,
        };
        s.value
    }

    /// The next batch of up to `max_rows` samples, or `None` when done.
    pub fn next_batch(&mut self, max_rows: usize) -> Option<RecordBatch> {
        let mut ts = Vec::with_capacity(max_rows);
        let mut metric = Vec::with_capacity(max_rows);
        let mut labels = Vec::with_capacity(max_rows);
        let mut value = Vec::with_capacity(max_rows);
        let mut ids = Vec::with_capacity(max_rows);
        while ts.len() < max_rows && self.scrapes_left > 0 {
            if self.cursor == 0 {
                // All series of a target share its scrape time: on the grid,
                // except for the occasional late scrape.
                let targets = self.series.len().div_ceil(SERIES_PER_TARGET);
                let target_times: Vec<i64> = (0..targets)
                    .map(|_| {
                        let late = if self.rng.random_bool(0.1) {
                            self.rng.random_range(1..=2)
                        } else {
                            0
                        };
                        self.next_scrape_ms + late
                    })
                    .collect();
                self.scrape_time = (0..self.series.len())
                    .map(|i| target_times[i / SERIES_PER_TARGET])
                    .collect();
            }
            let i = self.cursor;
            let v = self.advance(i);
            let s = &self.series[i];
            ts.push(self.scrape_time[i]);
            metric.push(s.metric.clone());
            labels.push(s.labels.clone());
            value.push(v);
            ids.push(s.id);
            self.cursor += 1;
            if self.cursor == self.series.len() {
                self.cursor = 0;
                self.scrapes_left -= 1;
                self.next_scrape_ms += self.interval_ms;
            }
        }
        if ts.is_empty() {
            return None;
        }
        let map = build_string_map(
            labels
                .iter()
                .map(|l| l.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        );
        let rows = ids.len();
        Some(
            RecordBatch::try_new(
                Signal::Samples.schema(),
                vec![
                    Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
                    Arc::new(StringArray::from(metric)),
                    Arc::new(map),
                    Arc::new(Float64Array::from(value)),
                    Arc::new(Int64Array::from(ids)),
                    arrow::array::new_null_array(&arrow::datatypes::DataType::Binary, rows),
                ],
            )
            .expect("generator batches match the samples schema"),
        )
    }
}

/// One OpenMetrics sample line: `key value seconds.millis`.
pub fn write_openmetrics_sample(
    out: &mut impl Write,
    key: &str,
    t_ms: i64,
    value: f64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{key} {value} {}.{:03}",
        t_ms.div_euclid(1000),
        t_ms.rem_euclid(1000)
    )
}

/// Writes samples as OpenMetrics text (for `promtool tsdb create-blocks-from
/// openmetrics`): all samples of one series together, in time order.
pub fn write_openmetrics(
    mut generator: SampleGenerator,
    out: &mut impl Write,
) -> std::io::Result<u64> {
    use crate::model::labels::map_row;
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, TimestampMillisecondType};
    // OpenMetrics requires a metric family's samples to be contiguous, so
    // buffer per series; a benchmark's data fits in memory.
    struct SeriesPoints {
        family: String,
        key: String,
        points: Vec<(i64, f64)>,
    }
    let mut per_series: Vec<SeriesPoints> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut total = 0u64;
    while let Some(batch) = generator.next_batch(65_536) {
        let ts = batch.column(0).as_primitive::<TimestampMillisecondType>();
        let metric = batch.column(1).as_string::<i32>();
        let labels = batch.column(2).as_map();
        let value = batch.column(3).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            let rendered: Vec<String> = map_row(labels, row)
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let key = format!("{}{{{}}}", metric.value(row), rendered.join(","));
            let slot = *index.entry(key.clone()).or_insert_with(|| {
                per_series.push(SeriesPoints {
                    family: metric.value(row).to_string(),
                    key,
                    points: Vec::new(),
                });
                per_series.len() - 1
            });
            per_series[slot]
                .points
                .push((ts.value(row), value.value(row)));
            total += 1;
        }
    }
    per_series.sort_by(|a, b| a.family.cmp(&b.family));
    let mut last_family = String::new();
    for SeriesPoints {
        family,
        key,
        points,
    } in &per_series
    {
        if *family != last_family {
            let kind = if family.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let name = family.strip_suffix("_total").unwrap_or(family);
            writeln!(out, "# TYPE {name} {kind}")?;
            last_family = family.clone();
        }
        for &(t, v) in points {
            write_openmetrics_sample(out, key, t, v)?;
        }
    }
    writeln!(out, "# EOF")?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::normalize::normalize;

    #[test]
    fn generates_series_times_scrapes_rows_that_normalise() {
        let mut g = SampleGenerator::new(100, 5, 15_000, 1_700_000_000_000, 1);
        let mut rows = 0;
        while let Some(b) = g.next_batch(128) {
            let n = normalize(Signal::Samples, &b).unwrap();
            assert_eq!(n.column(4), b.column(4), "series ids match the engine's");
            rows += b.num_rows();
        }
        assert_eq!(rows, 500);
    }

    #[test]
    fn openmetrics_groups_families() {
        let g = SampleGenerator::new(20, 3, 15_000, 1_700_000_000_000, 1);
        let mut out = Vec::new();
        let n = write_openmetrics(g, &mut out).unwrap();
        assert_eq!(n, 60);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE http_requests counter"), "{text}");
    }
}
