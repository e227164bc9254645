//! Property tests: any query text — token soup, or a valid query from the
//! check file with a slice cut out, a token spliced in or the tail cut off —
//! comes back from the parser as a tree or an error, never a panic; every
//! tree prints as text that parses back to the same tree.

use proptest::prelude::*;

use crate::query::fuzz_support::mutate;

use super::format::strip_positions;
use super::parse;

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[5m]",
    "[1h30m]",
    "[",
    "]",
    ",",
    "=",
    "!=",
    "=~",
    "!~",
    "==",
    ">",
    ">=",
    "<",
    "<=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "|",
    "|=",
    "|~",
    "|>",
    "!>",
    "\"a\"",
    "\"(\"",
    "`x`",
    "\"<a> <_>\"",
    "\"(?P<n>.)\"",
    "app",
    "__error__",
    "5",
    "0.5",
    "-1",
    "1e3",
    "5m",
    "-5m",
    "250ms",
    "20MB",
    "1.5KiB",
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
    "offset",
    "unwrap",
    "json",
    "logfmt",
    "--strict",
    "--keep-empty",
    "regexp",
    "pattern",
    "unpack",
    "line_format",
    "label_format",
    "drop",
    "keep",
    "decolorize",
    "ip",
    "duration",
    "bytes",
    "rate",
    "count_over_time",
    "sum_over_time",
    "quantile_over_time",
    "sum",
    "topk",
    "sort",
    "vector",
    "label_replace",
    "#",
    "\n",
    "é",
    "\"\\u00e9\"",
];

fn queries() -> Vec<&'static str> {
    include_str!("../../../tests/logql/check.txt")
        .lines()
        .filter_map(|l| l.strip_prefix("ok\t").or_else(|| l.strip_prefix("err\t")))
        .collect()
}

/// Parses `q`; when it parses, its text must parse to the same tree.
fn parse_and_round_trip(q: &str) {
    let Ok(first) = parse(q) else { return };
    let shown = first.to_string();
    let again = parse(&shown).unwrap_or_else(|e| panic!("{q:?} printed as {shown:?}: {e}"));
    assert_eq!(
        strip_positions(&again),
        strip_positions(&first),
        "{q:?} → {shown:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..24)) {
        parse_and_round_trip(&tokens.join(" "));
        parse_and_round_trip(&tokens.concat());
    }

    #[test]
    fn mutated_queries_never_panic(
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        len in 0usize..8,
        token in prop::sample::select(TOKENS),
        mode in 0u8..3,
    ) {
        let all = queries();
        let q = all[which.index(all.len())];
        let mutated = mutate(q, at.index(q.len() + 1), len, token, mode);
        parse_and_round_trip(&mutated);
    }
}

#[test]
fn every_valid_query_round_trips() {
    for q in include_str!("../../../tests/logql/check.txt")
        .lines()
        .filter_map(|l| l.strip_prefix("ok\t"))
    {
        assert!(parse(q).is_ok(), "{q}");
        parse_and_round_trip(q);
    }
}

/// An engine holding two streams of mixed JSON, logfmt and plain lines.
async fn engine_with_logs() -> (std::sync::Arc<crate::engine::Engine>, tempfile::TempDir) {
    use crate::model::Signal;
    use crate::model::builders::{LogLine, LogsBuilder};
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config::Config {
        data_dir: dir.path().to_path_buf(),
        storage: Some("memory://".into()),
        ..crate::config::Config::default()
    };
    let (engine, _) = crate::engine::Engine::open(config).await.unwrap();
    let mut b = LogsBuilder::new();
    let lines = [
        r#"{"level":"error","status":500,"latency":"250ms","size":"2KB","nested":{"a":[1,2]}}"#,
        r#"level=info msg="hello world" status=200 latency=12ms addr=10.0.0.1"#,
        "plain \u{1b}[31mred\u{1b}[0m text",
        r#"{"_entry":"packed","app":"x"}"#,
        "",
    ];
    for (stream, labels) in [
        vec![("app".to_string(), "a".to_string())],
        vec![
            ("app".to_string(), "b".to_string()),
            ("level".to_string(), "x".to_string()),
        ],
    ]
    .iter()
    .enumerate()
    {
        let id = LogsBuilder::stream_id(labels);
        let metadata = vec![("trace_id".to_string(), format!("{stream:032x}"))];
        for i in 0..40i64 {
            b.push(
                labels,
                id,
                &LogLine {
                    timestamp_ns: i * 15_000_000_000,
                    line: lines[i as usize % lines.len()],
                    metadata: &metadata,
                    severity: None,
                    trace_id: None,
                    span_id: None,
                },
            );
        }
    }
    engine
        .ingester()
        .append_canonical("fuzz", Signal::Logs, &b.finish())
        .await
        .unwrap();
    (engine, dir)
}

/// Runs `q` as a range query and an instant query: an answer or an error,
/// never a panic.
fn evaluate(q: &str, step_s: i64) {
    let Ok(expr) = parse(q) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (engine, _dir) = engine_with_logs().await;
        let ctx = engine.tables_session("fuzz").unwrap();
        let options = super::LogqlOptions {
            max_samples: 100_000,
            ..super::LogqlOptions::default()
        };
        let request = super::RangeRequest {
            start_ns: 0,
            end_ns: 600_000_000_000,
            step_ns: step_s * 1_000_000_000,
            limit: 50,
            direction: super::Direction::Forward,
            interval_ns: 0,
        };
        let _ = super::query_range(&ctx, q, &expr, &request, &options).await;
        let _ = super::instant_query(&ctx, q, &expr, 300_000_000_000, &options).await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn mutated_queries_evaluate_without_panic(
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        token in prop::sample::select(TOKENS),
        step_s in 1i64..120,
    ) {
        let all = queries();
        let q = all[which.index(all.len())];
        evaluate(q, step_s);
        evaluate(&mutate(q, at.index(q.len() + 1), 0, token, 1), step_s);
    }
}

#[test]
fn every_valid_query_evaluates_without_panic() {
    for q in include_str!("../../../tests/logql/check.txt")
        .lines()
        .filter_map(|l| l.strip_prefix("ok\t"))
    {
        evaluate(q, 30);
    }
}
