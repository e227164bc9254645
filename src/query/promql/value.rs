//! The values a PromQL query returns, as the Prometheus HTTP API and the
//! conformance runner see them: label sets, instant samples, range series.

/// A native histogram sample's value (shared, never changed in place).
pub type Hist = std::sync::Arc<crate::model::histogram::FloatHistogram>;

pub use crate::model::labels::{Labels, sort_labels};

/// The metric-name label.
pub const METRIC_NAME: &str = "__name__";

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The float value (NaN when the sample is a histogram).
    pub value: f64,
    /// The native histogram, when the sample is one.
    pub histogram: Option<Hist>,
}

/// One series of a range matrix, points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    /// (milliseconds since the epoch, value)
    pub points: Vec<(i64, f64)>,
    /// (milliseconds since the epoch, native histogram), usually empty.
    pub histograms: Vec<(i64, Hist)>,
}

/// The result of a query, by Prometheus `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Scalar {
        timestamp: i64,
        value: f64,
    },
    String {
        timestamp: i64,
        value: String,
    },
    Vector(Vec<InstantSample>),
    /// Range queries always answer a matrix (sorted by label set); an
    /// instant query answers one when the expression is a range vector.
    Matrix(Vec<RangeSeries>),
}

impl QueryValue {
    /// The Prometheus `resultType` name.
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryValue::Scalar { .. } => "scalar",
            QueryValue::String { .. } => "string",
            QueryValue::Vector(_) => "vector",
            QueryValue::Matrix(_) => "matrix",
        }
    }
}

/// A query's value with the annotations Prometheus returns beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub value: QueryValue,
    /// `PromQL warning: …` texts.
    pub warnings: Vec<String>,
    /// `PromQL info: …` texts.
    pub infos: Vec<String>,
}

/// Prometheus' `labels.Compare`: pairwise by name, then value; a prefix sorts first.
pub fn compare_labels(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let ord = x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1));
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

/// A float as Prometheus prints it in label values and JSON — Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest decimal that reads
/// back as `v`, never an exponent; `NaN`, `+Inf`, `-Inf`.
pub fn format_float(v: f64) -> String {
    let mut out = String::new();
    write_float(&mut out, v);
    out
}

/// [`format_float`] appended to `out`.
pub fn write_float(out: &mut String, v: f64) {
    use std::fmt::Write;
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
        // Whole numbers (counters, most gauges) as integers: the same digits.
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        // Rust's `Display` for f64 is the shortest round-trip decimal too.
        let _ = write!(out, "{v}");
    }
}
