//! Script parsing: value expansion, durations, headers, expectations and
//! the comment-ends-a-block rule.

use super::*;

fn values(s: &str) -> Vec<Item> {
    parse_values(s, 1).unwrap()
}

fn floats(s: &str) -> Vec<f64> {
    values(s)
        .into_iter()
        .map(|i| match i {
            Item::Value(v) => v,
            other => panic!("not a value: {other:?}"),
        })
        .collect()
}

fn evals(text: &str) -> Vec<Eval> {
    parse_script(text)
        .unwrap()
        .into_iter()
        .filter_map(|c| match c {
            Command::Eval(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn expands_value_sequences() {
    assert_eq!(floats("0+10x3"), [0.0, 10.0, 20.0, 30.0]);
    assert_eq!(floats("-2+4x3"), [-2.0, 2.0, 6.0, 10.0]);
    assert_eq!(floats("10-1x2"), [10.0, 9.0, 8.0]);
    assert_eq!(floats("5x2"), [5.0, 5.0, 5.0]);
    assert_eq!(floats("1e0 1e-3 .5 2. +3"), [1.0, 0.001, 0.5, 2.0, 3.0]);
    assert_eq!(floats("1e0+1x1"), [1.0, 2.0]);
    assert_eq!(
        values("1 _x3 stale _")[..4],
        [
            Item::Value(1.0),
            Item::Omitted,
            Item::Omitted,
            Item::Omitted
        ]
    );
    let v = values("1 _x3 stale _");
    assert_eq!(v.len(), 6);
    assert!(matches!(v[4], Item::Value(x) if x.to_bits() == STALE_NAN_BITS));
    assert_eq!(v[5], Item::Omitted);
    let inf = floats("Inf -Inf +Inf NaN");
    assert_eq!(inf[..3], [f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]);
    assert!(inf[3].is_nan() && inf[3].to_bits() != STALE_NAN_BITS);
    // In series descriptions `0x3` repeats 0, it is not hexadecimal.
    assert_eq!(floats("0x3"), [0.0; 4]);
    assert!(parse_values("1+1", 1).is_err());
    assert!(parse_values("abc", 1).is_err());
}

#[test]
fn increments_accumulate_like_prometheus() {
    // Upstream adds the increment repeatedly rather than multiplying.
    let v = floats("0+0.1x3");
    assert_eq!(v, [0.0, 0.1, 0.1 + 0.1, 0.1 + 0.1 + 0.1]);
}

#[test]
fn histogram_literals_and_series_expand() {
    let v = values(
        "{{schema:0 sum:5 count:4 buckets:[1 2 1]}} 1 {{count:0}}+{{count:1}}x2 {{sum:1}}x1",
    );
    let histogram = |item: &Item| match item {
        Item::Histogram(h) => Some((h.histogram.count, h.histogram.sum)),
        _ => None,
    };
    let shapes: Vec<Option<(f64, f64)>> = v.iter().map(histogram).collect();
    assert_eq!(
        shapes,
        [
            Some((4.0, 5.0)),
            None,
            Some((0.0, 0.0)),
            Some((1.0, 0.0)),
            Some((2.0, 0.0)),
            Some((0.0, 1.0)),
            Some((0.0, 1.0)),
        ]
    );
    assert_eq!(v[1], Item::Value(1.0));
    let Item::Histogram(first) = &v[0] else {
        unreachable!()
    };
    assert_eq!(first.histogram.positive_buckets, [1.0, 2.0, 1.0]);
    assert!(!first.hint_given);
    assert!(parse_values("{{schema:0 schema:1}}", 1).is_err());
    assert!(parse_values("{{bogus:1}}", 1).is_err());
    assert!(parse_values("{{count:1", 1).is_err());
}

#[test]
fn parses_durations() {
    assert_eq!(parse_duration("0"), Some(0));
    assert_eq!(parse_duration("5m"), Some(300_000));
    assert_eq!(parse_duration("10s"), Some(10_000));
    assert_eq!(parse_duration("1h30m"), Some(5_400_000));
    assert_eq!(parse_duration("9m10s"), Some(550_000));
    assert_eq!(parse_duration("250ms"), Some(250));
    assert_eq!(parse_duration("1m5ms"), Some(60_005));
    assert_eq!(parse_duration("2d"), Some(172_800_000));
    assert_eq!(parse_duration("1w"), Some(604_800_000));
    assert_eq!(parse_duration("1y"), Some(31_536_000_000));
    assert_eq!(parse_duration("-30s"), Some(-30_000));
    for bad in ["", "5", "m", "1.5m", "30m1h", "5 m"] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
}

#[test]
fn parses_numbers_like_go() {
    assert_eq!(parse_number("12340000"), Some(12_340_000.0));
    assert_eq!(parse_number("0x3d"), Some(61.0));
    assert_eq!(parse_number("-0.0000002"), Some(-0.0000002));
    assert_eq!(parse_number("+Inf"), Some(f64::INFINITY));
    assert_eq!(parse_number("-inf"), Some(f64::NEG_INFINITY));
    assert!(parse_number("NaN").unwrap().is_nan());
    assert_eq!(parse_number("1e3"), Some(1000.0));
    assert_eq!(parse_number("{} 1"), None);
    assert_eq!(parse_number("foo 1"), None);
}

#[test]
fn unquotes_go_strings() {
    assert_eq!(unquote("\"Foo\"").as_deref(), Some("Foo"));
    assert_eq!(unquote("`a\\b`").as_deref(), Some("a\\b"));
    assert_eq!(
        unquote("\"a\\n\\\"b\\x41\\u00e9\"").as_deref(),
        Some("a\n\"bAé")
    );
    assert_eq!(unquote("\"\"").as_deref(), Some(""));
    assert_eq!(unquote("\"a\"b\""), None);
    assert_eq!(unquote("Foo"), None);
}

#[test]
fn parses_loads_and_selectors() {
    let cmds = parse_script(
        "load 5m\n  http{job=\"a\\\"b\", instance='1'} 0+1x2\n  {__name__=\"x\", a=\"b\"} 1\n  y{} 2\n  z:rule: 3\n  http{instance='1', job=\"a\\\"b\"} 7\n",
    )
    .unwrap();
    let Command::Load {
        step,
        with_nhcb,
        series,
        ..
    } = &cmds[0]
    else {
        panic!("{cmds:?}")
    };
    assert_eq!((*step, *with_nhcb), (300_000, false));
    assert_eq!(
        series.len(),
        4,
        "the later http definition replaces the first"
    );
    assert_eq!(series[0].labels, labels(&[("__name__", "x"), ("a", "b")]));
    assert_eq!(series[1].labels, labels(&[("__name__", "y")]));
    assert_eq!(series[2].labels, labels(&[("__name__", "z:rule:")]));
    assert_eq!(
        series[3].labels,
        labels(&[("__name__", "http"), ("instance", "1"), ("job", "a\"b")])
    );
    assert_eq!(series[3].items, [Item::Value(7.0)]);
    assert_eq!(series[3].line, 6);
}

#[test]
fn comments_end_blocks_and_st_lines_are_skipped() {
    let cmds = parse_script("load_with_nhcb 1m\n  a 1\n# a comment ends the block\n  b 2\n");
    // `b 2` after the comment is a new block start, which is no command.
    assert!(cmds.unwrap_err().message.contains("invalid command"));
    let cmds = parse_script(
        "# header\nload 1m\n\tm{t=\"x\"}@st _ -30s\n\tm{t=\"x\"} 1 2\n# next\neval instant at 1m m\n  m{t=\"x\"} 2\n\nclear\n",
    )
    .unwrap();
    assert_eq!(cmds.len(), 3);
    let Command::Load { series, line, .. } = &cmds[0] else {
        panic!()
    };
    assert_eq!((*line, series.len()), (2, 1));
    assert!(matches!(cmds[1], Command::Eval(Eval { line: 6, .. })));
    assert!(matches!(cmds[2], Command::Clear { line: 9 }));
}

#[test]
fn parses_eval_headers() {
    let e = evals(
        "eval instant at 1h5m sum by (job) (rate(x[5m]))\n\neval range from 0 to 2m step 30s foo > 2 or bar\n\neval_fail instant at 0 -{job=\"api\"}\n\neval_ordered instant at 50m sort(x)\n\neval_warn range from 0 to 1m step 1m x\n\neval_info instant at 0 y\n",
    );
    assert_eq!(e[0].kind, EvalKind::Instant { t: 3_900_000 });
    assert_eq!(e[0].expr, "sum by (job) (rate(x[5m]))");
    assert_eq!(
        e[1].kind,
        EvalKind::Range {
            start: 0,
            end: 120_000,
            step: 30_000
        }
    );
    assert_eq!(e[1].expr, "foo > 2 or bar");
    assert!(e[2].expect.fail.as_ref().is_some_and(|f| f.is_empty()));
    assert!(e[3].expect.ordered);
    assert!(matches!(e[4].expect.warn.as_slice(), [TextMatch::Any]));
    assert!(matches!(e[5].expect.info.as_slice(), [TextMatch::Any]));
    assert!(e.iter().all(|e| e.expected == Expected::Empty));
    assert!(parse_script("eval range from 2m to 0 step 1m x\n").is_err());
    assert!(parse_script("eval instant 5m x\n").is_err());
    assert!(parse_script("evaluate something\n").is_err());
}

#[test]
fn parses_expectations() {
    let e = evals(concat!(
        "eval instant at 50m foo\n",
        "  expect warn msg: PromQL warning: sort is ineffective (1:1)\n",
        "  expect warn regex: ineffective \\([0-9]+:[0-9]+\\)\n",
        "  expect no_info\n",
        "  expect ordered\n",
        "  foo{a=\"1\"} 1\n",
        "  {a=\"2\"} -Inf\n",
        "\n",
        "eval instant at 0 bar\n",
        "  expect fail msg:vector cannot contain metrics with the same labelset\n",
        "\n",
        "eval instant at 0 \"x\"\n",
        "  expect string \" x \"\n",
        "\n",
        "eval instant at 1m m[1m]\n",
        "  expect range vector from 10s to 1m step 10s\n",
        "  m 1 _ 3\n",
        "\n",
        "eval instant at 0 1\n",
        "  0x10\n",
        "\n",
        "eval_fail instant at 0 x\n",
        "  expected_fail_regexp same label ?set\n",
    ));
    let [a, b, c, d, s, f] = e.as_slice() else {
        panic!("{e:?}")
    };
    assert!(
        matches!(&a.expect.warn[0], TextMatch::Msg(m) if m == "PromQL warning: sort is ineffective (1:1)")
    );
    assert!(a.expect.warn[1].matches("sort is ineffective (12:3) here"));
    assert!(a.expect.no_info && a.expect.ordered);
    let Expected::Series(series) = &a.expected else {
        panic!()
    };
    assert_eq!(series[1].labels, labels(&[("a", "2")]));
    assert_eq!(series[1].items, [Item::Value(f64::NEG_INFINITY)]);
    assert!(
        matches!(b.expect.fail.as_deref(), Some([TextMatch::Msg(m)]) if m == "vector cannot contain metrics with the same labelset")
    );
    assert_eq!(c.expected, Expected::String(" x ".into()));
    assert_eq!(d.kind, EvalKind::Instant { t: 60_000 });
    assert_eq!(d.expect.range_vector, Some((10_000, 60_000, 10_000)));
    assert_eq!(s.expected, Expected::Scalar(16.0));
    assert!(f.expect.fail.as_ref().unwrap()[0].matches("same labelset"));
}

#[test]
fn rejects_bad_bodies() {
    for bad in [
        "eval instant at 0 x\n  expect warn\n  expect no_warn\n",
        "eval instant at 0 x\n  expect info msg: a\n  expect no_info\n",
        "eval instant at 0 x\n  expect fail\n  expect fail\n",
        "eval instant at 0 x\n  expect sometimes\n",
        "eval instant at 0 x\n  x 1 2\n",
        "eval instant at 0 x\n  x{a=~\"b\"} 1\n",
        "eval range from 0 to 1m step 1m x\n  expect range vector from 0 to 1m step 1m\n",
    ] {
        let e = parse_script(bad).unwrap_err();
        assert!(e.line >= 1, "{bad:?}: {e}");
    }
}

#[test]
fn scalar_line_ends_the_body() {
    let e = parse_script("eval instant at 0 1\n  1\n  2\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("invalid command"));
}

#[test]
fn histogram_expectations_are_flagged() {
    let e = evals("eval instant at 0 h\n  h {{schema:0 count:1}}\n");
    assert!(e[0].expects_histograms());
    let e = evals("eval instant at 0 h\n  h 1\n");
    assert!(!e[0].expects_histograms());
}
