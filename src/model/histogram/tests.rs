//! The float histogram tests; expected values are copied verbatim from
//! Prometheus' tests.
#![allow(clippy::approx_constant, clippy::type_complexity)]
use super::*;

fn sp(offset: i32, length: u32) -> Span {
    Span { offset, length }
}

fn lit(s: &str) -> FloatHistogram {
    parse_test_literal(s)
        .unwrap_or_else(|e| panic!("parse {s:?}: {e}"))
        .0
}

/// promqltest-style float comparison (relative 1e-6, NaN == NaN).
fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        almost_equal(got, want, DEFAULT_TEST_EPSILON),
        "{what}: got {got:?}, want {want:?}"
    );
}

// ---- parse_test_literal ------------------------------------------------

#[test]
fn parse_literal_all_keys() {
    let (h, hint) = parse_test_literal(
        "schema:1 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 1] offset:1 n_buckets:[1] n_offset:-2 counter_reset_hint:gauge",
    )
    .unwrap();
    assert!(hint);
    assert_eq!(h.schema, 1);
    assert_eq!(
        (h.sum, h.count, h.zero_count, h.zero_threshold),
        (5.0, 4.0, 1.0, 0.001)
    );
    assert_eq!(h.positive_spans, vec![sp(1, 3)]);
    assert_eq!(h.positive_buckets, vec![1.0, 2.0, 1.0]);
    assert_eq!(h.negative_spans, vec![sp(-2, 1)]);
    assert_eq!(h.negative_buckets, vec![1.0]);
    assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);

    let (h, hint) = parse_test_literal("").unwrap();
    assert!(!hint);
    assert_eq!(h, FloatHistogram::default());

    let (h, _) =
        parse_test_literal("  custom_values:[5 10]  schema:-53 buckets:[ 1  2 ] ").unwrap();
    assert_eq!(h.schema, CUSTOM_BUCKETS_SCHEMA);
    assert_eq!(h.custom_values, vec![5.0, 10.0]);
    assert_eq!(h.positive_buckets, vec![1.0, 2.0]);

    let (h, _) = parse_test_literal("buckets:[] n_buckets:[] offset:3").unwrap();
    assert!(h.positive_spans.is_empty() && h.negative_spans.is_empty());

    let (h, _) =
        parse_test_literal("sum:NaN count:+Inf z_bucket:-inf buckets:[0x10 010 1e3 -2.5 .5]")
            .unwrap();
    assert!(h.sum.is_nan());
    assert_eq!(h.count, f64::INFINITY);
    assert_eq!(h.zero_count, f64::NEG_INFINITY);
    assert_eq!(h.positive_buckets, vec![16.0, 8.0, 1000.0, -2.5, 0.5]);

    for (s, want) in [
        ("counter_reset_hint:reset", CounterResetHint::CounterReset),
        (
            "counter_reset_hint:not_reset",
            CounterResetHint::NotCounterReset,
        ),
        ("counter_reset_hint:unknown", CounterResetHint::Unknown),
    ] {
        assert_eq!(
            parse_test_literal(s).unwrap(),
            (
                FloatHistogram {
                    counter_reset_hint: want,
                    ..Default::default()
                },
                true
            )
        );
    }
}

#[test]
fn parse_literal_errors() {
    for bad in [
        "schema:0 schema:1",        // duplicate
        "sum:1 sum:1",              // duplicate
        "foo:1",                    // unknown key
        "schema:1.5",               // schema must be an int
        "schema:+1",                // int has no '+'
        "sum:abc",                  // bad number
        "z_bucket_w:-1",            // unsigned number
        "buckets:[1 2",             // unclosed
        "buckets:[1 x]",            // bad element
        "buckets:[1]offset:1",      // missing space
        "counter_reset_hint:maybe", // unknown hint
        "sum:",                     // missing value
        "sum 1",                    // no colon
        "offset:99999999999",       // out of i32
        "sum:--1",                  // double sign
    ] {
        assert!(parse_test_literal(bad).is_err(), "{bad:?} should fail");
    }
    assert_eq!(
        parse_test_literal("count:1 count:2").unwrap_err(),
        "duplicate key \"count\" in histogram"
    );
}

// ---- encode / decode -------------------------------------------------

fn sample_histograms() -> Vec<FloatHistogram> {
    let mut stale = lit(
        "schema:3 sum:1 count:3 z_bucket:1 z_bucket_w:0.25 buckets:[1 0 1] offset:-5 n_buckets:[1]",
    );
    stale.sum = f64::from_bits(STALE_NAN_BITS);
    stale.positive_spans.push(sp(7, 0));
    vec![
        FloatHistogram::default(),
        lit(
            "schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1] counter_reset_hint:not_reset",
        ),
        lit(
            "schema:-4 sum:-1e300 count:1e-300 n_buckets:[1.5 2.5] n_offset:-2147483648 counter_reset_hint:gauge",
        ),
        stale,
    ]
}

#[test]
fn encode_decode_round_trip() {
    for h in sample_histograms() {
        let mut buf = vec![0xAA]; // encode appends
        h.encode(&mut buf);
        let got = FloatHistogram::decode(&buf[1..]).unwrap();
        // Bit-exact comparison (PartialEq would fail for NaN).
        let mut again = Vec::new();
        got.encode(&mut again);
        assert_eq!(&buf[1..], &again[..]);
        assert_eq!(got.sum.to_bits(), h.sum.to_bits());
        assert_eq!(got.positive_spans, h.positive_spans);
        assert_eq!(got.negative_spans, h.negative_spans);
        assert_eq!(got.counter_reset_hint, h.counter_reset_hint);
        assert_eq!(got.custom_values, h.custom_values);
        if !h.sum.is_nan() {
            assert_eq!(got, h);
        }
    }
}

#[test]
fn decode_rejects_garbage() {
    for h in sample_histograms() {
        let mut buf = Vec::new();
        h.encode(&mut buf);
        for cut in 0..buf.len() {
            assert!(
                FloatHistogram::decode(&buf[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let mut trailing = buf.clone();
        trailing.push(0);
        assert!(FloatHistogram::decode(&trailing).is_err());
        let mut bad_version = buf.clone();
        bad_version[0] = 9;
        assert!(FloatHistogram::decode(&bad_version).is_err());
        let mut bad_hint = buf.clone();
        bad_hint[1] = 4;
        assert!(FloatHistogram::decode(&bad_hint).is_err());
        // Flip every byte: must never panic (may or may not decode).
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0xff;
            if let Ok(g) = FloatHistogram::decode(&b) {
                // Whatever decodes must survive the operations too.
                exercise(&g);
            }
        }
    }
    // Huge declared lengths must not allocate or panic.
    let mut huge = vec![ENCODING_VERSION, 0, 0];
    huge.extend_from_slice(&[0u8; 32]);
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(FloatHistogram::decode(&huge).is_err());
    // Overlong varint.
    let mut overlong = vec![ENCODING_VERSION, 0];
    overlong.extend_from_slice(&[0xff; 11]);
    assert!(FloatHistogram::decode(&overlong).is_err());
    // Pseudo-random inputs.
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for len in 0..400 {
        let mut b = vec![ENCODING_VERSION];
        for _ in 0..len % 97 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b.push(seed as u8);
        }
        if let Ok(g) = FloatHistogram::decode(&b) {
            exercise(&g);
        }
    }
    let e = FloatHistogram::decode(&[]).unwrap_err();
    assert!(e.to_string().starts_with("invalid histogram encoding"));
}

/// Runs every operation on a possibly malformed histogram; must not panic.
fn exercise(h: &FloatHistogram) {
    let _ = h.validate();
    let _ = h.to_prom_string();
    let _ = h.api_buckets();
    let _ = h.to_test_expression();
    let _ = histogram_quantile(0.3, h);
    let _ = histogram_quantile(0.7, h);
    let _ = histogram_fraction(-1.0, 1.0, h);
    let _ = histogram_stddev(h);
    let _ = h.detect_reset(h);
    let _ = h.detect_reset(&FloatHistogram::default());
    let mut c = h.clone();
    let _ = c.add(h);
    let _ = c.sub(&lit("schema:0 z_bucket_w:0.5 buckets:[1 2]"));
    c.compact(2);
    c.reduce_resolution(-4);
    c.mul(-2.0);
    c.div(0.0);
    let _ = h.equals_for_test(&c, true);
}

#[test]
fn malformed_histograms_do_not_panic() {
    let weird = [
        FloatHistogram {
            positive_spans: vec![sp(0, 5)],
            positive_buckets: vec![1.0],
            ..Default::default()
        },
        FloatHistogram {
            positive_spans: vec![sp(0, 1)],
            positive_buckets: vec![1.0, 2.0, 3.0],
            count: 6.0,
            ..Default::default()
        },
        FloatHistogram {
            positive_spans: vec![sp(i32::MAX, 2), sp(-5, 2)],
            positive_buckets: vec![1.0; 4],
            count: 4.0,
            ..Default::default()
        },
        FloatHistogram {
            schema: 40,
            positive_spans: vec![sp(3, 2)],
            positive_buckets: vec![1.0; 2],
            count: 2.0,
            ..Default::default()
        },
        FloatHistogram {
            schema: i32::MIN,
            negative_spans: vec![sp(-3, 2)],
            negative_buckets: vec![1.0; 2],
            count: 2.0,
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: vec![sp(0, 9)],
            positive_buckets: vec![1.0; 9],
            custom_values: vec![1.0],
            zero_count: 3.0,
            count: 12.0,
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: f64::NAN,
            zero_count: 1.0,
            count: 1.0,
            positive_spans: vec![sp(0, 1)],
            positive_buckets: vec![f64::NAN],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: f64::INFINITY,
            count: 1.0,
            positive_spans: vec![sp(0, 1)],
            positive_buckets: vec![1.0],
            ..Default::default()
        },
    ];
    for h in &weird {
        exercise(h);
        for other in &weird {
            let mut c = h.clone();
            let _ = c.add(other);
            let _ = h.detect_reset(other);
        }
    }
}

// ---- add / sub ---------------------------------------------------------

struct AddCase {
    name: &'static str,
    in1: FloatHistogram,
    in2: FloatHistogram,
    expected: Option<FloatHistogram>,
    err: Option<&'static str>,
    collision: bool,
    reconciled: bool,
}

fn check_op(
    c: &AddCase,
    a: &FloatHistogram,
    b: &FloatHistogram,
    expected: Option<&FloatHistogram>,
    subtract: bool,
) {
    let mut res = a.clone();
    let out = if subtract {
        res.sub_ext(b)
    } else {
        res.add_ext(b)
    };
    match (&out, c.err) {
        (Err(e), Some(msg)) => assert_eq!(e.to_string(), msg, "{}", c.name),
        (Err(e), None) => panic!("{}: unexpected error {e}", c.name),
        (Ok(_), Some(msg)) => panic!("{}: expected error {msg}", c.name),
        (Ok(o), None) => {
            assert_eq!(
                o.counter_reset_collision, c.collision,
                "{}: collision",
                c.name
            );
            assert_eq!(
                o.nhcb_bounds_reconciled, c.reconciled,
                "{}: reconciled",
                c.name
            );
        }
    }
    if let Some(exp) = expected {
        let mut exp = exp.clone();
        exp.compact(0);
        res.compact(0);
        assert_eq!(
            res,
            exp,
            "{} ({})",
            c.name,
            if subtract { "sub" } else { "add" }
        );
    }
}

/// All cases of Prometheus' `TestFloatHistogramAdd`, in both operand orders.
#[test]
fn add_prometheus_cases() {
    #[rustfmt::skip]
    let cases = vec![
    AddCase { name: "same bucket layout", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.01, zero_count: 19.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![4.0, 2.0, 9.0, 10.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "same bucket layout, defined differently", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(1, 1), sp(0, 2)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(-2, 2), sp(1, 2), sp(0, 1)], positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0], negative_spans: vec![sp(3, 7)], negative_buckets: vec![1.0, 1.0, 0.0, 0.0, 0.0, 4.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.01, zero_count: 19.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-2, 2), sp(1, 1), sp(0, 2)], positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0], negative_spans: vec![sp(3, 5), sp(0, 2)], negative_buckets: vec![4.0, 2.0, 0.0, 0.0, 0.0, 9.0, 10.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "non-overlapping spans", in1: FloatHistogram { zero_threshold: 0.001, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.001, zero_count: 8.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(0, 2), sp(3, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0], negative_spans: vec![sp(-9, 2), sp(3, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.001, zero_count: 19.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-2, 4), sp(0, 6)], positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0], negative_spans: vec![sp(-9, 2), sp(3, 2), sp(5, 2), sp(3, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0, 3.0, 1.0, 5.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "non-overlapping spans inverted order", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(0, 2), sp(3, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0], negative_spans: vec![sp(-6, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.01, zero_count: 19.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-2, 2), sp(0, 5), sp(0, 3)], positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0], negative_spans: vec![sp(-6, 2), sp(1, 2), sp(4, 2), sp(3, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0, 3.0, 1.0, 5.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "overlapping spans", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(-1, 4), sp(0, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0], negative_spans: vec![sp(4, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.01, zero_count: 19.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-2, 4), sp(0, 4)], positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "overlapping spans inverted order", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(-1, 4), sp(0, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0], negative_spans: vec![sp(4, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.01, zero_count: 19.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-2, 5), sp(0, 3)], positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "schema change", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 21.0, sum: 1.234, schema: 0, positive_spans: vec![sp(-1, 4), sp(0, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0], negative_spans: vec![sp(4, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, schema: 1, positive_spans: vec![sp(-4, 3), sp(5, 5)], positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0], negative_spans: vec![sp(6, 3), sp(6, 4)], negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.01, zero_count: 19.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-2, 5), sp(0, 3)], positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "larger zero bucket in first histogram", in1: FloatHistogram { zero_threshold: 1.0, zero_count: 17.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(1, 2), sp(0, 3)], positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0], negative_spans: vec![sp(4, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 1.0, zero_count: 29.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(1, 2), sp(0, 3)], positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "larger zero bucket in second histogram", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 1.0, zero_count: 17.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(1, 2), sp(0, 3)], positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0], negative_spans: vec![sp(4, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 1.0, zero_count: 29.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(1, 5)], positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "larger zero threshold in first histogram ends up inside a populated bucket of second histogram", in1: FloatHistogram { zero_threshold: 0.2, zero_count: 17.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(1, 2), sp(0, 3)], positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0], negative_spans: vec![sp(4, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.25, zero_count: 29.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-1, 1), sp(1, 5)], positive_buckets: vec![0.0, 2.0, 6.0, 10.0, 9.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "larger zero threshold in second histogram ends up inside a populated bucket of first histogram", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, positive_spans: vec![sp(-2, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.2, zero_count: 17.0, count: 21.0, sum: 1.234, positive_spans: vec![sp(1, 2), sp(0, 3)], positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0], negative_spans: vec![sp(4, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.25, zero_count: 29.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(1, 5)], positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "schema change combined with larger zero bucket in second histogram", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 21.0, sum: 1.234, schema: 0, positive_spans: vec![sp(-2, 5), sp(0, 3)], positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0], negative_spans: vec![sp(4, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.25, zero_count: 12.0, count: 30.0, sum: 2.345, schema: 1, positive_spans: vec![sp(-3, 2), sp(5, 5)], positive_buckets: vec![1.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0], negative_spans: vec![sp(6, 3), sp(6, 4)], negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.25, zero_count: 22.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-1, 7)], positive_buckets: vec![6.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "schema change combined with larger zero bucket in first histogram", in1: FloatHistogram { zero_threshold: 0.25, zero_count: 8.0, count: 21.0, sum: 1.234, schema: 0, positive_spans: vec![sp(-1, 4), sp(0, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0], negative_spans: vec![sp(4, 2), sp(1, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 2.345, schema: 1, positive_spans: vec![sp(-4, 3), sp(5, 5)], positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0], negative_spans: vec![sp(6, 3), sp(6, 4)], negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.25, zero_count: 20.0, count: 51.0, sum: 3.579, positive_spans: vec![sp(-1, 4), sp(0, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "same custom bucket layout", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 15.0, sum: 2.345, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 11.0, sum: 1.234, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 26.0, sum: 3.579, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "same custom bucket layout, defined differently", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 15.0, sum: 2.345, positive_spans: vec![sp(0, 2), sp(1, 1), sp(0, 2)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 11.0, sum: 1.234, positive_spans: vec![sp(0, 2), sp(1, 2), sp(0, 1)], positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 26.0, sum: 3.579, positive_spans: vec![sp(0, 2), sp(1, 1), sp(0, 2)], positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "non-overlapping spans with custom buckets", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 15.0, sum: 2.345, positive_spans: vec![sp(0, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 20.0, sum: 1.234, positive_spans: vec![sp(2, 2), sp(3, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 35.0, sum: 3.579, positive_spans: vec![sp(0, 4), sp(0, 6)], positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "non-overlapping spans inverted order with custom buckets", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 20.0, sum: 1.234, positive_spans: vec![sp(2, 2), sp(3, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 15.0, sum: 2.345, positive_spans: vec![sp(0, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 35.0, sum: 3.579, positive_spans: vec![sp(0, 4), sp(0, 6)], positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "overlapping spans with custom buckets", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 15.0, sum: 2.345, positive_spans: vec![sp(0, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 27.0, sum: 1.234, positive_spans: vec![sp(1, 4), sp(0, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 42.0, sum: 3.579, positive_spans: vec![sp(0, 4), sp(0, 4)], positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "overlapping spans inverted order with custom buckets", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 27.0, sum: 1.234, positive_spans: vec![sp(1, 4), sp(0, 3)], positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 15.0, sum: 2.345, positive_spans: vec![sp(0, 2), sp(2, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 42.0, sum: 3.579, positive_spans: vec![sp(0, 4), sp(0, 4)], positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "custom buckets with partial intersection", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 10.0, sum: 100.0, positive_spans: vec![sp(0, 3)], positive_buckets: vec![2.0, 3.0, 5.0], custom_values: vec![1.0, 2.5], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 8.0, sum: 80.0, positive_spans: vec![sp(0, 4)], positive_buckets: vec![1.0, 2.0, 3.0, 2.0], custom_values: vec![1.0, 2.0, 3.0], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 18.0, sum: 180.0, positive_spans: vec![sp(0, 2)], positive_buckets: vec![3.0, 15.0], custom_values: vec![1.0], ..Default::default() }), err: None, collision: false, reconciled: true },
    AddCase { name: "different custom bucket layout - intersection and rollup", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 6.0, sum: 2.345, positive_spans: vec![sp(0, 1), sp(1, 1)], positive_buckets: vec![1.0, 5.0], custom_values: vec![2.0, 4.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 220.0, sum: 1.234, positive_spans: vec![sp(0, 2), sp(1, 1), sp(0, 2)], positive_buckets: vec![10.0, 20.0, 40.0, 50.0, 100.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 226.0, sum: 3.579, positive_spans: vec![sp(0, 3)], positive_buckets: vec![1.0 + 10.0 + 20.0, 40.0, 5.0 + 50.0 + 100.0], custom_values: vec![2.0, 4.0], ..Default::default() }), err: None, collision: false, reconciled: true },
    AddCase { name: "custom buckets with no common boundaries except +Inf", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3.0, sum: 50.0, positive_spans: vec![sp(0, 2)], positive_buckets: vec![1.0, 2.0], custom_values: vec![1.5], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 30.0, sum: 40.0, positive_spans: vec![sp(0, 2)], positive_buckets: vec![10.0, 20.0], custom_values: vec![2.5], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 33.0, sum: 90.0, positive_spans: vec![sp(0, 1)], positive_buckets: vec![1.0 + 2.0 + 10.0 + 20.0], ..Default::default() }), err: None, collision: false, reconciled: true },
    AddCase { name: "mix exponential and custom buckets histograms", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 59.0, sum: 1.234, schema: 0, positive_spans: vec![sp(-2, 5), sp(0, 3)], positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 11.0, sum: 12.0, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, expected: None, err: Some("cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"), collision: false, reconciled: false },
    AddCase { name: "warn on counter reset hint collision", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, counter_reset_hint: CounterResetHint::CounterReset, ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, counter_reset_hint: CounterResetHint::NotCounterReset, ..Default::default() }, expected: None, err: None, collision: true, reconciled: false },
    ];
    assert_eq!(cases.len(), 24);
    for c in &cases {
        check_op(c, &c.in1, &c.in2, c.expected.as_ref(), false);
        check_op(c, &c.in2, &c.in1, c.expected.as_ref(), false);
    }
}

/// All cases of Prometheus' `TestFloatHistogramSub`; the reversed order
/// must yield the negated result (with the original hint).
#[test]
fn sub_prometheus_cases() {
    #[rustfmt::skip]
    let cases = vec![
    AddCase { name: "same bucket layout", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 11.0, count: 30.0, sum: 23.0, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.0, 1.0, 5.0, 6.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 21.0, sum: 12.0, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![1.0, 1.0, 4.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.01, zero_count: 3.0, count: 9.0, sum: 11.0, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 1.0, 1.0, 1.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![2.0, 0.0, 1.0, 2.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "schema change", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 59.0, sum: 1.234, schema: 0, positive_spans: vec![sp(-2, 5), sp(0, 3)], positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0], ..Default::default() }, in2: FloatHistogram { zero_threshold: 0.01, zero_count: 2.0, count: 19.0, sum: 0.345, schema: 1, positive_spans: vec![sp(-4, 3), sp(5, 5)], positive_buckets: vec![1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 4.0], negative_spans: vec![sp(6, 3), sp(6, 4)], negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0], ..Default::default() }, expected: Some(FloatHistogram { zero_threshold: 0.01, zero_count: 6.0, count: 40.0, sum: 0.889, positive_spans: vec![sp(-2, 5), sp(0, 3)], positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 2.0, 2.0, 0.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![1.0, 9.0, 1.0, 4.0, 9.0, 1.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "same custom bucket layout", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 15.0, sum: 23.0, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 11.0, sum: 12.0, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 4.0, sum: 11.0, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 1.0, 1.0, 1.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }), err: None, collision: false, reconciled: false },
    AddCase { name: "different custom bucket layout - with intersection and rollup", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 220.0, sum: 9.9, positive_spans: vec![sp(0, 2), sp(1, 1), sp(0, 2)], positive_buckets: vec![10.0, 20.0, 40.0, 50.0, 100.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0], counter_reset_hint: CounterResetHint::Gauge, ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 6.0, sum: 4.4, positive_spans: vec![sp(0, 1), sp(1, 1)], positive_buckets: vec![1.0, 5.0], custom_values: vec![2.0, 4.0], counter_reset_hint: CounterResetHint::Gauge, ..Default::default() }, expected: Some(FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 214.0, sum: 5.5, positive_spans: vec![sp(0, 3)], positive_buckets: vec![10.0 + 20.0 - 1.0, 40.0, 50.0 + 100.0 - 5.0], custom_values: vec![2.0, 4.0], counter_reset_hint: CounterResetHint::Gauge, ..Default::default() }), err: None, collision: false, reconciled: true },
    AddCase { name: "mix exponential and custom buckets histograms", in1: FloatHistogram { zero_threshold: 0.01, zero_count: 8.0, count: 59.0, sum: 1.234, schema: 0, positive_spans: vec![sp(-2, 5), sp(0, 3)], positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0], negative_spans: vec![sp(3, 3), sp(1, 3)], negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0], ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 11.0, sum: 12.0, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], ..Default::default() }, expected: None, err: Some("cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"), collision: false, reconciled: false },
    AddCase { name: "warn on counter reset hint collision", in1: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, counter_reset_hint: CounterResetHint::CounterReset, ..Default::default() }, in2: FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, counter_reset_hint: CounterResetHint::NotCounterReset, ..Default::default() }, expected: None, err: None, collision: true, reconciled: false },
    ];
    for c in &cases {
        check_op(c, &c.in1, &c.in2, c.expected.as_ref(), true);
        let negated = c.expected.as_ref().map(|e| {
            let mut n = e.clone();
            n.mul(-1.0);
            n.counter_reset_hint = e.counter_reset_hint;
            n
        });
        check_op(c, &c.in2, &c.in1, negated.as_ref(), true);
    }
}

#[test]
fn add_promqltest_series() {
    // native_histograms.test: low_res_histogram.
    let mut h = lit("schema:-1 sum:4 count:1 buckets:[1] offset:1");
    h.add(&lit("schema:0 sum:4 count:4 buckets:[2 2] offset:1"))
        .unwrap();
    assert!(h.equals_for_test(&lit("schema:-1 count:5 sum:8 offset:1 buckets:[5]"), false));

    // incr_histogram after 10 increments.
    let mut h = lit("schema:0 sum:4 count:4 buckets:[1 2 1]");
    let inc = lit("sum:2 count:1 buckets:[1] offset:1");
    for _ in 0..10 {
        h.add(&inc).unwrap();
    }
    assert!(h.equals_for_test(&lit("count:14 sum:24 buckets:[1 12 1]"), false));

    // Mismatched custom bounds reconcile to their intersection.
    let mut h = lit("schema:-53 sum:1 count:1 custom_values:[10] buckets:[1]");
    let o = h
        .add_ext(&lit(
            "schema:-53 sum:1 count:1 custom_values:[2 10] buckets:[1]",
        ))
        .unwrap();
    assert!(o.nhcb_bounds_reconciled);
    assert!(h.equals_for_test_eps(
        &lit("schema:-53 count:2 sum:2 custom_values:[10] buckets:[2]"),
        false,
        0.0
    ));
    let mut h = lit("schema:-53 sum:1 count:1 custom_values:[5 10] buckets:[1]");
    h.add(&lit(
        "schema:-53 sum:1 count:1 custom_values:[5] buckets:[1]",
    ))
    .unwrap();
    h.add(&lit(
        "schema:-53 sum:1 count:1 custom_values:[5 10] buckets:[1]",
    ))
    .unwrap();
    assert!(h.equals_for_test_eps(
        &lit("schema:-53 count:3 sum:3 custom_values:[5] buckets:[3]"),
        false,
        0.0
    ));

    // Mixing schemas is an error.
    let mut h = lit("sum:1 count:1 buckets:[1]");
    let err = h.add(&lit("schema:-53 custom_values:[1]")).unwrap_err();
    assert_eq!(err, HistogramError::IncompatibleSchema);
    assert_eq!(
        err.to_string(),
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    );
    // Inconsistent spans are refused instead of panicking.
    let bad = FloatHistogram {
        positive_spans: vec![sp(0, 3)],
        positive_buckets: vec![1.0],
        ..Default::default()
    };
    assert!(matches!(
        h.add(&bad),
        Err(HistogramError::SpansBucketsMismatch { .. })
    ));
}

#[test]
fn add_widens_zero_bucket() {
    // Bucket (0.25,0.5] falls into the wider zero bucket of the other histogram.
    for other in [
        "z_bucket_w:0.5 z_bucket:2 count:2",
        "z_bucket_w:0.3 z_bucket:2 count:2",
    ] {
        let mut h = lit("z_bucket_w:0.001 z_bucket:1 count:3 buckets:[1 1] offset:-1");
        h.add(&lit(other)).unwrap();
        assert_eq!(h.zero_threshold, 0.5, "{other}");
        assert_eq!(h.zero_count, 4.0);
        assert_eq!(h.count, 5.0);
        h.compact(0);
        assert_eq!(h.positive_spans, vec![sp(0, 1)]);
        assert_eq!(h.positive_buckets, vec![1.0]);
    }
}

#[test]
fn sub_then_compact_is_empty() {
    let a = lit(
        "schema:1 count:12 sum:18.4 z_bucket:2 z_bucket_w:0.001 buckets:[1 2 0 1 1] n_buckets:[1 2 0 1 1]",
    );
    let mut d = a.clone();
    d.sub(&a).unwrap();
    d.compact(0);
    assert!(d.equals_for_test_eps(&lit("schema:1 z_bucket_w:0.001"), true, 0.0));
    assert_eq!((d.count, d.sum, d.zero_count), (0.0, 0.0, 0.0));
}

// ---- mul / div -----------------------------------------------------------

#[test]
fn mul_div() {
    let mut h = lit("sum:4 count:4 z_bucket:2 buckets:[1 1] n_buckets:[0]");
    h.mul(2.5);
    assert_eq!((h.sum, h.count, h.zero_count), (10.0, 10.0, 5.0));
    assert_eq!(h.positive_buckets, vec![2.5, 2.5]);
    assert_eq!(h.counter_reset_hint, CounterResetHint::Unknown);
    h.mul(-1.0);
    assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);
    assert_eq!(h.positive_buckets, vec![-2.5, -2.5]);

    let mut h = lit("sum:4 count:4 z_bucket:2 buckets:[1 1] counter_reset_hint:reset");
    h.div(2.0);
    assert_eq!((h.sum, h.count, h.zero_count), (2.0, 2.0, 1.0));
    assert_eq!(h.positive_buckets, vec![0.5, 0.5]);
    h.div(-1.0);
    assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);

    let mut h = lit("sum:-4 count:4 buckets:[1 1] counter_reset_hint:reset");
    h.div(0.0);
    assert_eq!((h.sum, h.count), (f64::NEG_INFINITY, f64::INFINITY));
    assert!(h.zero_count.is_nan()); // 0/0
    assert!(h.positive_buckets.is_empty() && h.positive_spans.is_empty());
    assert_eq!(h.counter_reset_hint, CounterResetHint::CounterReset);
}

// ---- compact -------------------------------------------------------------

/// All cases of Prometheus' `TestFloatHistogramCompact`.
#[test]
fn compact_prometheus_cases() {
    #[rustfmt::skip]
    let cases: Vec<(&str, FloatHistogram, usize, FloatHistogram)> = vec![
    ("empty histogram", FloatHistogram { ..Default::default() }, 0, FloatHistogram { ..Default::default() }),
    ("nothing should happen", FloatHistogram { positive_spans: vec![sp(-2, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-2, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }),
    ("eliminate zero offsets", FloatHistogram { positive_spans: vec![sp(-2, 1), sp(0, 3), sp(0, 1)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(0, 2), sp(2, 1), sp(0, 1)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-2, 5)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 4), sp(2, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0], ..Default::default() }),
    ("eliminate zero length", FloatHistogram { positive_spans: vec![sp(-2, 2), sp(2, 0), sp(3, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(0, 0), sp(2, 0), sp(1, 4)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-2, 2), sp(5, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 4)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0], ..Default::default() }),
    ("eliminate multiple zero length spans", FloatHistogram { positive_spans: vec![sp(-2, 2), sp(2, 0), sp(2, 0), sp(2, 0), sp(3, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-2, 2), sp(9, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], ..Default::default() }),
    ("cut empty buckets at start or end", FloatHistogram { positive_spans: vec![sp(-4, 4), sp(5, 3)], positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 5)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-2, 2), sp(5, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 4)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0], ..Default::default() }),
    ("cut empty buckets at start and end", FloatHistogram { positive_spans: vec![sp(-4, 4), sp(5, 6)], positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0], negative_spans: vec![sp(-2, 4), sp(3, 5)], negative_buckets: vec![0.0, 0.0, 3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-2, 2), sp(5, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 4)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0], ..Default::default() }),
    ("cut empty buckets in the middle", FloatHistogram { positive_spans: vec![sp(5, 4)], positive_buckets: vec![1.0, 3.0, 0.0, 2.0], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(5, 2), sp(1, 1)], positive_buckets: vec![1.0, 3.0, 2.0], ..Default::default() }),
    ("cut empty buckets at start or end of spans, even in the middle", FloatHistogram { positive_spans: vec![sp(-4, 6), sp(3, 6)], positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 0.0, 0.0, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0], negative_spans: vec![sp(0, 2), sp(2, 6)], negative_buckets: vec![3.1, 3.0, 0.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-2, 2), sp(5, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 4)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0], ..Default::default() }),
    ("cut empty buckets at start and end - also merge spans due to maxEmptyBuckets", FloatHistogram { positive_spans: vec![sp(-4, 4), sp(5, 3)], positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 5)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0], ..Default::default() }, 10, FloatHistogram { positive_spans: vec![sp(-2, 10)], positive_buckets: vec![1.0, 3.3, 0.0, 0.0, 0.0, 0.0, 0.0, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 9)], negative_buckets: vec![3.1, 3.0, 0.0, 0.0, 0.0, 1.234e5, 1000.0, 3.0, 4.0], ..Default::default() }),
    ("cut empty buckets from the middle of a span", FloatHistogram { positive_spans: vec![sp(-4, 6), sp(3, 3)], positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 5)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-2, 1), sp(2, 1), sp(3, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 2), sp(1, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0], ..Default::default() }),
    ("cut out a span containing only empty buckets", FloatHistogram { positive_spans: vec![sp(-4, 3), sp(2, 2), sp(3, 4)], positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-2, 1), sp(7, 4)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], ..Default::default() }),
    ("cut empty buckets from the middle of a span, avoiding none due to maxEmptyBuckets", FloatHistogram { positive_spans: vec![sp(-2, 4)], positive_buckets: vec![1.0, 0.0, 0.0, 3.3], ..Default::default() }, 1, FloatHistogram { positive_spans: vec![sp(-2, 1), sp(2, 1)], positive_buckets: vec![1.0, 3.3], ..Default::default() }),
    ("cut empty buckets and merge spans due to maxEmptyBuckets", FloatHistogram { positive_spans: vec![sp(-2, 4), sp(3, 1)], positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 4.2], ..Default::default() }, 1, FloatHistogram { positive_spans: vec![sp(-2, 1), sp(2, 1), sp(3, 1)], positive_buckets: vec![1.0, 3.3, 4.2], ..Default::default() }),
    ("cut empty buckets from the middle of a span, avoiding some due to maxEmptyBuckets", FloatHistogram { positive_spans: vec![sp(-4, 6), sp(3, 3), sp(10, 2)], positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3, 2.0, 3.0], negative_spans: vec![sp(0, 2), sp(3, 5)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0], ..Default::default() }, 1, FloatHistogram { positive_spans: vec![sp(-2, 1), sp(2, 1), sp(3, 3), sp(10, 2)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3, 2.0, 3.0], negative_spans: vec![sp(0, 2), sp(3, 5)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0], ..Default::default() }),
    ("avoiding all cutting of empty buckets from the middle of a chunk due to maxEmptyBuckets", FloatHistogram { positive_spans: vec![sp(-4, 6), sp(3, 3)], positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 5)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0], ..Default::default() }, 2, FloatHistogram { positive_spans: vec![sp(-2, 4), sp(3, 3)], positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 5)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0], ..Default::default() }),
    ("everything merged into one span due to maxEmptyBuckets", FloatHistogram { positive_spans: vec![sp(-4, 6), sp(3, 3)], positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 2), sp(3, 5)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0], ..Default::default() }, 3, FloatHistogram { positive_spans: vec![sp(-2, 10)], positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 0.0, 0.0, 0.0, 4.2, 0.1, 3.3], negative_spans: vec![sp(0, 10)], negative_buckets: vec![3.1, 3.0, 0.0, 0.0, 0.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0], ..Default::default() }),
    ("more than one span merged in the same pass", FloatHistogram { positive_spans: vec![sp(-2, 2), sp(2, 2), sp(2, 2)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3, 2.0], negative_spans: vec![sp(0, 1), sp(1, 1), sp(1, 1)], negative_buckets: vec![3.1, 1000.0, 4.0], ..Default::default() }, 3, FloatHistogram { positive_spans: vec![sp(-2, 10)], positive_buckets: vec![1.0, 3.3, 0.0, 0.0, 4.2, 0.1, 0.0, 0.0, 3.3, 2.0], negative_spans: vec![sp(0, 5)], negative_buckets: vec![3.1, 0.0, 1000.0, 0.0, 4.0], ..Default::default() }),
    ("only empty buckets and maxEmptyBuckets greater zero", FloatHistogram { positive_spans: vec![sp(-4, 6), sp(3, 3)], positive_buckets: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], negative_spans: vec![sp(0, 7)], negative_buckets: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], ..Default::default() }, 3, FloatHistogram { positive_buckets: vec![], negative_buckets: vec![], ..Default::default() }),
    ("multiple spans of only empty buckets", FloatHistogram { positive_spans: vec![sp(-10, 2), sp(2, 1), sp(3, 3)], positive_buckets: vec![0.0, 0.0, 0.0, 0.0, 2.0, 3.0], negative_spans: vec![sp(-10, 2), sp(2, 1), sp(3, 3)], negative_buckets: vec![2.0, 3.0, 0.0, 0.0, 0.0, 0.0], ..Default::default() }, 0, FloatHistogram { positive_spans: vec![sp(-1, 2)], positive_buckets: vec![2.0, 3.0], negative_spans: vec![sp(-10, 2)], negative_buckets: vec![2.0, 3.0], ..Default::default() }),
    ("nothing should happen with custom buckets", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, positive_spans: vec![sp(0, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0], ..Default::default() }, 0, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, positive_spans: vec![sp(0, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0], ..Default::default() }),
    ("eliminate zero offsets with custom buckets", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, positive_spans: vec![sp(0, 1), sp(0, 3), sp(0, 1)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, 0, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, positive_spans: vec![sp(0, 5)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }),
    ("eliminate multiple zero length spans with custom buckets", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, positive_spans: vec![sp(0, 2), sp(2, 0), sp(2, 0), sp(2, 0), sp(3, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, 0, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, positive_spans: vec![sp(0, 2), sp(9, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }),
    ("cut empty buckets at start and end with custom buckets", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, positive_spans: vec![sp(0, 4), sp(5, 6)], positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], ..Default::default() }, 0, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, positive_spans: vec![sp(2, 2), sp(5, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3], custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], ..Default::default() }),
    ];
    assert_eq!(cases.len(), 24);
    for (name, input, max_empty, expected) in cases {
        let was_valid = input.validate().is_ok();
        let mut h = input;
        h.compact(max_empty);
        assert_eq!(h, expected, "{name}");
        if was_valid {
            assert!(h.validate().is_ok(), "{name}: compact made it invalid");
        }
    }
}

// ---- detect_reset --------------------------------------------------------

/// All cases of Prometheus' `TestFloatHistogramDetectReset`.
#[test]
fn detect_reset_prometheus_cases() {
    #[rustfmt::skip]
    let cases: Vec<(&str, FloatHistogram, FloatHistogram, bool)> = vec![
    ("zero values", FloatHistogram::default(), FloatHistogram::default(), false),
    ("no buckets to some buckets", FloatHistogram::default(), FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("some buckets to no buckets", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram::default(), true),
    ("one bucket appears, nothing else changes", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("one bucket disappears, nothing else changes", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, true),
    ("an unpopulated bucket disappears, nothing else changes", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("an unpopulated bucket at the end disappears, nothing else changes", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 1), sp(1, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.0], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 1), sp(1, 2)], positive_buckets: vec![1.0, 3.3, 4.2], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("an unpopulated bucket disappears in a histogram with nothing else", FloatHistogram { positive_spans: vec![sp(23, 1)], positive_buckets: vec![0.0], ..Default::default() }, FloatHistogram::default(), false),
    ("zero count goes up", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.6, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("zero count goes down", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.4, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, true),
    ("count goes up", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.4, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("count goes down", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.2, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, true),
    ("sum goes up", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349210.0, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("sum goes down", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349200.0, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("one positive bucket goes up", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.3, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("one positive bucket goes down", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.1, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, true),
    ("one negative bucket goes up", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.1, 1.234e5, 1000.0], ..Default::default() }, false),
    ("one negative bucket goes down", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 2.9, 1.234e5, 1000.0], ..Default::default() }, true),
    ("zero threshold decreases", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.009, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, true),
    ("zero threshold increases without touching any existing buckets", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.011, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("zero threshold increases enough to cover existing buckets", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 1.0, zero_count: 7.73, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(1, 3)], positive_buckets: vec![3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("zero threshold increases into the middle of an existing buckets", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.3, zero_count: 5.5, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, true),
    ("schema increases without any other changes", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, schema: 0, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, schema: 1, positive_spans: vec![sp(-5, 4), sp(2, 6)], positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05], negative_spans: vec![sp(5, 4), sp(6, 4)], negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0], ..Default::default() }, true),
    ("schema decreases without any other changes", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, schema: 1, positive_spans: vec![sp(-5, 4), sp(2, 6)], positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05], negative_spans: vec![sp(5, 4), sp(6, 4)], negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, schema: 0, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("schema decreases and a bucket goes up", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, schema: 1, positive_spans: vec![sp(-5, 4), sp(2, 6)], positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05], negative_spans: vec![sp(5, 4), sp(6, 4)], negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, schema: 0, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 4.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, false),
    ("schema decreases and a bucket goes down", FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, schema: 1, positive_spans: vec![sp(-5, 4), sp(2, 6)], positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05], negative_spans: vec![sp(5, 4), sp(6, 4)], negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.01, zero_count: 5.5, count: 3493.3, sum: 2349209.324, schema: 0, positive_spans: vec![sp(-2, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 2.3, 4.2, 0.1], negative_spans: vec![sp(3, 2), sp(3, 2)], negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0], ..Default::default() }, true),
    ("no buckets to some buckets with custom bounds", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, custom_values: vec![1.0, 2.0, 3.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0], ..Default::default() }, false),
    ("some buckets to no buckets with custom bounds", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, custom_values: vec![1.0, 2.0, 3.0], ..Default::default() }, true),
    ("one bucket appears, nothing else changes with custom bounds", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, false),
    ("one bucket disappears, nothing else changes with custom bounds", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, true),
    ("an unpopulated bucket disappears, nothing else changes with custom bounds", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 1), sp(2, 3)], positive_buckets: vec![1.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, false),
    ("one positive bucket goes up with custom bounds", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.3, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, false),
    ("one positive bucket goes down with custom bounds", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 3493.3, sum: 2349209.324, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![1.0, 0.0, 3.3, 4.1, 0.1], custom_values: vec![1.0, 2.0, 3.0, 4.0], ..Default::default() }, true),
    ("mismatched custom bounds - no reset when all buckets increase", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 200.0, sum: 1000.0, positive_spans: vec![sp(0, 4)], positive_buckets: vec![20.0, 35.0, 40.0, 50.0], custom_values: vec![0.0, 1.0, 2.0, 3.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 200.0, sum: 1000.0, positive_spans: vec![sp(0, 5)], positive_buckets: vec![25.0, 15.0, 40.0, 50.0, 70.0], custom_values: vec![0.0, 0.5, 1.0, 2.0, 3.0], ..Default::default() }, false),
    ("mismatched custom bounds - reset in middle bucket", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 100.0, sum: 500.0, positive_spans: vec![sp(1, 4)], positive_buckets: vec![10.0, 15.0, 20.0, 25.0], custom_values: vec![0.0, 1.0, 3.0, 5.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 100.0, sum: 500.0, positive_spans: vec![sp(1, 5)], positive_buckets: vec![10.0, 16.0, 10.0, 5.0, 25.0], custom_values: vec![0.0, 1.0, 2.0, 3.0, 5.0], ..Default::default() }, true),
    ("mismatched custom bounds - reset in last bucket", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 100.0, sum: 500.0, positive_spans: vec![sp(1, 3)], positive_buckets: vec![10.0, 20.0, 20.0], custom_values: vec![0.0, 1.0, 2.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 100.0, sum: 500.0, positive_spans: vec![sp(1, 4)], positive_buckets: vec![100.0, 200.0, 8.0, 7.0], custom_values: vec![0.0, 1.0, 2.0, 3.0], ..Default::default() }, true),
    ("mismatched custom bounds - no common bounds", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 100.0, sum: 500.0, positive_spans: vec![sp(1, 3)], positive_buckets: vec![10.0, 20.0, 30.0], custom_values: vec![4.0, 5.0, 6.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 100.0, sum: 500.0, positive_spans: vec![sp(1, 3)], positive_buckets: vec![15.0, 25.0, 35.0], custom_values: vec![1.0, 2.0, 3.0], ..Default::default() }, false),
    ("mismatched custom bounds - sparse common bounds", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 200.0, sum: 1000.0, positive_spans: vec![sp(0, 4)], positive_buckets: vec![10.0, 20.0, 30.0, 40.0], custom_values: vec![0.0, 1.0, 3.0, 5.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 200.0, sum: 1000.0, positive_spans: vec![sp(0, 5)], positive_buckets: vec![15.0, 25.0, 70.0, 50.0, 100.0], custom_values: vec![0.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, false),
    ("reset detected with mismatched custom bounds and split bucket spans", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 200.0, sum: 1000.0, positive_spans: vec![sp(0, 2), sp(1, 3)], positive_buckets: vec![10.0, 20.0, 30.0, 40.0, 50.0], custom_values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 200.0, sum: 1000.0, positive_spans: vec![sp(0, 3), sp(1, 2)], positive_buckets: vec![15.0, 25.0, 35.0, 25.0, 60.0], custom_values: vec![0.0, 1.0, 3.0, 4.0, 5.0, 7.0], ..Default::default() }, true),
    ("no reset with mismatched custom bounds and split bucket spans", FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 300.0, sum: 1500.0, positive_spans: vec![sp(0, 2), sp(2, 3)], positive_buckets: vec![10.0, 20.0, 30.0, 40.0, 50.0], custom_values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], ..Default::default() }, FloatHistogram { schema: CUSTOM_BUCKETS_SCHEMA, count: 300.0, sum: 1500.0, positive_spans: vec![sp(0, 3), sp(1, 2)], positive_buckets: vec![12.0, 25.0, 45.0, 75.0, 95.0], custom_values: vec![0.0, 0.5, 1.0, 3.0, 5.0, 7.0], ..Default::default() }, false),
    ("reset when a populated bucket following an empty one disappears", FloatHistogram { zero_threshold: 0.001, count: 10.0, positive_spans: vec![sp(0, 1)], positive_buckets: vec![5.0], negative_spans: vec![sp(1, 2)], negative_buckets: vec![0.0, 5.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.001, count: 20.0, positive_spans: vec![sp(0, 1)], positive_buckets: vec![20.0], ..Default::default() }, true),
    ("reset when current ends before a later populated previous bucket", FloatHistogram { zero_threshold: 0.001, count: 7.0, positive_spans: vec![sp(0, 3)], positive_buckets: vec![2.0, 0.0, 5.0], ..Default::default() }, FloatHistogram { zero_threshold: 0.001, count: 100.0, positive_spans: vec![sp(0, 1)], positive_buckets: vec![100.0], ..Default::default() }, true),
    ];
    assert_eq!(cases.len(), 42);
    for (name, previous, current, want) in cases {
        assert_eq!(current.detect_reset(&previous), want, "{name}");
    }
}

#[test]
fn detect_reset_hints() {
    let prev = lit("count:10 buckets:[10]");
    let mut cur = lit("count:1 buckets:[1]");
    assert!(cur.detect_reset(&prev));
    cur.counter_reset_hint = CounterResetHint::NotCounterReset;
    assert!(!cur.detect_reset(&prev));
    let mut same = prev.clone();
    assert!(!same.detect_reset(&prev));
    same.counter_reset_hint = CounterResetHint::CounterReset;
    assert!(same.detect_reset(&prev));
    same.counter_reset_hint = CounterResetHint::Gauge;
    assert!(!same.detect_reset(&prev));
    // Schema increase implies a reset; decrease merges buckets first.
    assert!(lit("schema:1 count:10 buckets:[10]").detect_reset(&prev));
    // Schema 0 buckets (1,2] and (2,4] merge into schema -1 bucket (1,4].
    let prev0 = lit("schema:0 count:10 offset:1 buckets:[5 5]");
    assert!(!lit("schema:-1 count:10 offset:1 buckets:[10]").detect_reset(&prev0));
    assert!(lit("schema:-1 count:10 offset:1 buckets:[9]").detect_reset(&prev0));
    assert!(lit("schema:-1 count:10 buckets:[10]").detect_reset(&prev0));
    // Exponential -> custom and back.
    assert!(lit("schema:-53 count:10 custom_values:[1] buckets:[10]").detect_reset(&prev));
    assert!(prev.detect_reset(&lit("schema:-53 count:10 custom_values:[1] buckets:[10]")));
}

// ---- PromQL functions (expected values from Prometheus'
//      promql/promqltest/testdata/native_histograms.test) ---------------

#[test]
fn quantile_native_histograms_test() {
    let cases: &[(&str, &[(f64, f64)])] = &[
        (
            "schema:0 sum:5 count:4 buckets:[1 2 1]",
            &[(0.5, 1.414213562373095)],
        ),
        (
            "count:14 sum:24 buckets:[1 12 1]",
            &[(0.5, 1.414213562373095)],
        ),
        (
            "schema:0 z_bucket:1 z_bucket_w:0.5 sum:0.25 count:1",
            &[(0.5, 0.0)],
        ),
        (
            "schema:0 sum:-5 count:4 n_buckets:[1 2 1]",
            &[(0.5, -1.414213562373095)],
        ),
        (
            "schema:0 count:8 sum:0 buckets:[1 2 1] n_buckets:[1 2 1]",
            &[(0.5, 0.5)],
        ),
        (
            "schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]",
            &[
                (1.001, f64::INFINITY),
                (1.0, 16.0),
                (0.99, 15.67072476139083),
                (0.9, 12.99603834169977),
                (0.6, 4.594793419988138),
                (0.5, 1.5874010519681994),
                (0.1, 0.0006),
                (0.0, 0.0),
                (-1.0, f64::NEG_INFINITY),
                (0.08333333333333333, 0.0005),
                (0.6320802083934297, 6.0),
            ],
        ),
        (
            "schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]",
            &[
                (1.001, f64::INFINITY),
                (1.0, 0.0),
                (0.99, -0.00006),
                (0.9, -0.0006),
                (0.5, -1.5874010519681996),
                (0.1, -12.996038341699768),
                (0.0, -16.0),
                (-1.0, f64::NEG_INFINITY),
            ],
        ),
        (
            "schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]",
            &[
                (1.0, 16.0),
                (0.99, 15.34822590920423),
                (0.9, 10.556063286183155),
                (0.7, 1.2030250360821164),
                (0.55, 0.0006),
                (0.5, 0.0),
                (0.45, -0.0006),
                (0.3, -1.2030250360821169),
                (0.1, -10.556063286183155),
                (0.01, -15.34822590920423),
                (0.0, -16.0),
            ],
        ),
        ("schema:-1 sum:6 count:5 buckets:[0 5]", &[(0.5, 2.0)]),
        (
            "schema:0 sum:4 count:5 buckets:[0 5]",
            &[(0.5, 1.4142135623730951)],
        ),
        ("schema:1 sum:4 count:5 buckets:[0 5]", &[(0.5, 1.189207)]),
        ("schema:-1 sum:6 count:5 buckets:[0 0 5]", &[(0.5, 8.0)]),
        (
            "schema:0 sum:4 count:5 buckets:[0 0 5]",
            &[(0.5, 2.82842712474619)],
        ),
        (
            "schema:1 sum:4 count:5 buckets:[0 0 5]",
            &[(0.5, 1.6817928305074292)],
        ),
        ("schema:-1 sum:6 count:5 n_buckets:[0 5]", &[(0.5, -2.0)]),
        (
            "schema:1 sum:4 count:5 n_buckets:[0 0 5]",
            &[(0.5, -1.6817928305074292)],
        ),
        (
            "schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1]",
            &[(0.5, 7.5)],
        ),
        (
            "schema:0 count:3 sum:NaN",
            &[(1.0, f64::NAN), (0.81, f64::NAN), (0.4, f64::NAN)],
        ),
        (
            "schema:0 count:15 sum:NaN buckets:[12]",
            &[
                (1.0, f64::NAN),
                (0.81, f64::NAN),
                (0.8, 1.0),
                (0.4, 0.7071067811865475),
            ],
        ),
        ("{}", &[(0.5, f64::NAN)]),
    ];
    for (src, qs) in cases {
        let h = if *src == "{}" {
            FloatHistogram::default()
        } else {
            lit(src)
        };
        for &(q, want) in qs.iter() {
            assert_close(
                histogram_quantile(q, &h),
                want,
                &format!("histogram_quantile({q}, {src})"),
            );
        }
        assert!(histogram_quantile(f64::NAN, &h).is_nan());
    }
}

#[test]
fn quantile_custom_bucket_edges() {
    // First bucket (-Inf, 5]: lower bound 0 assumed; (-Inf, -1]: upper bound returned.
    assert_close(
        histogram_quantile(
            0.5,
            &lit("schema:-53 count:2 custom_values:[5] buckets:[2]"),
        ),
        2.5,
        "first",
    );
    assert_close(
        histogram_quantile(
            0.5,
            &lit("schema:-53 count:2 custom_values:[-1] buckets:[2]"),
        ),
        -1.0,
        "neg first",
    );
    // +Inf bucket: its lower bound is returned.
    assert_close(
        histogram_quantile(
            0.9,
            &lit("schema:-53 count:2 custom_values:[5] buckets:[0 2]"),
        ),
        5.0,
        "inf",
    );
}

#[test]
fn fraction_native_histograms_test() {
    let inf = f64::INFINITY;
    let cases: &[(&str, &[(f64, f64, f64)])] = &[
        (
            "schema:0 sum:5 count:4 buckets:[1 2 1]",
            &[(1.0, 2.0, 0.5), (0.0, 8.0, 1.0)],
        ),
        (
            "count:14 sum:24 buckets:[1 12 1]",
            &[(1.0, 2.0, 0.8571428571428571)],
        ),
        (
            "schema:-1 sum:8 count:5 buckets:[5] offset:1",
            &[(1.0, 4.0, 1.0)],
        ),
        (
            "schema:0 z_bucket:1 z_bucket_w:0.5 sum:0.25 count:1",
            &[(-0.5, 0.5, 1.0)],
        ),
        (
            "schema:0 sum:-5 count:4 n_buckets:[1 2 1]",
            &[(-2.0, -1.0, 0.5)],
        ),
        (
            "schema:0 count:8 sum:0 buckets:[1 2 1] n_buckets:[1 2 1]",
            &[(0.0, 4.0, 0.5)],
        ),
        ("schema:-1 sum:6 count:5 buckets:[0 5]", &[(0.0, 2.0, 0.5)]),
        (
            "schema:0 sum:4 count:5 buckets:[0 5]",
            &[(0.0, 1.4142135623730951, 0.5)],
        ),
        (
            "schema:1 sum:4 count:5 buckets:[0 5]",
            &[(0.0, 1.189207, 0.5)],
        ),
        (
            "schema:1 sum:4 count:5 buckets:[0 0 5]",
            &[(0.0, 1.6817928305074292, 0.5)],
        ),
        (
            "schema:0 sum:4 count:5 n_buckets:[0 5]",
            &[(-1.4142135623730951, 0.0, 0.5)],
        ),
        (
            "schema:-1 sum:6 count:5 n_buckets:[0 0 5]",
            &[(-8.0, 0.0, 0.5)],
        ),
        (
            "schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]",
            &[
                (0.0, inf, 1.0),
                (-inf, 0.0, 0.0),
                (-0.001, 0.0, 0.0),
                (0.0, 0.001, 0.16666666666666666),
                (0.001, inf, 0.8333333333333334),
                (0.0, 0.0005, 0.08333333333333333),
                (-inf, -0.001, 0.0),
                (1.0, 2.0, 0.25),
                (0.0, 1.5, 0.4795739585136224),
                (1.5, 2.0, 0.10375937481971091),
                (1.0, 8.0, 0.3333333333333333),
                (0.0, 6.0, 0.6320802083934297),
                (1.0, 6.0, 0.29874687506009634),
                (1.5, 6.0, 0.15250624987980724),
                (-2.0, -1.0, 0.0),
                (-6.0, -1.5, 0.0),
                (42.0, 3.1415, 0.0),
                (0.0, 0.0, 0.0),
                (3.1415, f64::NAN, f64::NAN),
                (f64::NAN, 42.0, f64::NAN),
                (-inf, inf, 1.0),
            ],
        ),
        (
            "schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1]",
            &[(5.0, 10.0, 0.5)],
        ),
        (
            "schema:0 count:3 sum:NaN",
            &[(-inf, 0.7071067811865475, 0.0), (-inf, inf, 0.0)],
        ),
        (
            "schema:0 count:15 sum:NaN buckets:[12]",
            &[(-inf, 0.7071067811865475, 0.4), (-inf, inf, 0.8)],
        ),
        (
            "schema:-53 custom_values:[-2 3]",
            &[(-inf, inf, f64::NAN), (0.0, 8.0, f64::NAN)],
        ),
    ];
    for (src, fs) in cases {
        let h = lit(src);
        for &(lo, hi, want) in fs.iter() {
            assert_close(
                histogram_fraction(lo, hi, &h),
                want,
                &format!("histogram_fraction({lo}, {hi}, {src})"),
            );
        }
    }
}

#[test]
fn stddev_stdvar_native_histograms_test() {
    let big3 = "schema:3 count:7 sum:SUM z_bucket:1 buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ] n_buckets:[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 ]";
    let cases: Vec<(String, f64, f64)> = vec![
        ("schema:2 count:4 sum:10 buckets:[1 0 0 0 1 0 0 1 1]".into(), 1.0787993180043811, 1.163807968526718),
        ("schema:8 count:10 sum:10 buckets:[1 2 3 4]".into(), 0.0048960313898237465, 2.3971123370139447e-05),
        (big3.replace("SUM", "62"), 42.94723640026, 1844.4651144196398),
        (
            "schema:0 count:10 sum:-112946 z_bucket:0 n_buckets:[0 0 1 1 1 0 1 1 0 0 3 0 0 0 1 0 0 1]".into(),
            27556.344499842,
            759352122.1939945,
        ),
        ("schema:0 count:10 sum:-100 z_bucket:0 n_buckets:[0 0 0 0 10]".into(), 1.3137084989848, 1.725830020304794),
        (big3.replace("SUM", "NaN"), f64::NAN, f64::NAN),
        (big3.replace("SUM", "Inf"), f64::INFINITY, f64::INFINITY),
    ];
    for (src, stddev, stdvar) in cases {
        let h = lit(&src);
        assert_close(histogram_stddev(&h), stddev, &format!("stddev {src}"));
        assert_close(histogram_stdvar(&h), stdvar, &format!("stdvar {src}"));
    }
    // Custom buckets use the arithmetic mean of each bucket: {2.5 x2, 7.5 x2}.
    let h = lit("schema:-53 count:4 sum:20 custom_values:[0 5 10] buckets:[2 2] offset:1");
    assert_close(histogram_stdvar(&h), 6.25, "nhcb stdvar");
    assert!(histogram_stddev(&FloatHistogram::default()).is_nan());
}

// ---- rendering -----------------------------------------------------------

#[test]
fn to_prom_string_matches_go() {
    let h =
        lit("schema:0 sum:10 count:20 z_bucket:2 z_bucket_w:0.001 buckets:[1 2] n_buckets:[2 1]");
    assert_eq!(
        h.to_prom_string(),
        "{count:20, sum:10, [-2,-1):1, [-1,-0.5):2, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2}"
    );
    // Prometheus' TestFloatHistogramString cases.
    let h = FloatHistogram {
        schema: 1,
        zero_threshold: 0.01,
        zero_count: 5.5,
        count: 3493.3,
        sum: 2349209.324,
        positive_spans: vec![sp(-2, 1), sp(2, 3)],
        positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
        negative_spans: vec![sp(3, 2), sp(3, 2)],
        negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
        ..Default::default()
    };
    assert_eq!(
        h.to_prom_string(),
        "{count:3493.3, sum:2.349209324e+06, [-22.62741699796952,-16):1000, [-16,-11.31370849898476):123400, [-4,-2.82842712474619):3, [-2.82842712474619,-2):3.1, [-0.01,0.01]:5.5, (0.35355339059327373,0.5]:1, (1,1.414213562373095]:3.3, (1.414213562373095,2]:4.2, (2,2.82842712474619]:0.1}"
    );
    let h = FloatHistogram {
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: 3493.3,
        sum: 2349209.324,
        positive_spans: vec![sp(0, 1), sp(2, 4)],
        positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 5.0],
        custom_values: vec![1.0, 2.0, 5.0, 10.0, 15.0, 20.0],
        ..Default::default()
    };
    assert_eq!(
        h.to_prom_string(),
        "{count:3493.3, sum:2.349209324e+06, [-Inf,1]:1, (5,10]:3.3, (10,15]:4.2, (15,20]:0.1, (20,+Inf]:5}"
    );
    assert_eq!(
        FloatHistogram::default().to_prom_string(),
        "{count:0, sum:0}"
    );
    assert_eq!(
        lit("z_bucket:3 count:3").to_prom_string(),
        "{count:3, sum:0, [-0,0]:3}"
    );
}

#[test]
fn go_float_formatting() {
    for (x, want) in [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (1e6, "1e+06"),
        (1e21, "1e+21"),
        (1e100, "1e+100"),
        (0.1, "0.1"),
        (1.0 / 3.0, "0.3333333333333333"),
        (f64::MAX, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
        (0.0033333333333333335, "0.0033333333333333335"),
    ] {
        assert_eq!(format_go_float(x), want, "{x:?}");
    }
}

#[test]
fn api_buckets_rules() {
    let h =
        lit("schema:0 sum:10 count:20 z_bucket:2 z_bucket_w:0.001 buckets:[1 0 2] n_buckets:[2 1]");
    assert_eq!(
        h.api_buckets(),
        vec![
            (1, -2.0, -1.0, 1.0),
            (1, -1.0, -0.5, 2.0),
            (3, -0.001, 0.001, 2.0),
            (0, 0.5, 1.0, 1.0),
            (0, 2.0, 4.0, 2.0),
        ]
    );
    // Buckets overlapping the zero bucket are clamped to the threshold.
    let h = lit("schema:0 count:2 z_bucket_w:0.5 buckets:[1] offset:-2 n_buckets:[1] n_offset:-2");
    assert_eq!(
        h.api_buckets(),
        vec![(1, -0.25, -0.5, 1.0), (0, 0.5, 0.25, 1.0)]
    );
    let h = lit("schema:-53 count:4 custom_values:[5 10] buckets:[1 2 1]");
    assert_eq!(
        h.api_buckets(),
        vec![
            (3, f64::NEG_INFINITY, 5.0, 1.0),
            (0, 5.0, 10.0, 2.0),
            (0, 10.0, f64::INFINITY, 1.0)
        ]
    );
    assert!(FloatHistogram::default().api_buckets().is_empty());
}

#[test]
fn test_expression_round_trip() {
    for src in [
        "schema:1 count:12 sum:18.4 z_bucket:2 z_bucket_w:0.001 buckets:[1 2 0 1 1] n_buckets:[1 2 0 1 1]",
        "schema:-53 count:4 sum:5 custom_values:[5 10] counter_reset_hint:gauge buckets:[1 2 1]",
        "count:3 sum:1e-05 offset:-3 buckets:[1 2] n_offset:2 n_buckets:[0.5]",
    ] {
        let h = lit(src);
        let expr = h.to_test_expression();
        assert_eq!(expr, format!("{{{{{src}}}}}"));
        let inner = &expr[2..expr.len() - 2];
        assert!(lit(inner).equals_for_test_eps(&h, true, 0.0), "{expr}");
    }
    assert_eq!(FloatHistogram::default().to_test_expression(), "{{}}");
}

// ---- equality, resolution, validation -----------------------------------

#[test]
fn equals_for_test_semantics() {
    let a = lit("schema:0 count:4 sum:NaN buckets:[1 0 3] counter_reset_hint:reset");
    // Differently laid out, same buckets after compact(0).
    let b = FloatHistogram {
        count: 4.0,
        sum: f64::NAN,
        positive_spans: vec![sp(0, 1), sp(0, 0), sp(1, 1)],
        positive_buckets: vec![1.0, 3.0],
        ..Default::default()
    };
    assert!(a.equals_for_test(&b, false));
    assert!(!a.equals_for_test(&b, true)); // hints differ
    let mut c = b.clone();
    c.count = 4.000001; // within promqltest's relative tolerance
    assert!(a.equals_for_test(&c, false));
    assert!(!a.equals_for_test_eps(&c, false, 0.0));
    c.count = 4.1;
    assert!(!a.equals_for_test(&c, false));
    let mut d = b.clone();
    d.zero_threshold = 0.001;
    assert!(!a.equals_for_test(&d, false));
    let mut e = b.clone();
    e.sum = f64::from_bits(STALE_NAN_BITS);
    assert!(!a.equals_for_test(&e, false));
    // Custom values only matter for custom schemas.
    let x = lit("schema:-53 custom_values:[1 2] buckets:[1]");
    let y = lit("schema:-53 custom_values:[1 3] buckets:[1]");
    assert!(!x.equals_for_test(&y, false));
}

#[test]
fn reduce_resolution_and_bounds() {
    let mut h =
        lit("schema:2 count:4 sum:10 buckets:[1 0 0 0 1 0 0 1 1] n_buckets:[1 1 1] n_offset:-1");
    h.reduce_resolution(0);
    assert_eq!(h.schema, 0);
    assert_eq!(h.positive_spans, vec![sp(0, 3)]);
    assert_eq!(h.positive_buckets, vec![1.0, 1.0, 2.0]);
    assert_eq!(h.negative_spans, vec![sp(0, 2)]);
    assert_eq!(h.negative_buckets, vec![2.0, 1.0]);
    // Not lower, or custom: no-op with an error from the fallible variant.
    let before = h.clone();
    h.reduce_resolution(1);
    assert_eq!(h, before);
    assert!(h.try_reduce_resolution(0).is_err());
    assert!(
        lit("schema:-53 custom_values:[1]")
            .try_reduce_resolution(0)
            .is_err()
    );

    assert_eq!(get_bound(0, 0, &[]), 1.0);
    assert_eq!(get_bound(1, 0, &[]), 2.0);
    assert_eq!(get_bound(-1, 0, &[]), 0.5);
    assert_eq!(get_bound(1, 1, &[]), 1.414213562373095); // Go table value, 1 ulp below √2
    assert_eq!(get_bound(1, -2, &[]), 16.0);
    assert_eq!(get_bound(1, 3, &[]), 1.0905077326652577);
    assert_eq!(get_bound(1024, 0, &[]), f64::MAX);
    assert_eq!(get_bound(1025, 0, &[]), f64::INFINITY);
    assert_eq!(get_bound(256, -2, &[]), f64::MAX);
    assert_eq!(get_bound(1024 * 256, 8, &[]), f64::MAX);
    assert_eq!(get_bound(-1074, 0, &[]), 5e-324);
    assert_eq!(get_bound(-1075, 0, &[]), 0.0);
    assert_eq!(get_bound(1, CUSTOM_BUCKETS_SCHEMA, &[5.0, 10.0]), 10.0);
    assert_eq!(
        get_bound(2, CUSTOM_BUCKETS_SCHEMA, &[5.0, 10.0]),
        f64::INFINITY
    );
    assert_eq!(
        get_bound(-1, CUSTOM_BUCKETS_SCHEMA, &[5.0, 10.0]),
        f64::NEG_INFINITY
    );
}

#[test]
fn validate_checks() {
    assert!(lit("schema:0 count:4 buckets:[1 2 1]").validate().is_ok());
    assert!(
        lit("schema:-53 custom_values:[1 2] buckets:[1 2 1]")
            .validate()
            .is_ok()
    );
    assert_eq!(
        lit("schema:9").validate(),
        Err(HistogramError::InvalidSchema(9))
    );
    assert!(
        lit("schema:-53 custom_values:[1] buckets:[1 2 1]")
            .validate()
            .is_err()
    );
    assert!(lit("schema:-53 custom_values:[2 1]").validate().is_err());
    assert!(lit("schema:-53 custom_values:[1 Inf]").validate().is_err());
    assert!(lit("schema:-53 z_bucket:1").validate().is_err());
    assert!(lit("schema:0 custom_values:[1]").validate().is_err());
    assert!(lit("buckets:[1 -1]").validate().is_err());
    assert!(lit("count:-1").validate().is_err());
    let bad = FloatHistogram {
        positive_spans: vec![sp(0, 1), sp(-1, 1)],
        positive_buckets: vec![1.0, 1.0],
        ..Default::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(HistogramError::SpanNegativeOffset { .. })
    ));
}
