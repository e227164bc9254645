//! Property tests: any query text — token soup, or a query from the check
//! file with a slice cut out, a token spliced in or the tail cut off —
//! comes back from the parser as a tree or an error, never a panic; every
//! tree prints as text that parses back to the same tree; deep nesting is
//! refused with an error, not a stack overflow; evaluating any parsed
//! spans query over a small trace never panics.

use proptest::prelude::*;

use crate::query::fuzz_support::mutate;

use super::ast::Query;
use super::eval::{Regexes, evaluate};
use super::parse;
use super::trace::{Span, Trace};

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ",",
    "=",
    "!=",
    "=~",
    "!~",
    ">",
    ">=",
    "<",
    "<=",
    ">>",
    "<<",
    "~",
    "!>",
    "!<",
    "!>>",
    "!<<",
    "&>",
    "&<",
    "&>>",
    "&<<",
    "&~",
    "&&",
    "||",
    "!",
    "|",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "\"a\"",
    "`b`",
    "\"[\"",
    "1",
    "2.5",
    "-1",
    "10ms",
    "1h",
    "true",
    "nil",
    "ok",
    "error",
    "server",
    "client",
    "name",
    "status",
    "kind",
    "duration",
    "span.a",
    "resource.b",
    ".c",
    "event.d",
    "link.e",
    "parent.f",
    "span:id",
    "trace:duration",
    "event:name",
    "count()",
    "avg(duration)",
    "by(.a)",
    "coalesce()",
    "select(.a)",
    "rate()",
    "count_over_time()",
    "quantile_over_time(duration, 0.9)",
    "topk(2)",
    "with(sample=0.1)",
    "by",
    "x",
];

fn queries() -> Vec<&'static str> {
    include_str!("../../../tests/traceql/check.txt")
        .lines()
        .filter_map(|l| l.strip_prefix("ok\t").or_else(|| l.strip_prefix("err\t")))
        .collect()
}

fn small_trace() -> Trace {
    let span = |id: &str, parent: Option<&str>, kind: &str| Span {
        span_id: id.into(),
        parent_span_id: parent.map(Into::into),
        name: id.into(),
        kind: kind.into(),
        service: "s".into(),
        start_ns: 1,
        end_ns: 5,
        status_code: "error".into(),
        attributes: vec![("a".into(), "1".into())],
        ..Default::default()
    };
    Trace::new(
        "t".into(),
        vec![
            span("r", None, "server"),
            span("x", Some("r"), "client"),
            span("y", Some("x"), "server"),
        ],
    )
}

/// Parses `q`; a tree must print as text that parses to the same tree, and
/// a spans query must evaluate without panicking.
fn parse_round_trip_and_run(q: &str) {
    let Ok(first) = parse(q) else { return };
    let shown = first.to_string();
    let again = parse(&shown).unwrap_or_else(|e| panic!("{q:?} printed as {shown:?}: {e}"));
    assert_eq!(again, first, "{q:?} → {shown:?}");
    if let Query::Spans(e) = &first.query {
        let _ = evaluate(&small_trace(), e, &mut Regexes::default());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..24)) {
        parse_round_trip_and_run(&tokens.join(" "));
        parse_round_trip_and_run(&tokens.concat());
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
        parse_round_trip_and_run(&mutated);
    }
}

#[test]
fn every_valid_query_round_trips_and_runs() {
    for q in include_str!("../../../tests/traceql/check.txt")
        .lines()
        .filter_map(|l| l.strip_prefix("ok\t"))
    {
        assert!(parse(q).is_ok(), "{q}");
        parse_round_trip_and_run(q);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{{ true }}{}", "(".repeat(5000), ")".repeat(5000));
    let e = parse(&deep).unwrap_err();
    assert!(e.message.contains("nests deeper"), "{e}");
    let chain = vec!["{ true }"; 3000].join(" > ");
    assert!(
        parse(&chain)
            .unwrap_err()
            .message
            .contains("more than 500 operators")
    );
    let conditions = vec![".a = 1"; 3000].join(" && ");
    assert!(parse(&format!("{{ {conditions} }}")).is_err());
    let fine = vec!["{ true }"; 100].join(" >> ");
    assert!(parse(&fine).is_ok());
    let negations = format!("{{ {}true }}", "!".repeat(5000));
    assert!(
        parse(&negations)
            .unwrap_err()
            .message
            .contains("nests deeper")
    );
}
