//! Property tests: any query text — token soup, or a valid query from the
//! check file with a slice cut out, a token spliced in or the tail cut off —
//! comes back from the parser as a tree or an error, never a panic; every
//! tree prints as text that parses back to the same tree.

use proptest::prelude::*;

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

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
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
        let start = floor_boundary(q, at.index(q.len() + 1));
        let mutated = match mode {
            0 => format!("{}{}", &q[..start], &q[floor_boundary(q, start + len).max(start)..]),
            1 => format!("{} {token} {}", &q[..start], &q[start..]),
            _ => q[..start].to_string(),
        };
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
