//! `o11ydb bench ruler`: how long a full round of rule evaluations takes.
//!
//! What flows through: the scrape-shaped dataset of
//! [`super::scrape_dataset`] (jobs × instances × 21 series, an hour at
//! 15 s) is appended to a scratch engine's head; a rule file of `rules`
//! rules (mixed recording and alerting, over every job) is generated as
//! YAML and read by the real rule-file parser; then every group is
//! evaluated at the data's end for `rounds` rounds, `concurrency` groups
//! at a time, with the real evaluation code
//! (queries, writes through the distributor, alert state, `ALERTS`).
//! Reported: per-group and per-round latency percentiles.
//!
//! The same rule file ([`rule_file`]) is what `o11ydb bench ruler rules`
//! writes for `benches/ruler.sh`, which runs it in o11ydb's ruler and in
//! Prometheus side by side ([`super::ruler_compare`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;

use super::scrape_dataset::{DatasetShape, generate, job_name};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::Signal;
use crate::model::builders::{SamplesBuilder, canonical};
use crate::ruler::eval::{EvalContext, GroupState, evaluate_group};
use crate::ruler::notifier::Notifier;
use crate::ruler::rules::{Language, RuleGroup, parse};

/// The benchmark's shape.
#[derive(Debug, Clone)]
pub struct RulerBench {
    pub rules: usize,
    pub rules_per_group: usize,
    pub rounds: usize,
    pub jobs: usize,
    pub instances: usize,
    /// Groups evaluated at the same time (the ruler spreads groups over
    /// their interval, so they rarely all run at once).
    pub concurrency: usize,
}

/// What a run measured.
#[derive(Debug)]
pub struct RulerReport {
    pub series: usize,
    pub samples: usize,
    pub groups: usize,
    pub rules: usize,
    pub recording: usize,
    pub alerting: usize,
    /// Every group evaluation of every round.
    pub group_times: Vec<Duration>,
    /// Wall time of each whole round (every group once).
    pub round_times: Vec<Duration>,
    /// Rule evaluations that failed (should be 0).
    pub failures: u64,
}

/// The `p`-th percentile (0–100) of `times`, nearest rank.
pub fn percentile(times: &[Duration], p: f64) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The rule of number `i` for job `job`: three in five record, two alert.
fn rule_yaml(i: usize, job: &str) -> String {
    match i % 5 {
        0 => format!(
            "      - record: job:http_requests:rate5m_{i}\n        expr: sum by (job, code) (rate(http_requests_total{{job=\"{job}\"}}[5m]))\n"
        ),
        1 => format!(
            "      - record: job:latency:p99_{i}\n        expr: histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket{{job=\"{job}\"}}[5m])))\n"
        ),
        2 => format!(
            "      - record: instance:temperature:avg10m_{i}\n        expr: avg_over_time(node_temperature_celsius{{job=\"{job}\"}}[10m])\n        labels:\n          source: bench\n"
        ),
        3 => format!(
            "      - alert: HighErrorRate{i}\n        expr: sum by (job, instance) (rate(http_requests_total{{job=\"{job}\",code=~\"5..\"}}[5m])) / sum by (job, instance) (rate(http_requests_total{{job=\"{job}\"}}[5m])) > 0.01\n        for: 1m\n        labels:\n          severity: page\n        annotations:\n          summary: \"{{{{ $labels.instance }}}} errors at {{{{ $value | humanizePercentage }}}}\"\n"
        ),
        _ => format!(
            "      - alert: DeepQueue{i}\n        expr: queue_depth{{job=\"{job}\"}} > 20\n        annotations:\n          summary: \"{{{{ $labels.instance }}}} queue at {{{{ $value }}}}\"\n"
        ),
    }
}

/// The generated rule file's text.
pub fn rule_file(b: &RulerBench) -> String {
    let mut text = String::from("groups:\n");
    for i in 0..b.rules {
        if i % b.rules_per_group.max(1) == 0 {
            text.push_str(&format!(
                "  - name: group{}\n    rules:\n",
                i / b.rules_per_group.max(1)
            ));
        }
        text.push_str(&rule_yaml(i, &job_name(i % b.jobs.max(1))));
    }
    text
}

/// Runs the benchmark on a scratch engine (removed afterwards).
pub async fn run(b: &RulerBench) -> Result<RulerReport> {
    let (engine, dir) = Engine::open_scratch("o11ydb-bench-ruler").await?;
    let result = measure(&engine, b).await;
    drop(engine);
    let _ = std::fs::remove_dir_all(dir);
    result
}

async fn measure(engine: &Arc<Engine>, b: &RulerBench) -> Result<RulerReport> {
    const TENANT: &str = "bench";
    let scrapes = 241;
    let end_ms = chrono::Utc::now().timestamp_millis() / 60_000 * 60_000;
    let shape = DatasetShape {
        jobs: b.jobs,
        instances_per_job: b.instances,
        start_ms: end_ms - (scrapes as i64 - 1) * 15_000,
        scrapes,
        interval_ms: 15_000,
        jitter_ms: 2_000,
        seed: 42,
    };
    let data = generate(&shape);
    let mut samples = 0;
    let mut builder = SamplesBuilder::new();
    for s in &data {
        let metric = s.metric().to_string();
        let labels: Vec<(String, String)> = canonical(
            s.labels
                .iter()
                .filter(|(k, _)| k != "__name__")
                .cloned()
                .collect(),
        );
        builder.push_series(&metric, &labels, &s.points);
        samples += s.points.len();
        if builder.len() >= 100_000 {
            engine
                .ingester()
                .append_canonical(TENANT, Signal::Samples, &builder.finish())
                .await?;
        }
    }
    if !builder.is_empty() {
        engine
            .ingester()
            .append_canonical(TENANT, Signal::Samples, &builder.finish())
            .await?;
    }

    let text = rule_file(b);
    let groups: Vec<RuleGroup> = parse(std::path::Path::new("bench.yaml"), &text, Language::Promql)
        .map_err(|p| Error::Config(format!("generated rules do not parse: {}", p[0])))?;
    let recording = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| !r.is_alert())
        .count();
    let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
    let ctx = Arc::new(EvalContext {
        engine: engine.clone(),
        tenant: TENANT.into(),
        external_labels: Default::default(),
        external_url: "http://localhost:3100".into(),
        resend_delay: Duration::from_secs(60),
        notifier: Arc::new(Notifier::new(&[], 10_000, engine.metrics().clone())),
    });
    let groups: Vec<(Arc<RuleGroup>, Arc<Mutex<GroupState>>)> = groups
        .into_iter()
        .map(|g| {
            let state = Arc::new(Mutex::new(GroupState::new(g.rules.len())));
            (Arc::new(g), state)
        })
        .collect();
    let mut group_times = Vec::new();
    let mut round_times = Vec::new();
    for round in 0..b.rounds {
        // Rounds 15 s apart from the data's end (within the 5 m lookback,
        // so later rounds find as much data as the first), as a ruler with
        // a 15 s interval would run them; `for: 1m` alerts fire by round 5.
        let ts = end_ms + round as i64 * 15_000;
        let started = Instant::now();
        let evaluations = groups.iter().map(|(g, s)| {
            let (ctx, g, s) = (ctx.clone(), g.clone(), s.clone());
            async move {
                let t = Instant::now();
                evaluate_group(&ctx, &g, &s, ts).await;
                t.elapsed()
            }
        });
        let times: Vec<Duration> = futures::stream::iter(evaluations)
            .buffer_unordered(b.concurrency.max(1))
            .collect()
            .await;
        group_times.extend(times);
        round_times.push(started.elapsed());
    }
    let failures = engine
        .metrics()
        .value(crate::ruler::eval::FAILURES, &[("tenant", TENANT)]) as u64;
    Ok(RulerReport {
        series: data.len(),
        samples,
        groups: groups.len(),
        rules,
        recording,
        alerting: rules - recording,
        group_times,
        round_times,
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rules_parse_and_mix_kinds() {
        let b = RulerBench {
            rules: 25,
            rules_per_group: 10,
            rounds: 1,
            jobs: 3,
            instances: 2,
            concurrency: 1,
        };
        let groups = parse(
            std::path::Path::new("b.yaml"),
            &rule_file(&b),
            Language::Promql,
        )
        .unwrap_or_else(|p| panic!("{}", p[0]));
        assert_eq!(groups.len(), 3);
        let alerts = groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter(|r| r.is_alert())
            .count();
        assert_eq!(alerts, 10);
        let times = [3, 1, 2, 4].map(Duration::from_millis);
        assert_eq!(percentile(&times, 50.0), Duration::from_millis(2));
        assert_eq!(percentile(&times, 99.0), Duration::from_millis(4));
    }
}
