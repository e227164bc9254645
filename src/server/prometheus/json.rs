//! The JSON of the Prometheus HTTP API, byte for byte as Prometheus 3.x
//! writes it (`web/api/v1/json_codec.go`, `util/jsonutil`, `promql/value.go`):
//!
//! * envelope `{"status":"success","data":…}` with `"warnings"`/`"infos"`
//!   only when non-empty; errors `{"status":"error","errorType":…,"error":…}`;
//! * vector and matrix timestamps: integer seconds, then `.` and exactly three
//!   millisecond digits when the milliseconds are not zero (`1435781451.781`,
//!   `1.500`, `7`) — `jsonutil.MarshalTimestamp`;
//! * vector and matrix values: a string, `strconv.FormatFloat(v, 'f', -1, 64)`,
//!   switching to `'e'` below 1e-6 and from 1e21 (`"1e-07"`), with `NaN`,
//!   `+Inf`, `-Inf` — `jsonutil.MarshalFloat`;
//! * scalar and string results: `[t/1000 as a JSON number, "v"]` through Go's
//!   `encoding/json` (`1.5`, not `1.500`), scalars formatted with `'f'` only;
//! * strings escaped like Go's JSON encoders: `<`, `>`, `&`, U+2028 and U+2029
//!   as `\u003c`…, control characters as `\u00XX` except `\n`, `\r`, `\t`.

use crate::model::histogram::FloatHistogram;
use crate::query::promql::QueryValue;

/// A JSON document under construction.
#[derive(Default)]
pub struct JsonWriter {
    out: String,
}

impl JsonWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        JsonWriter {
            out: String::with_capacity(bytes),
        }
    }

    pub fn finish(self) -> String {
        self.out
    }

    pub fn raw(&mut self, text: &str) -> &mut Self {
        self.out.push_str(text);
        self
    }

    /// A JSON string, escaped the way Go's encoders escape it.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    self.out.push_str(&format!("\\u{:04x}", c as u32))
                }
                c if (c as u32) < 0x20 => self.out.push_str(&format!("\\u{:04x}", c as u32)),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
        self
    }

    /// `"name":`
    pub fn key(&mut self, name: &str) -> &mut Self {
        self.string(name).raw(":")
    }

    /// `["a","b",…]`
    pub fn string_array<S: AsRef<str>>(&mut self, items: &[S]) -> &mut Self {
        self.raw("[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            self.string(item.as_ref());
        }
        self.raw("]")
    }

    /// A label set as an object, in the order given (Prometheus keeps labels sorted).
    pub fn labels(&mut self, labels: &[(String, String)]) -> &mut Self {
        self.raw("{");
        for (i, (name, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            self.key(name).string(value);
        }
        self.raw("}")
    }

    /// `[<timestamp>,"<value>"]` of a vector sample or matrix point.
    fn point(&mut self, timestamp_ms: i64, value: f64) -> &mut Self {
        self.raw("[");
        write_sample_timestamp(&mut self.out, timestamp_ms);
        self.raw(",\"");
        write_sample_value(&mut self.out, value);
        self.raw("\"]")
    }

    /// `[<timestamp>,{"count":…,"sum":…,"buckets":[[rule,"lo","hi","n"],…]}]`
    /// of a native histogram sample (`jsonutil.MarshalHistogram`; no
    /// `buckets` key when every bucket is empty).
    fn histogram_point(&mut self, timestamp_ms: i64, h: &FloatHistogram) -> &mut Self {
        self.raw("[");
        self.raw(&sample_timestamp(timestamp_ms));
        self.raw(",{\"count\":\"");
        self.raw(&sample_value(h.count));
        self.raw("\",\"sum\":\"");
        self.raw(&sample_value(h.sum));
        self.raw("\"");
        let buckets = h.api_buckets();
        for (i, (rule, lower, upper, count)) in buckets.iter().enumerate() {
            self.raw(if i == 0 { ",\"buckets\":[[" } else { ",[" });
            self.raw(&rule.to_string());
            for v in [lower, upper, count] {
                self.raw(",\"").raw(&sample_value(*v)).raw("\"");
            }
            self.raw("]");
        }
        if !buckets.is_empty() {
            self.raw("]");
        }
        self.raw("}]")
    }
}

/// The `data` of `/api/v1/query` and `/api/v1/query_range`:
/// `{"resultType":…,"result":…}`.
pub fn query_data(value: &QueryValue) -> String {
    // Room for the usual answer (a point is ~25 bytes, labels ~200), so
    // the text is not copied as it grows.
    let room = match value {
        QueryValue::Vector(samples) => samples.len() * 240,
        QueryValue::Matrix(series) => series
            .iter()
            .map(|s| 200 + s.points.len() * 28 + s.histograms.len() * 200)
            .sum(),
        _ => 64,
    };
    let mut w = JsonWriter::with_capacity(room + 64);
    w.raw("{").key("resultType").string(value.result_type());
    w.raw(",").key("result");
    match value {
        QueryValue::Scalar { timestamp, value } => {
            w.raw("[")
                .raw(&go_json_number(*timestamp as f64 / 1000.0))
                .raw(",")
                .string(&format_float(*value))
                .raw("]");
        }
        QueryValue::String { timestamp, value } => {
            w.raw("[")
                .raw(&go_json_number(*timestamp as f64 / 1000.0))
                .raw(",")
                .string(value)
                .raw("]");
        }
        QueryValue::Vector(samples) => {
            w.raw("[");
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    w.raw(",");
                }
                w.raw("{").key("metric").labels(&s.labels);
                match &s.histogram {
                    Some(h) => w.raw(",").key("histogram").histogram_point(s.timestamp, h),
                    None => w.raw(",").key("value").point(s.timestamp, s.value),
                };
                w.raw("}");
            }
            w.raw("]");
        }
        QueryValue::Matrix(series) => {
            w.raw("[");
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    w.raw(",");
                }
                w.raw("{").key("metric").labels(&s.labels);
                // A series without float points has no "values" key at all.
                for (j, (t, v)) in s.points.iter().enumerate() {
                    w.raw(if j == 0 { ",\"values\":[" } else { "," });
                    w.point(*t, *v);
                }
                if !s.points.is_empty() {
                    w.raw("]");
                }
                for (j, (t, h)) in s.histograms.iter().enumerate() {
                    w.raw(if j == 0 { ",\"histograms\":[" } else { "," });
                    w.histogram_point(*t, h);
                }
                if !s.histograms.is_empty() {
                    w.raw("]");
                }
                w.raw("}");
            }
            w.raw("]");
        }
    }
    w.raw("}");
    w.finish()
}

/// `{"status":"success","data":<data>}` plus non-empty `warnings` and `infos`.
pub fn success(data: &str, warnings: &[String], infos: &[String]) -> String {
    let mut w = JsonWriter::with_capacity(data.len() + 64);
    w.raw("{").key("status").string("success");
    w.raw(",").key("data").raw(data);
    if !warnings.is_empty() {
        w.raw(",").key("warnings").string_array(warnings);
    }
    if !infos.is_empty() {
        w.raw(",").key("infos").string_array(infos);
    }
    w.raw("}");
    w.finish()
}

/// `{"status":"error","errorType":…,"error":…}`.
pub fn error(error_type: &str, message: &str) -> String {
    let mut w = JsonWriter::new();
    w.raw("{").key("status").string("error");
    w.raw(",").key("errorType").string(error_type);
    w.raw(",").key("error").string(message);
    w.raw("}");
    w.finish()
}

/// A vector/matrix timestamp: `jsonutil.MarshalTimestamp`.
pub fn sample_timestamp(ms: i64) -> String {
    let mut out = String::new();
    write_sample_timestamp(&mut out, ms);
    out
}

/// [`sample_timestamp`] appended to `out`.
fn write_sample_timestamp(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let abs = ms.unsigned_abs();
    let (secs, millis) = (abs / 1000, abs % 1000);
    out.push_str(itoa::Buffer::new().format(secs));
    if millis != 0 {
        let digits = [millis / 100, millis / 10 % 10, millis % 10];
        out.push('.');
        out.extend(digits.map(|d| char::from(b'0' + d as u8)));
    }
}

/// A vector/matrix value (without quotes): `jsonutil.MarshalFloat`.
pub fn sample_value(v: f64) -> String {
    let mut out = String::new();
    write_sample_value(&mut out, v);
    out
}

/// [`sample_value`] appended to `out`.
fn write_sample_value(out: &mut String, v: f64) {
    let abs = v.abs();
    if abs != 0.0 && abs.is_finite() && !(1e-6..1e21).contains(&abs) {
        out.push_str(&go_exponent(v));
    } else {
        write_float(out, v);
    }
}

pub use crate::query::promql::value::{format_float, write_float};

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: `1e-07`, `-1.5e+21`.
fn go_exponent(v: f64) -> String {
    let rust = format!("{v:e}");
    let (mantissa, exponent) = rust.split_once('e').expect("{:e} has an exponent");
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exponent),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// A float64 as Go's `encoding/json` writes it (scalar and string result
/// timestamps): `'f'` formatting, `'e'` with a trimmed exponent outside
/// [1e-6, 1e21).
fn go_json_number(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = go_exponent(v);
        // encoding/json writes e-07 as e-7.
        match e.split_once("e-0") {
            Some((m, d)) => format!("{m}e-{d}"),
            None => e,
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::promql::{InstantSample, RangeSeries};

    fn labels(pairs: &[(&str, &str)]) -> crate::query::promql::Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn timestamps_like_jsonutil() {
        assert_eq!(sample_timestamp(1435781451781), "1435781451.781");
        assert_eq!(sample_timestamp(1500), "1.500");
        assert_eq!(sample_timestamp(1005), "1.005");
        assert_eq!(sample_timestamp(1050), "1.050");
        assert_eq!(sample_timestamp(7000), "7");
        assert_eq!(sample_timestamp(0), "0");
        assert_eq!(sample_timestamp(-1500), "-1.500");
    }

    #[test]
    fn values_like_strconv() {
        assert_eq!(sample_value(1.0), "1");
        assert_eq!(sample_value(0.1), "0.1");
        assert_eq!(sample_value(-0.0), "-0");
        assert_eq!(sample_value(1234.5678), "1234.5678");
        assert_eq!(sample_value(1e-7), "1e-07");
        assert_eq!(sample_value(1.5e-7), "1.5e-07");
        assert_eq!(sample_value(1e21), "1e+21");
        assert_eq!(sample_value(-2.5e300), "-2.5e+300");
        assert_eq!(sample_value(1e20), "100000000000000000000");
        assert_eq!(sample_value(0.000001), "0.000001");
        assert_eq!(sample_value(f64::NAN), "NaN");
        assert_eq!(sample_value(f64::INFINITY), "+Inf");
        assert_eq!(sample_value(f64::NEG_INFINITY), "-Inf");
        // Scalars never switch to the exponent form.
        assert_eq!(format_float(1e-7), "0.0000001");
        // Whole numbers take the integer path: the same digits as Go's.
        for (v, text) in [
            (42.0, "42"),
            (-7.0, "-7"),
            (0.0, "0"),
            (-0.0, "-0"),
            (999_999_999_999_999.0, "999999999999999"),
            (1e15, "1000000000000000"),
            (4503599627370497.0, "4503599627370497"),
            (2.5, "2.5"),
        ] {
            assert_eq!(sample_value(v), text, "{v}");
        }
    }

    #[test]
    fn result_shapes() {
        let vector = QueryValue::Vector(vec![InstantSample {
            labels: labels(&[("__name__", "up"), ("job", "a<b>")]),
            timestamp: 1435781451781,
            value: 1.0,
            histogram: None,
        }]);
        assert_eq!(
            query_data(&vector),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\u003cb\u003e"},"value":[1435781451.781,"1"]}]}"#
        );
        let matrix = QueryValue::Matrix(vec![
            RangeSeries {
                labels: labels(&[("a", "1")]),
                points: vec![(1000, 1.0), (1500, f64::NAN)],
                histograms: vec![],
            },
            RangeSeries {
                labels: labels(&[]),
                points: vec![],
                histograms: vec![],
            },
        ]);
        assert_eq!(
            query_data(&matrix),
            r#"{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"1"],[1.500,"NaN"]]},{"metric":{}}]}"#
        );
        let scalar = QueryValue::Scalar {
            timestamp: 1500,
            value: 2.0,
        };
        assert_eq!(
            query_data(&scalar),
            r#"{"resultType":"scalar","result":[1.5,"2"]}"#
        );
        let string = QueryValue::String {
            timestamp: 4000,
            value: "a\"b\n".into(),
        };
        assert_eq!(
            query_data(&string),
            r#"{"resultType":"string","result":[4,"a\"b\n"]}"#
        );
        assert_eq!(
            query_data(&QueryValue::Vector(vec![])),
            r#"{"resultType":"vector","result":[]}"#
        );
    }

    #[test]
    fn envelopes() {
        assert_eq!(success("[]", &[], &[]), r#"{"status":"success","data":[]}"#);
        assert_eq!(
            success("{}", &["w".into()], &["i".into()]),
            r#"{"status":"success","data":{},"warnings":["w"],"infos":["i"]}"#
        );
        assert_eq!(
            error("bad_data", "x & y"),
            r#"{"status":"error","errorType":"bad_data","error":"x \u0026 y"}"#
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut w = JsonWriter::new();
        w.string("\u{1}\u{8}\u{2028}");
        assert_eq!(w.finish(), r#""\u0001\u0008\u2028""#);
    }
}
