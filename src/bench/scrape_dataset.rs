//! A deterministic, scrape-shaped metrics dataset for comparing o11ydb's
//! PromQL answers and speed with Prometheus' on the same data
//! (`tests/server/promql_differential.rs`, `o11ydb bench promql`).
//!
//! Targets (`job` × `instance`) are scraped every `interval` with a fixed
//! phase per target and ±`jitter` per scrape; every timestamp has a non-zero
//! millisecond part, so with whole-second query times, ranges and offsets no
//! sample ever sits exactly on a window boundary (where Prometheus 2.42's
//! closed ranges and 3.x's left-open ones differ). Each target exposes
//! [`SERIES_PER_TARGET`] series:
//! * `http_requests_total{method, code}`: 6 integer counters, Poisson
//!   increments, 5xx bursts in the middle third of the data;
//! * `http_request_duration_seconds_{bucket{le}, sum, count}`: a classic
//!   histogram of 7 buckets over log-normal latencies;
//! * `process_cpu_seconds_total`: a float counter with 2 decimals;
//! * gauges: `process_resident_memory_bytes` (4 KiB pages, random walk),
//!   `node_temperature_celsius` (1 decimal), `queue_depth` (integer ≥ 0);
//! * `up` (always 1) and `app_build_info{version, revision}` (always 1, for
//!   `group_left` joins).
//!
//! Counters start high (the processes ran before the data begins). A quarter
//! of the targets restart once (every counter starts again from zero), a
//! sixth miss 8–15 minutes of scrapes (longer than the 5 m lookback), the
//! targets that do not restart miss 1 % of scrapes at random, one target
//! starts a third of the way in and one stops two thirds of the way in.
//!
//! Why counters start high and restarting targets miss no scrape: `rate`'s
//! extrapolation clamps at the counter's zero point before deciding whether
//! the series starts inside the window in Prometheus 2.42, after it in 3.x;
//! with these two rules that clamp never decides, so both agree.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ingest::remote_write::{SeriesSamples, encode_write_request};

/// Series each target exposes.
pub const SERIES_PER_TARGET: usize = 21;

/// Upper bounds of the latency histogram's buckets, as `le` label values.
pub const LATENCY_BUCKETS: [&str; 7] = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
const BUCKET_BOUNDS: [f64; 7] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, f64::INFINITY];

const JOB_NAMES: [&str; 8] = [
    "api", "web", "worker", "billing", "search", "auth", "cart", "gateway",
];

/// The size and time span of a dataset.
#[derive(Debug, Clone)]
pub struct DatasetShape {
    pub jobs: usize,
    pub instances_per_job: usize,
    /// Nominal time of the first scrape, ms since the epoch.
    pub start_ms: i64,
    pub scrapes: usize,
    pub interval_ms: i64,
    /// Each scrape lands within ± this of its nominal time.
    pub jitter_ms: i64,
    pub seed: u64,
}

impl DatasetShape {
    /// Nominal time of the last scrape.
    pub fn end_ms(&self) -> i64 {
        self.start_ms + (self.scrapes as i64 - 1) * self.interval_ms
    }

    pub fn series(&self) -> usize {
        self.jobs * self.instances_per_job * SERIES_PER_TARGET
    }
}

/// One series: labels sorted by name (`__name__` included) and its samples
/// in time order.
#[derive(Debug, Clone)]
pub struct DatasetSeries {
    pub labels: Vec<(String, String)>,
    pub points: Vec<(i64, f64)>,
}

impl DatasetSeries {
    pub fn metric(&self) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == "__name__")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// The job name of job number `j` (`api`, `web`, … then `job8`, `job9`, …).
pub fn job_name(j: usize) -> String {
    JOB_NAMES
        .get(j)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("job{j}"))
}

/// A standard normal draw (Box–Muller; `rand` alone has no normal distribution).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Events in `mean` expected: Poisson for small means, its normal
/// approximation for large ones.
fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean < 30.0 {
        let limit = (-mean).exp();
        let mut product: f64 = rng.random();
        let mut n = 0;
        while product > limit {
            product *= rng.random::<f64>();
            n += 1;
        }
        n
    } else {
        (mean + normal(rng) * mean.sqrt()).round().max(0.0) as u64
    }
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// The per-target state that evolves scrape by scrape.
struct Target {
    job: String,
    labels_base: Vec<(String, String)>,
    phase_ms: i64,
    /// Requests per second of the 200 GET counter; others are fractions of it.
    request_rate: f64,
    /// Log-normal latency parameters (of ln seconds).
    latency_mu: f64,
    latency_sigma: f64,
    restart_at: Option<usize>,
    gap: Option<std::ops::Range<usize>>,
    alive: std::ops::Range<usize>,
    version: &'static str,
}

impl Target {
    /// One request's latency in seconds.
    fn latency(&self, rng: &mut StdRng) -> f64 {
        (self.latency_mu + self.latency_sigma * normal(rng)).exp()
    }
}

/// Indices into a target's series, in [`series_of`] order.
const REQUEST_SERIES: usize = 0; // 6 series: method × code
const BUCKET_SERIES: usize = 6; // 7 series
const SUM_SERIES: usize = 13;
const COUNT_SERIES: usize = 14;
const CPU_SERIES: usize = 15;
const MEMORY_SERIES: usize = 16;
const TEMPERATURE_SERIES: usize = 17;
const QUEUE_SERIES: usize = 18;
const UP_SERIES: usize = 19;
const INFO_SERIES: usize = 20;

const METHODS_CODES: [(&str, &str, f64); 6] = [
    ("GET", "200", 1.0),
    ("GET", "404", 0.04),
    ("GET", "500", 0.01),
    ("POST", "200", 0.3),
    ("POST", "404", 0.01),
    ("POST", "500", 0.005),
];

fn with_labels(
    base: &[(String, String)],
    name: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = base.to_vec();
    labels.push(("__name__".into(), name.into()));
    labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    labels.sort();
    labels
}

fn series_of(t: &Target) -> Vec<Vec<(String, String)>> {
    let base = &t.labels_base;
    let mut out = Vec::with_capacity(SERIES_PER_TARGET);
    for (method, code, _) in METHODS_CODES {
        out.push(with_labels(
            base,
            "http_requests_total",
            &[("method", method), ("code", code)],
        ));
    }
    for le in LATENCY_BUCKETS {
        out.push(with_labels(
            base,
            "http_request_duration_seconds_bucket",
            &[("le", le)],
        ));
    }
    out.push(with_labels(base, "http_request_duration_seconds_sum", &[]));
    out.push(with_labels(
        base,
        "http_request_duration_seconds_count",
        &[],
    ));
    out.push(with_labels(base, "process_cpu_seconds_total", &[]));
    out.push(with_labels(base, "process_resident_memory_bytes", &[]));
    out.push(with_labels(base, "node_temperature_celsius", &[]));
    out.push(with_labels(base, "queue_depth", &[]));
    out.push(with_labels(base, "up", &[]));
    let revision = format!("{:07x}", t.version.len() * 0x1f3a5 + t.job.len());
    out.push(with_labels(
        base,
        "app_build_info",
        &[("version", t.version), ("revision", &revision)],
    ));
    out
}

/// Generates the whole dataset (series-major; fits in memory at benchmark
/// sizes: 16 bytes per sample).
pub fn generate(shape: &DatasetShape) -> Vec<DatasetSeries> {
    let mut rng = StdRng::seed_from_u64(shape.seed);
    let targets_n = shape.jobs * shape.instances_per_job;
    let mut out = Vec::with_capacity(shape.series());
    for target_index in 0..targets_n {
        let job = job_name(target_index / shape.instances_per_job);
        let instance = format!(
            "10.0.{}.{}:9100",
            target_index / 250,
            target_index % 250 + 1
        );
        let scrapes = shape.scrapes;
        let alive = match target_index {
            1 => scrapes / 3..scrapes,
            4 => 0..scrapes * 2 / 3,
            _ => 0..scrapes,
        };
        let target = Target {
            labels_base: vec![("instance".into(), instance), ("job".into(), job.clone())],
            job,
            phase_ms: rng.random_range(0..shape.interval_ms),
            request_rate: (rng.random_range(0.0f64..4.0)).exp(),
            latency_mu: rng.random_range(-3.5f64..-1.5),
            latency_sigma: rng.random_range(0.4f64..1.0),
            restart_at: (target_index % 4 == 2)
                .then(|| rng.random_range(scrapes / 5..scrapes * 4 / 5)),
            gap: (target_index % 6 == 3).then(|| {
                let from = rng.random_range(scrapes / 6..scrapes * 5 / 6);
                let len = (rng.random_range(480_000..900_000) / shape.interval_ms) as usize;
                from..(from + len).min(scrapes)
            }),
            alive,
            version: if target_index % 3 == 0 {
                "1.4.2"
            } else {
                "1.5.0"
            },
        };
        let labels = series_of(&target);
        let mut points: Vec<Vec<(i64, f64)>> = vec![Vec::with_capacity(scrapes); labels.len()];
        scrape_target(shape, &target, &mut rng, &mut points);
        out.extend(
            labels
                .into_iter()
                .zip(points)
                .map(|(labels, points)| DatasetSeries { labels, points }),
        );
    }
    out
}

/// Runs every scrape of one target, appending each series' samples.
fn scrape_target(
    shape: &DatasetShape,
    t: &Target,
    rng: &mut StdRng,
    points: &mut [Vec<(i64, f64)>],
) {
    // Processes ran before the data begins: counters start high (so a rate
    // window never extrapolates toward a zero point at the data's start).
    let mut counters = [0u64; 6];
    for (c, (_, _, share)) in counters.iter_mut().zip(METHODS_CODES) {
        *c = (rng.random_range(10_000.0f64..1_000_000.0) * share) as u64 + 100;
    }
    let mut buckets = [0u64; 7];
    let mut latency_sum = 0.0f64;
    let history = rng.random_range(20u64..200);
    for _ in 0..500 {
        let seconds = t.latency(rng);
        latency_sum += seconds * history as f64;
        for (b, bound) in BUCKET_BOUNDS.iter().enumerate() {
            if seconds <= *bound {
                buckets[b] += history;
            }
        }
    }
    let mut cpu_hundredths: u64 = rng.random_range(100_000..10_000_000);
    let mut memory_pages: i64 = rng.random_range(20_000..200_000);
    let mut temperature_tenths: i64 = rng.random_range(300..600);
    let mut queue: i64 = rng.random_range(0..60);
    let dt = shape.interval_ms as f64 / 1000.0;
    let burst = shape.scrapes / 3..shape.scrapes * 2 / 3;
    for k in 0..shape.scrapes {
        if t.restart_at == Some(k) {
            counters = [0; 6];
            buckets = [0; 7];
            latency_sum = 0.0;
            cpu_hundredths = 0;
            memory_pages /= 3;
        }
        // Counters move whether or not this scrape is recorded.
        let error_boost = if burst.contains(&k) && t.phase_ms % 2 == 0 {
            8.0
        } else {
            1.0
        };
        for (i, (_, code, share)) in METHODS_CODES.iter().enumerate() {
            let boost = if *code == "500" { error_boost } else { 1.0 };
            counters[i] += poisson(rng, t.request_rate * share * boost * dt);
        }
        let observations = poisson(rng, t.request_rate * 0.5 * dt);
        for _ in 0..observations {
            let seconds = t.latency(rng);
            latency_sum += seconds;
            for (b, bound) in BUCKET_BOUNDS.iter().enumerate() {
                if seconds <= *bound {
                    buckets[b] += 1;
                }
            }
        }
        cpu_hundredths += poisson(rng, 15.0 * dt);
        memory_pages = (memory_pages + rng.random_range(-300..=330)).max(5_000);
        temperature_tenths = (temperature_tenths + rng.random_range(-8..=8)).clamp(150, 950);
        if rng.random_bool(0.4) {
            queue = (queue + rng.random_range(-6..=6)).clamp(0, 120);
        }
        let missed = !t.alive.contains(&k)
            || t.gap.as_ref().is_some_and(|g| g.contains(&k))
            || (t.restart_at.is_none() && rng.random_bool(0.01));
        let jitter = rng.random_range(-shape.jitter_ms..=shape.jitter_ms);
        if missed {
            continue;
        }
        let mut ts = shape.start_ms + k as i64 * shape.interval_ms + t.phase_ms + jitter;
        if ts.rem_euclid(1000) == 0 {
            ts += 1;
        }
        for (i, c) in counters.iter().enumerate() {
            points[REQUEST_SERIES + i].push((ts, *c as f64));
        }
        for (b, c) in buckets.iter().enumerate() {
            points[BUCKET_SERIES + b].push((ts, *c as f64));
        }
        points[SUM_SERIES].push((ts, latency_sum));
        points[COUNT_SERIES].push((ts, buckets[6] as f64));
        points[CPU_SERIES].push((ts, cpu_hundredths as f64 / 100.0));
        points[MEMORY_SERIES].push((ts, (memory_pages * 4096) as f64));
        points[TEMPERATURE_SERIES].push((ts, round_to(temperature_tenths as f64 / 10.0, 1)));
        points[QUEUE_SERIES].push((ts, queue as f64));
        points[UP_SERIES].push((ts, 1.0));
        points[INFO_SERIES].push((ts, 1.0));
    }
}

/// Writes the dataset as OpenMetrics text for `promtool tsdb
/// create-blocks-from openmetrics` (families contiguous, untyped, `# EOF`);
/// returns the number of samples written.
pub fn write_openmetrics(
    series: &[DatasetSeries],
    out: &mut impl std::io::Write,
) -> std::io::Result<u64> {
    let mut order: Vec<&DatasetSeries> = series.iter().collect();
    order.sort_by(|a, b| a.metric().cmp(b.metric()));
    let mut written = 0u64;
    for s in order {
        let rendered: Vec<String> = s
            .labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        let key = format!("{}{{{}}}", s.metric(), rendered.join(","));
        for &(t, v) in &s.points {
            super::samples::write_openmetrics_sample(out, &key, t, v)?;
            written += 1;
        }
    }
    writeln!(out, "# EOF")?;
    Ok(written)
}

/// Builds remote-write 1.0 bodies (uncompressed `WriteRequest`s) of about
/// `samples_per_request` samples each, in scrape order — every series'
/// samples ascend across the bodies, as Prometheus' shards send them — and
/// hands each to `send` with its sample count. Only samples with
/// `from_ms <= t < to_ms` are included. Bodies are made one at a time, so a
/// large dataset never exists twice in memory.
pub fn for_each_remote_write_body(
    series: &[DatasetSeries],
    samples_per_request: usize,
    from_ms: i64,
    to_ms: i64,
    mut send: impl FnMut(Vec<u8>, usize),
) {
    let mut cursor: Vec<usize> = series
        .iter()
        .map(|s| s.points.partition_point(|(t, _)| *t < from_ms))
        .collect();
    let Some(first) = series
        .iter()
        .zip(&cursor)
        .filter_map(|(s, &c)| s.points.get(c).map(|p| p.0))
        .min()
    else {
        return;
    };
    // Walk time in slices of five minutes: each series' samples of a slice
    // go out together, under one copy of its labels.
    let slice_ms = 300_000;
    let mut slice_end = first + slice_ms;
    let mut pending: Vec<SeriesSamples> = Vec::new();
    let mut pending_samples = 0;
    loop {
        let mut any_left = false;
        let limit = slice_end.min(to_ms);
        for (i, s) in series.iter().enumerate() {
            let start = cursor[i];
            let end = start + s.points[start..].partition_point(|(t, _)| *t < limit);
            if end > start {
                pending.push((s.labels.clone(), s.points[start..end].to_vec()));
                pending_samples += end - start;
                cursor[i] = end;
            }
            any_left |= s.points.get(end).is_some_and(|(t, _)| *t < to_ms);
            if pending_samples >= samples_per_request {
                send(encode_write_request(&pending), pending_samples);
                pending.clear();
                pending_samples = 0;
            }
        }
        if !any_left {
            break;
        }
        slice_end += slice_ms;
    }
    if !pending.is_empty() {
        send(encode_write_request(&pending), pending_samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DatasetShape {
        DatasetShape {
            jobs: 2,
            instances_per_job: 3,
            start_ms: 1_700_000_000_000,
            scrapes: 240,
            interval_ms: 15_000,
            jitter_ms: 2_000,
            seed: 5,
        }
    }

    #[test]
    fn samples_ascend_and_avoid_whole_seconds() {
        let data = generate(&small());
        assert_eq!(data.len(), small().series());
        for s in &data {
            assert!(s.points.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(s.points.iter().all(|(t, _)| t % 1000 != 0));
        }
    }

    #[test]
    fn remote_write_bodies_carry_every_sample_once() {
        let data = generate(&small());
        let total: usize = data.iter().map(|s| s.points.len()).sum();
        let mid = small().start_ms + 1_800_000;
        let (mut sent, mut bodies) = (0, 0);
        for (from, to) in [(i64::MIN, mid), (mid, i64::MAX)] {
            for_each_remote_write_body(&data, 500, from, to, |body, samples| {
                assert!(!body.is_empty());
                sent += samples;
                bodies += 1;
            });
        }
        assert_eq!(sent, total);
        assert!(bodies > total / 1000, "{bodies} bodies");
    }
}
