//! Prometheus native (float) histograms for o11ydb's PromQL engine.
//!
//! What flows through this module: native histogram samples enter as
//! [`FloatHistogram`] values, either decoded from storage
//! ([`FloatHistogram::decode`], the inverse of [`FloatHistogram::encode`]) or
//! parsed from promqltest literals ([`parse_test_literal`]). The PromQL engine
//! combines them with the arithmetic and bookkeeping operations (`add`, `sub`,
//! `mul`, `div`, `compact`, `detect_reset`, `reduce_resolution`), reduces them
//! to floats with [`histogram_quantile`], [`histogram_fraction`],
//! [`histogram_stddev`] and [`histogram_stdvar`], and finally renders them for
//! users with [`FloatHistogram::api_buckets`] (HTTP API JSON `buckets`),
//! [`FloatHistogram::to_prom_string`] (Go's `String()`) or
//! [`FloatHistogram::to_test_expression`] (promqltest `{{...}}` syntax).
//!
//! The semantics are a port of Prometheus 3.x (Go):
//! `model/histogram/float_histogram.go` and `generic.go` (bucket bounds,
//! iterators, `Add`/`Sub` with schema reduction, zero-threshold widening and
//! intersection of mismatched custom bucket bounds, `Compact`, `DetectReset`),
//! `promql/quantile.go` (`HistogramQuantile`, `HistogramFraction`, exponential
//! interpolation inside exponential buckets, linear interpolation for custom
//! buckets and the zero bucket) and `promql/functions.go`
//! (`histogram_stddev`/`histogram_stdvar`).
//!
//! Unlike the Go code, nothing here panics on malformed input: operations
//! that Go would panic on either return a [`HistogramError`] or degrade
//! gracefully (documented per function).
//!
//! Layout: the types and schema helpers here; `bounds` (bucket bounds),
//! `buckets` (bucket iterators), `ops` (arithmetic), `spans` (span
//! algorithms), `encoding` (storage bytes, texts, comparisons),
//! `quantile` (PromQL reductions) and `literal` (promqltest literals).

use std::fmt;

use o11ydb_udfs::promql::stats::kahan_sum_inc;

use crate::model::STALE_NAN_BITS;

mod bounds;
mod buckets;
mod encoding;
mod literal;
mod ops;
mod quantile;
mod spans;
#[cfg(test)]
mod tests;

pub use bounds::*;
pub use buckets::*;
pub use encoding::*;
pub use literal::*;
pub use quantile::*;
use spans::*;

/// Schema number marking a histogram with custom bucket bounds (NHCB).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// Highest valid exponential schema.
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;
/// Lowest valid exponential schema.
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;
/// Relative tolerance promqltest uses when comparing sample values.
pub const DEFAULT_TEST_EPSILON: f64 = 0.000001;

/// Version byte written first by [`FloatHistogram::encode`].
const ENCODING_VERSION: u8 = 1;

/// Known information about a counter reset (Prometheus `CounterResetHint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    /// We cannot say whether this histogram signals a counter reset.
    #[default]
    Unknown,
    /// This histogram is known to follow a counter reset.
    CounterReset,
    /// This histogram is known not to follow a counter reset.
    NotCounterReset,
    /// This histogram is a gauge histogram: counter resets do not apply.
    Gauge,
}

impl CounterResetHint {
    fn to_byte(self) -> u8 {
        match self {
            CounterResetHint::Unknown => 0,
            CounterResetHint::CounterReset => 1,
            CounterResetHint::NotCounterReset => 2,
            CounterResetHint::Gauge => 3,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(CounterResetHint::Unknown),
            1 => Some(CounterResetHint::CounterReset),
            2 => Some(CounterResetHint::NotCounterReset),
            3 => Some(CounterResetHint::Gauge),
            _ => None,
        }
    }
}

/// A run of consecutive buckets. `offset` is the gap to the previous span
/// (or, for the first span, the index of its first bucket, which may be
/// negative); `length` is the number of buckets in the span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// A native histogram with float counts (Prometheus `FloatHistogram`).
/// Bucket counts are absolute (not deltas).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    /// -4..=8 for exponential buckets, -53 ([`CUSTOM_BUCKETS_SCHEMA`]) for custom buckets.
    pub schema: i32,
    /// Width of the zero bucket (exponential schemas only).
    pub zero_threshold: f64,
    /// Observations in the zero bucket (exponential schemas only).
    pub zero_count: f64,
    /// Total number of observations.
    pub count: f64,
    /// Sum of observations (also carries the stale marker).
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    /// Absolute counts, one per bucket covered by `positive_spans`.
    pub positive_buckets: Vec<f64>,
    /// Absolute counts, one per bucket covered by `negative_spans`.
    pub negative_buckets: Vec<f64>,
    /// Upper bounds for schema -53, strictly increasing (+Inf implicit).
    pub custom_values: Vec<f64>,
}

/// Errors of histogram operations, decoding and validation. Display texts
/// follow the Prometheus error messages where one exists.
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramError {
    /// Operation between an exponential and a custom-buckets histogram.
    IncompatibleSchema,
    /// Schema is neither -4..=8 nor -53.
    InvalidSchema(i32),
    /// Spans cover a different number of buckets than provided.
    SpansBucketsMismatch {
        side: &'static str,
        spans_need: u64,
        have: usize,
    },
    /// A span other than the first has a negative offset.
    SpanNegativeOffset {
        side: &'static str,
        span_number: usize,
        offset: i32,
    },
    /// A bucket (or the zero bucket) has a negative count.
    NegativeBucketCount {
        side: &'static str,
        bucket_number: usize,
        count: f64,
    },
    /// The observation count is negative.
    NegativeCount(f64),
    /// Custom bounds are too few to cover the spans.
    CustomBucketsTooFew { bounds: usize, span_length: u64 },
    /// Custom bounds are not strictly increasing.
    CustomBucketsNotIncreasing { prev: f64, curr: f64 },
    /// The last custom bound is +Inf.
    CustomBucketsInfinite,
    /// A custom bound is NaN.
    CustomBucketsNaN,
    /// A custom-buckets histogram has a non-zero zero count.
    CustomBucketsZeroCount,
    /// A custom-buckets histogram has a non-zero zero threshold.
    CustomBucketsZeroThreshold,
    /// A custom-buckets histogram has negative spans.
    CustomBucketsNegativeSpans,
    /// A custom-buckets histogram has negative buckets.
    CustomBucketsNegativeBuckets,
    /// An exponential histogram has custom bounds.
    ExponentialSchemaCustomBounds,
    /// Resolution cannot be reduced as requested.
    ReduceResolution(String),
    /// The binary encoding is malformed.
    Decode(String),
}

impl fmt::Display for HistogramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistogramError::IncompatibleSchema => write!(
                f,
                "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
            ),
            HistogramError::InvalidSchema(s) => write!(
                f,
                "histogram has an invalid schema, which must be between {} and {} for exponential buckets, or {} for custom buckets, got schema {}",
                EXPONENTIAL_SCHEMA_MIN, EXPONENTIAL_SCHEMA_MAX, CUSTOM_BUCKETS_SCHEMA, s
            ),
            HistogramError::SpansBucketsMismatch {
                side,
                spans_need,
                have,
            } => write!(
                f,
                "{side} side: spans need {spans_need} buckets, have {have} buckets: histogram spans specify different number of buckets than provided"
            ),
            HistogramError::SpanNegativeOffset {
                side,
                span_number,
                offset,
            } => write!(
                f,
                "{side} side: span number {span_number} with offset {offset}: histogram has a span whose offset is negative"
            ),
            HistogramError::NegativeBucketCount {
                side,
                bucket_number,
                count,
            } => write!(
                f,
                "{side} side: bucket number {bucket_number} has observation count of {}: histogram has a bucket whose observation count is negative",
                format_go_float(*count)
            ),
            HistogramError::NegativeCount(c) => write!(
                f,
                "observation count is {}: histogram's observation count is negative",
                format_go_float(*c)
            ),
            HistogramError::CustomBucketsTooFew {
                bounds,
                span_length,
            } => write!(
                f,
                "custom buckets: only {bounds} custom bounds defined which is insufficient to cover total span length of {span_length}: histogram custom bounds are too few"
            ),
            HistogramError::CustomBucketsNotIncreasing { prev, curr } => write!(
                f,
                "custom buckets: previous bound is {prev:.6} and current is {curr:.6}: histogram custom bounds must be in strictly increasing order"
            ),
            HistogramError::CustomBucketsInfinite => write!(
                f,
                "custom buckets: last +Inf bound must not be explicitly defined: histogram custom bounds must be finite"
            ),
            HistogramError::CustomBucketsNaN => {
                write!(f, "custom buckets: histogram custom bounds must not be NaN")
            }
            HistogramError::CustomBucketsZeroCount => {
                write!(f, "custom buckets: must have zero count of 0")
            }
            HistogramError::CustomBucketsZeroThreshold => {
                write!(f, "custom buckets: must have zero threshold of 0")
            }
            HistogramError::CustomBucketsNegativeSpans => {
                write!(f, "custom buckets: must not have negative spans")
            }
            HistogramError::CustomBucketsNegativeBuckets => {
                write!(f, "custom buckets: must not have negative buckets")
            }
            HistogramError::ExponentialSchemaCustomBounds => {
                write!(
                    f,
                    "histogram with exponential schema must not have custom bounds"
                )
            }
            HistogramError::ReduceResolution(msg) => write!(f, "{msg}"),
            HistogramError::Decode(msg) => write!(f, "invalid histogram encoding: {msg}"),
        }
    }
}

impl std::error::Error for HistogramError {}

/// Side information of [`FloatHistogram::add_ext`] / [`FloatHistogram::sub_ext`],
/// which PromQL turns into annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddOutcome {
    /// One operand said `CounterReset`, the other `NotCounterReset`; the
    /// result's hint was set to `Unknown` (Prometheus warns about this).
    pub counter_reset_collision: bool,
    /// Custom bucket bounds differed and the result uses their intersection
    /// (Prometheus emits an info annotation for this).
    pub nhcb_bounds_reconciled: bool,
}

/// True for the custom-buckets schema (-53).
pub fn is_custom_buckets_schema(schema: i32) -> bool {
    schema == CUSTOM_BUCKETS_SCHEMA
}

/// True for the valid exponential schemas (-4..=8).
pub fn is_exponential_schema(schema: i32) -> bool {
    (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&schema)
}

/// True for any schema Prometheus accepts.
pub fn is_valid_schema(schema: i32) -> bool {
    is_custom_buckets_schema(schema) || is_exponential_schema(schema)
}

/// Custom bounds compare equal value by value (Go `CustomBucketBoundsMatch`).
pub fn custom_bucket_bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

// ---------------------------------------------------------------------------
