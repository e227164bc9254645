//! Property tests: any query text — token soup or well-formed expressions
//! over a few loaded series — comes back from the engine as a value or an
//! error, never a panic, at any evaluation time and step.

use std::sync::Arc;

use proptest::prelude::*;

use super::{QueryOptions, instant_query, range_query};
use crate::config::Config;
use crate::engine::Engine;
use crate::model::Signal;
use crate::model::builders::SamplesBuilder;

const TOKENS: &[&str] = &[
    "up",
    "x_total",
    "h_bucket",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "5m",
    "1s",
    "0s",
    ":",
    ",",
    "=",
    "!=",
    "=~",
    "!~",
    "\"a\"",
    "\"(\"",
    "job",
    "le",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "==",
    "!=",
    ">",
    "<",
    ">=",
    "<=",
    "and",
    "or",
    "unless",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "by",
    "without",
    "sum",
    "avg",
    "topk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
    "rate",
    "irate",
    "histogram_quantile",
    "label_replace",
    "absent",
    "scalar",
    "vector",
    "time",
    "sort",
    "clamp",
    "round",
    "offset",
    "@",
    "start()",
    "end()",
    "1",
    "0",
    "-1",
    "0.5",
    "NaN",
    "Inf",
    "1e308",
    "99999999999",
    "quantile_over_time",
    "predict_linear",
    "double_exponential_smoothing",
    "timestamp",
    "day_of_week",
    "histogram_fraction",
];

const EXPRESSIONS: &[&str] = &[
    "up",
    "x_total",
    "h_bucket",
    "rate(x_total[5m])",
    "sum by (job) (up)",
    "vector(1)",
    "time()",
    "up offset 1m",
    "up @ 30",
    "x_total[10m:1m]",
    "-up",
    "scalar(up)",
];

async fn engine_with_data() -> (Arc<Engine>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        storage: Some("memory://".into()),
        ..Config::default()
    };
    let (engine, _) = Engine::open(config).await.unwrap();
    let mut b = SamplesBuilder::new();
    let points =
        |f: fn(i64) -> f64| -> Vec<(i64, f64)> { (0..40).map(|i| (i * 15_000, f(i))).collect() };
    b.push_series("up", &[("job", "a")], &points(|_| 1.0));
    b.push_series("up", &[("job", "b")], &points(|i| (i % 2) as f64));
    b.push_series("x_total", &[("job", "a")], &points(|i| (i * 3 % 50) as f64));
    for le in ["0.1", "1", "+Inf"] {
        b.push_series("h_bucket", &[("le", le)], &points(|i| i as f64));
    }
    engine
        .ingester()
        .append_canonical("fuzz", Signal::Samples, &b.finish())
        .await
        .unwrap();
    (engine, dir)
}

fn run(query: &str, time_s: i64, step_s: i64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (engine, _dir) = engine_with_data().await;
        let ctx = engine.session("fuzz").await.unwrap();
        let options = QueryOptions {
            max_samples: 100_000,
            ..QueryOptions::default()
        };
        let _ = instant_query(&ctx, query, time_s * 1000, &options).await;
        let _ = range_query(&ctx, query, 0, time_s.abs() * 1000, step_s * 1000, &options).await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(
        tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 1..12),
        time_s in -1000i64..2000,
        step_s in 1i64..120,
    ) {
        run(&tokens.join(" "), time_s, step_s);
    }

    #[test]
    fn composed_expressions_never_panic(
        a in proptest::sample::select(EXPRESSIONS),
        b in proptest::sample::select(EXPRESSIONS),
        op in proptest::sample::select(&["+", "/", "and", "or", "unless", "> bool", "* on(job) group_left", "^", "%"][..]),
        wrap in proptest::sample::select(&["{}", "sum({})", "topk(2, {})", "rate(({})[5m:30s])", "histogram_quantile(0.9, {})", "label_replace({}, \"j\", \"$1\", \"job\", \"(.*)\")", "count_values(\"v\", {})", "absent({})", "sort_desc({})", "quantile(0.3, {})", "limit_ratio(0.5, {})", "clamp({}, 0, 1)", "timestamp({})"][..]),
        time_s in 0i64..1200,
    ) {
        let inner = format!("({a}) {op} ({b})");
        run(&wrap.replace("{}", &inner), time_s, 30);
    }
}

/// Found by `token_soup_never_panics`: promql-parser panics turning NaN
/// seconds into a duration; the query must be a `bad_data` error instead.
#[test]
fn offset_nan_is_bad_data_not_a_panic() {
    for query in [
        "x offset NaN",
        "up offset -Inf",
        "sum by (job) (up) offset NaN",
    ] {
        match super::parse(query) {
            Err(super::PromError::BadData(message)) => assert!(!message.is_empty(), "{query}"),
            other => panic!("{query}: expected bad_data, got {other:?}"),
        }
    }
}
