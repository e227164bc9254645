//! Comparison rules: almost-equal edge cases, staleness markers, vector and
//! matrix matching (order, grid, sorting), errors and annotations.

use super::*;
use crate::query::promql::conformance::script::Command;
use crate::query::promql::conformance::script::{Expectations, parse_script, stale_nan};

fn eval(text: &str) -> Eval {
    match parse_script(text).unwrap().pop() {
        Some(Command::Eval(e)) => e,
        other => panic!("{other:?}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn sample(pairs: &[(&str, &str)], value: f64) -> InstantSample {
    InstantSample {
        labels: labels(pairs),
        timestamp: 0,
        value,
        histogram: None,
    }
}

fn series(pairs: &[(&str, &str)], points: &[(i64, f64)]) -> RangeSeries {
    RangeSeries {
        labels: labels(pairs),
        points: points.to_vec(),
        histograms: vec![],
    }
}

fn output(value: QueryValue) -> QueryOutput {
    QueryOutput {
        value,
        warnings: vec![],
        infos: vec![],
    }
}

#[test]
fn almost_equal_edge_cases() {
    assert!(almost_equal(1.0, 1.0));
    assert!(almost_equal(1.0, 1.0 + 1e-7));
    assert!(!almost_equal(1.0, 1.0 + 1e-5));
    assert!(almost_equal(1e300, 1e300 * (1.0 + 1e-7)));
    // Against exact zero the tolerance is ε·MIN_NORMAL: effectively exact.
    assert!(!almost_equal(0.0, 1e-300));
    assert!(almost_equal(0.0, -0.0));
    assert!(
        almost_equal(0.0, 1e-320),
        "both subnormal: below ε·MIN_NORMAL"
    );
    assert!(almost_equal(f64::INFINITY, f64::INFINITY));
    assert!(!almost_equal(f64::INFINITY, f64::NEG_INFINITY));
    assert!(!almost_equal(f64::INFINITY, f64::MAX));
    assert!(almost_equal(f64::MAX, f64::MAX));
    assert!(almost_equal(-f64::MAX, -f64::MAX * (1.0 - 1e-9)));
    assert!(almost_equal(f64::NAN, -f64::NAN));
    assert!(!almost_equal(f64::NAN, 1.0));
}

#[test]
fn stale_markers_equal_only_each_other() {
    assert!(almost_equal(stale_nan(), stale_nan()));
    assert!(!almost_equal(stale_nan(), f64::NAN));
    assert!(!almost_equal(f64::NAN, stale_nan()));
    assert!(!almost_equal(stale_nan(), 0.0));
    assert_eq!(fmt_value(stale_nan()), "stale");
}

#[test]
fn vectors_match_unordered_unless_ordered() {
    let e = eval("eval instant at 0 x\n  x{a=\"1\"} 1\n  x{a=\"2\"} 2\n");
    let got = QueryValue::Vector(vec![
        sample(&[("__name__", "x"), ("a", "2")], 2.0),
        sample(&[("__name__", "x"), ("a", "1")], 1.0000001),
    ]);
    assert_eq!(compare_value(&e, &got), Ok(()));

    let ordered = eval("eval_ordered instant at 0 x\n  x{a=\"1\"} 1\n  x{a=\"2\"} 2\n");
    let err = compare_value(&ordered, &got).unwrap_err();
    assert!(err.contains("position"), "{err}");

    let missing = QueryValue::Vector(vec![sample(&[("__name__", "x"), ("a", "1")], 1.0)]);
    let err = compare_value(&e, &missing).unwrap_err();
    assert_eq!(err, "missing series x{a=\"2\"}");

    let extra = QueryValue::Vector(vec![sample(&[("a", "1")], 1.0)]);
    let err = compare_value(&e, &extra).unwrap_err();
    assert!(err.starts_with("unexpected series {a=\"1\"}"), "{err}");

    let wrong = QueryValue::Vector(vec![
        sample(&[("__name__", "x"), ("a", "1")], 1.0),
        sample(&[("__name__", "x"), ("a", "2")], 3.0),
    ]);
    let err = compare_value(&e, &wrong).unwrap_err();
    assert!(err.contains("got 3, expected 2"), "{err}");
}

#[test]
fn empty_expectation_accepts_empty_vector_and_matrix() {
    let e = eval("eval instant at 0 x\n");
    assert_eq!(compare_value(&e, &QueryValue::Vector(vec![])), Ok(()));
    assert_eq!(compare_value(&e, &QueryValue::Matrix(vec![])), Ok(()));
    assert!(
        compare_value(
            &e,
            &QueryValue::Scalar {
                timestamp: 0,
                value: 1.0
            }
        )
        .is_err()
    );
}

#[test]
fn matrices_are_read_on_the_step_grid() {
    let e = eval(
        "eval range from 0 to 2m step 1m foo > 2 or bar\n  foo{job=\"1\"} _ 3 5\n  bar{job=\"2\"} 1 3 5\n",
    );
    let good = QueryValue::Matrix(vec![
        series(
            &[("__name__", "bar"), ("job", "2")],
            &[(0, 1.0), (60_000, 3.0), (120_000, 5.0)],
        ),
        series(
            &[("__name__", "foo"), ("job", "1")],
            &[(60_000, 3.0), (120_000, 5.0)],
        ),
    ]);
    assert_eq!(compare_value(&e, &good), Ok(()));

    let QueryValue::Matrix(mut unsorted) = good.clone() else {
        unreachable!()
    };
    unsorted.reverse();
    let err = compare_value(&e, &QueryValue::Matrix(unsorted)).unwrap_err();
    assert!(err.contains("not sorted"), "{err}");

    let shifted = QueryValue::Matrix(vec![
        series(
            &[("__name__", "bar"), ("job", "2")],
            &[(0, 1.0), (60_000, 3.0), (120_000, 5.0)],
        ),
        series(
            &[("__name__", "foo"), ("job", "1")],
            &[(0, 3.0), (120_000, 5.0)],
        ),
    ]);
    let err = compare_value(&e, &shifted).unwrap_err();
    assert!(err.contains("expected t=60s"), "{err}");

    let short = QueryValue::Matrix(vec![series(
        &[("__name__", "bar"), ("job", "2")],
        &[(0, 1.0)],
    )]);
    let err = compare_value(&e, &short).unwrap_err();
    assert!(err.contains("got 1 points"), "{err}");

    let too_long = eval("eval range from 0 to 1m step 1m x\n  x 1 2 3\n");
    let err = compare_value(
        &too_long,
        &QueryValue::Matrix(vec![series(&[("__name__", "x")], &[(0, 1.0)])]),
    )
    .unwrap_err();
    assert!(err.contains("more than the query's steps"), "{err}");
}

#[test]
fn range_vector_expectation_uses_its_grid() {
    let e = eval(
        "eval instant at 3m m[3m]\n  expect range vector from 1m to 3m step 60s\n  m{} 1 _ 3\n",
    );
    let got = QueryValue::Matrix(vec![series(
        &[("__name__", "m")],
        &[(60_000, 1.0), (180_000, 3.0)],
    )]);
    assert_eq!(compare_value(&e, &got), Ok(()));
    assert!(compare_value(&e, &QueryValue::Vector(vec![])).is_err());
    assert!(!range_recheck_applies(&e));
}

#[test]
fn scalars_and_strings() {
    let e = eval("eval instant at 0 1/0\n  +Inf\n");
    let inf = QueryValue::Scalar {
        timestamp: 0,
        value: f64::INFINITY,
    };
    assert_eq!(compare_value(&e, &inf), Ok(()));
    assert!(compare_value(&e, &QueryValue::Vector(vec![sample(&[], f64::INFINITY)])).is_err());
    let s = eval("eval instant at 0 \"Foo\"\n  expect string `Foo`\n");
    let foo = QueryValue::String {
        timestamp: 0,
        value: "Foo".into(),
    };
    assert_eq!(compare_value(&s, &foo), Ok(()));
    assert!(compare_value(&e, &foo).is_err());
    assert!(!range_recheck_applies(&s));
}

#[test]
fn failure_expectations() {
    let exact = eval(
        "eval instant at 0 x\n  expect fail msg: vector cannot contain metrics with the same labelset\n",
    );
    let err: Result<QueryOutput, PromError> = Err(PromError::Execution(
        "vector cannot contain metrics with the same labelset".into(),
    ));
    assert!(matches!(check_error(&exact, &err), Ok(None)));
    let other: Result<QueryOutput, PromError> = Err(PromError::Execution("boom".into()));
    assert!(check_error(&exact, &other).is_err());

    let regex = eval("eval instant at 0 x\n  expect fail regex: same labelset$\n");
    assert!(matches!(check_error(&regex, &err), Ok(None)));

    let any = eval("eval_fail instant at 0 x\n");
    assert!(matches!(check_error(&any, &other), Ok(None)));
    let ok = Ok(output(QueryValue::Vector(vec![])));
    assert!(
        check_error(&any, &ok)
            .unwrap_err()
            .contains("expected an error")
    );

    let plain = eval("eval instant at 0 x\n");
    assert_eq!(check_error(&plain, &other).unwrap_err(), "error: boom");
    assert!(matches!(check_error(&plain, &ok), Ok(Some(_))));
    assert!(!range_recheck_applies(&any));
    assert!(range_recheck_applies(&plain));
}

#[test]
fn annotations_are_matched_both_ways() {
    let mut out = output(QueryValue::Vector(vec![]));
    out.warnings = vec!["PromQL warning: a (1:1)".into()];
    let warn = eval("eval instant at 0 x\n  expect warn regex: warning: a\n");
    assert_eq!(check_annotations(&warn, &out), Ok(()));

    out.warnings.push("PromQL warning: b (1:5)".into());
    let err = check_annotations(&warn, &out).unwrap_err();
    assert!(
        err.contains("unexpected warning: PromQL warning: b"),
        "{err}"
    );

    let legacy = eval("eval_warn instant at 0 x\n");
    assert_eq!(check_annotations(&legacy, &out), Ok(()));
    let no = eval("eval instant at 0 x\n  expect no_warn\n");
    assert!(check_annotations(&no, &out).is_err());
    let silent = eval("eval instant at 0 x\n");
    assert_eq!(check_annotations(&silent, &out), Ok(()));

    let info = eval("eval instant at 0 x\n  expect info\n");
    assert_eq!(
        check_annotations(&info, &out).unwrap_err(),
        "expected a info, got none"
    );
    let two = eval(
        "eval instant at 0 x\n  expect warn msg: PromQL warning: a (1:1)\n  expect warn msg: PromQL warning: c (1:1)\n",
    );
    assert!(
        check_annotations(&two, &out)
            .unwrap_err()
            .contains("no warning matches")
    );
    let _ = Expectations::default();
}

#[test]
fn range_recheck_reads_the_points_at_t() {
    let e = eval("eval instant at 1m x\n  x{a=\"1\"} 2\n");
    let instant = QueryValue::Vector(vec![sample(&[("__name__", "x"), ("a", "1")], 2.0)]);
    let range = Ok(output(QueryValue::Matrix(vec![series(
        &[("__name__", "x"), ("a", "1")],
        &[(0, 1.0), (60_000, 2.0), (120_000, 3.0)],
    )])));
    assert_eq!(check_range_recheck(&e, 60_000, &instant, &range), Ok(()));

    let off = Ok(output(QueryValue::Matrix(vec![series(
        &[("__name__", "x"), ("a", "1")],
        &[(0, 1.0), (120_000, 3.0)],
    )])));
    let err = check_range_recheck(&e, 60_000, &instant, &off).unwrap_err();
    assert_eq!(err, "range mode: missing series x{a=\"1\"}");

    let failed: Result<QueryOutput, PromError> = Err(PromError::Execution("nope".into()));
    assert!(check_range_recheck(&e, 60_000, &instant, &failed).is_err());

    let scalar = eval("eval instant at 1m time()\n  60\n");
    let instant = QueryValue::Scalar {
        timestamp: 60_000,
        value: 60.0,
    };
    let range = Ok(output(QueryValue::Matrix(vec![series(
        &[],
        &[(0, 0.0), (60_000, 60.0), (120_000, 120.0)],
    )])));
    assert_eq!(
        check_range_recheck(&scalar, 60_000, &instant, &range),
        Ok(())
    );
}
