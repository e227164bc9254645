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
//! gracefully (documented per function). The module is std-only so it can be
//! compiled and tested standalone.

use std::fmt;

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

/// Prometheus' `value.StaleNaN` bit pattern (staleness marker).
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

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
// Bucket boundaries
// ---------------------------------------------------------------------------

/// Bucket bounds within [0.5, 1) for schema 8. Schema `s` (0..=8) uses every
/// `2^(8-s)`-th entry of this table (identical to Prometheus' per-schema
/// `exponentialBounds` tables, verified entry by entry).
#[rustfmt::skip]
static EXPONENTIAL_BOUNDS_SCHEMA8: [f64; 256] = [
    0.5, 0.5013556375251013, 0.5027149505564014, 0.5040779490592088,
    0.5054446430258502, 0.5068150424757447, 0.5081891574554764, 0.509566998038869,
    0.5109485743270583, 0.5123338964485679, 0.5137229745593818, 0.5151158188430205,
    0.5165124395106142, 0.5179128468009786, 0.5193170509806894, 0.520725062344158,
    0.5221368912137069, 0.5235525479396449, 0.5249720429003435, 0.526395386502313,
    0.5278225891802786, 0.5292536613972564, 0.5306886136446309, 0.5321274564422321,
    0.5335702003384117, 0.5350168559101208, 0.5364674337629877, 0.5379219445313954,
    0.5393803988785598, 0.5408428074966075, 0.5423091811066545, 0.5437795304588847,
    0.5452538663326288, 0.5467321995364429, 0.5482145409081883, 0.549700901315111,
    0.5511912916539204, 0.5526857228508706, 0.5541842058618393, 0.5556867516724088,
    0.5571933712979462, 0.5587040757836845, 0.5602188762048033, 0.5617377836665098,
    0.5632608093041209, 0.564787964283144, 0.5663192597993595, 0.5678547070789026,
    0.5693943173783458, 0.5709381019847808, 0.572486072215902, 0.5740382394200894,
    0.5755946149764913, 0.5771552102951081, 0.5787200368168754, 0.5802891060137493,
    0.5818624293887887, 0.5834400184762408, 0.585021884841625, 0.5866080400818185,
    0.5881984958251406, 0.5897932637314379, 0.5913923554921704, 0.5929957828304968,
    0.5946035575013605, 0.5962156912915756, 0.5978321960199137, 0.5994530835371903,
    0.6010783657263515, 0.6027080545025619, 0.6043421618132907, 0.6059806996384005,
    0.6076236799902344, 0.6092711149137041, 0.6109230164863786, 0.6125793968185725,
    0.6142402680534349, 0.6159056423670379, 0.6175755319684665, 0.6192499490999082,
    0.620928906036742, 0.622612415087629, 0.6243004885946023, 0.6259931389331581,
    0.6276903785123455, 0.6293922197748583, 0.6310986751971253, 0.6328097572894031,
    0.6345254785958666, 0.6362458516947014, 0.637970889198196, 0.6397006037528346,
    0.6414350080393891, 0.6431741147730128, 0.6449179367033329, 0.6466664866145447,
    0.6484197773255048, 0.6501778216898253, 0.6519406325959679, 0.6537082229673385,
    0.6554806057623822, 0.6572577939746774, 0.659039800633032, 0.6608266388015788,
    0.6626183215798706, 0.6644148621029772, 0.6662162735415805, 0.6680225691020727,
    0.6698337620266515, 0.6716498655934177, 0.6734708931164728, 0.6752968579460171,
    0.6771277734684463, 0.6789636531064505, 0.6808045103191123, 0.6826503586020058,
    0.6845012114872953, 0.6863570825438342, 0.688217985377265, 0.690083933630119,
    0.6919549409819159, 0.6938310211492645, 0.6957121878859629, 0.6975984549830999,
    0.6994898362691555, 0.7013863456101023, 0.7032879969095076, 0.7051948041086352,
    0.7071067811865475, 0.7090239421602076, 0.7109463010845827, 0.7128738720527471,
    0.7148066691959849, 0.7167447066838943, 0.718687998724491, 0.7206365595643126,
    0.7225904034885232, 0.7245495448210174, 0.7265139979245261, 0.7284837772007218,
    0.7304588970903234, 0.7324393720732029, 0.7344252166684908, 0.7364164454346837,
    0.7384130729697496, 0.7404151139112358, 0.7424225829363761, 0.7444354947621984,
    0.7464538641456323, 0.7484777058836176, 0.7505070348132126, 0.7525418658117031,
    0.7545822137967112, 0.7566280937263048, 0.7586795205991071, 0.7607365094544071,
    0.762799075372269, 0.7648672334736434, 0.7669409989204777, 0.7690203869158282,
    0.7711054127039704, 0.7731960915705107, 0.7752924388424999, 0.7773944698885442,
    0.7795022001189185, 0.7816156449856788, 0.7837348199827764, 0.7858597406461707,
    0.7879904225539431, 0.7901268813264122, 0.7922691326262467, 0.7944171921585818,
    0.7965710756711334, 0.7987307989543135, 0.8008963778413465, 0.8030678282083853,
    0.805245165974627, 0.8074284071024302, 0.8096175675974316, 0.8118126635086642,
    0.8140137109286738, 0.8162207259936375, 0.8184337248834821, 0.820652723822003,
    0.8228777390769823, 0.8251087869603088, 0.8273458838280969, 0.8295890460808079,
    0.8318382901633681, 0.8340936325652911, 0.8363550898207981, 0.8386226785089391,
    0.8408964152537144, 0.8431763167241966, 0.8454623996346523, 0.8477546807446661,
    0.8500531768592616, 0.8523579048290255, 0.8546688815502312, 0.8569861239649629,
    0.8593096490612387, 0.8616394738731368, 0.8639756154809185, 0.8663180910111553,
    0.8686669176368529, 0.871022112577578, 0.8733836930995842, 0.8757516765159389,
    0.8781260801866495, 0.8805069215187917, 0.8828942179666361, 0.8852879870317771,
    0.8876882462632604, 0.890095013257712, 0.8925083056594671, 0.8949281411607002,
    0.8973545375015533, 0.8997875124702672, 0.9022270839033115, 0.9046732696855155,
    0.9071260877501991, 0.909585556079304, 0.9120516927035263, 0.9145245157024483,
    0.9170040432046711, 0.9194902933879467, 0.9219832844793128, 0.9244830347552253,
    0.9269895625416926, 0.92950288621441, 0.9320230241988943, 0.9345499949706191,
    0.9370838170551498, 0.93962450902828, 0.9421720895161669, 0.9447265771954693,
    0.9472879907934827, 0.9498563490882775, 0.9524316709088368, 0.9550139751351947,
    0.9576032806985735, 0.9601996065815236, 0.9628029718180622, 0.9654133954938133,
    0.9680308967461471, 0.9706554947643201, 0.9732872087896164, 0.9759260581154889,
    0.9785720620876999, 0.9812252401044634, 0.9838856116165875, 0.9865531961276168,
    0.9892280131939752, 0.9919100824251095, 0.9945994234836328, 0.9972960560854698,
];

/// `x * 2^n` computed exactly like C's `scalbn` / Go's `math.Ldexp`
/// (single rounding, also in the subnormal range).
fn ldexp(x: f64, n: i64) -> f64 {
    let mut y = x;
    let mut n = n;
    if n > 1023 {
        y *= f64::from_bits(0x7fe0_0000_0000_0000); // 2^1023
        n -= 1023;
        if n > 1023 {
            y *= f64::from_bits(0x7fe0_0000_0000_0000);
            n -= 1023;
            if n > 1023 {
                n = 1023;
            }
        }
    } else if n < -1022 {
        // 2^-1022 * 2^53: keep the final n < -53 to avoid double rounding.
        let step = f64::from_bits(0x0010_0000_0000_0000) * 9007199254740992.0;
        y *= step;
        n += 1022 - 53;
        if n < -1022 {
            y *= step;
            n += 1022 - 53;
            if n < -1022 {
                n = -1022;
            }
        }
    }
    y * f64::from_bits(((0x3ff + n) as u64) << 52)
}

/// Upper bound of the exponential bucket with index `idx` in `schema`
/// (Go `getBoundExponential`). The last finite bucket ends at `f64::MAX`,
/// the bucket above it (for ±Inf observations) at +Inf. Returns NaN for
/// schemas > 8 (which Go would panic on).
pub fn get_bound_exponential(idx: i64, schema: i32) -> f64 {
    if schema < 0 {
        // exp = idx << -schema, computed without overflow.
        let shift = (-(schema as i64)).min(64) as u32;
        let exp = (idx as i128) << shift;
        if exp == 1024 {
            return f64::MAX;
        }
        let exp = exp.clamp(-1_000_000, 1_000_000) as i64;
        return ldexp(1.0, exp);
    }
    if schema > EXPONENTIAL_SCHEMA_MAX {
        return f64::NAN;
    }
    let frac_idx = idx & ((1i64 << schema) - 1);
    let frac = EXPONENTIAL_BOUNDS_SCHEMA8[(frac_idx as usize) << (EXPONENTIAL_SCHEMA_MAX - schema)];
    let exp = (idx >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// Upper bound of bucket `idx` (Go `getBound`). For custom buckets, index
/// `len(custom_values)` is the +Inf bucket and index -1 yields -Inf (the
/// lower bound of bucket 0). Out-of-range custom indices, which Go panics on,
/// are clamped to ±Inf.
pub fn get_bound(idx: i64, schema: i32, custom_values: &[f64]) -> f64 {
    if is_custom_buckets_schema(schema) {
        if idx < 0 {
            return f64::NEG_INFINITY;
        }
        return custom_values
            .get(idx as usize)
            .copied()
            .unwrap_or(f64::INFINITY);
    }
    get_bound_exponential(idx, schema)
}

/// Index in `target_schema` of bucket `idx` of `origin_schema` (Go `targetIdx`).
fn target_idx(idx: i64, origin_schema: i32, target_schema: i32) -> i64 {
    let shift = (origin_schema as i64 - target_schema as i64).clamp(0, 63);
    ((idx - 1) >> shift) + 1
}

/// Kahan-Neumaier summation step (Prometheus `kahansum.Inc`).
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

// ---------------------------------------------------------------------------
// Buckets and bucket iterators
// ---------------------------------------------------------------------------

/// One bucket with its bounds (Go `histogram.Bucket[float64]`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
    /// Index within the schema (irrelevant for the zero bucket).
    pub index: i32,
}

impl Bucket {
    /// Go `Bucket.String()`: `(lower,upper]:count` with `[`/`]` for inclusive bounds.
    pub fn to_prom_string(&self) -> String {
        format!(
            "{}{},{}{}:{}",
            if self.lower_inclusive { '[' } else { '(' },
            format_go_float(self.lower),
            format_go_float(self.upper),
            if self.upper_inclusive { ']' } else { ')' },
            format_go_float(self.count)
        )
    }

    /// Fraction of this bucket's width at or below `v` (Go `FractionBelow`),
    /// linear or on a logarithmic scale. `v` must be strictly inside finite bounds.
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let log_lower = self.lower.abs().log2();
        let log_upper = self.upper.abs().log2();
        let log_v = v.abs().log2();
        if v > 0.0 {
            return (log_v - log_lower) / (log_upper - log_lower);
        }
        1.0 - ((log_v - log_upper) / (log_lower - log_upper))
    }
}

/// Builds the bucket at `idx` (Go `baseBucketIterator.at`).
fn bucket_at(idx: i64, count: f64, schema: i32, positive: bool, custom_values: &[f64]) -> Bucket {
    let (lower, upper) = if positive {
        (
            get_bound(idx - 1, schema, custom_values),
            get_bound(idx, schema, custom_values),
        )
    } else {
        (
            -get_bound(idx, schema, custom_values),
            -get_bound(idx - 1, schema, custom_values),
        )
    };
    let (lower_inclusive, upper_inclusive) = if is_custom_buckets_schema(schema) {
        (idx == 0, true)
    } else {
        (lower < 0.0, upper > 0.0)
    };
    Bucket {
        lower,
        upper,
        lower_inclusive,
        upper_inclusive,
        count,
        index: idx as i32,
    }
}

/// Forward iterator over one side's buckets, optionally merging them into a
/// lower `target_schema` and skipping buckets whose absolute upper bound is
/// ≤ `absolute_start_value` (Go `floatBucketIterator`). Bucket indices are
/// kept as i64 so that malformed offsets cannot overflow.
#[derive(Clone)]
struct ForwardIter<'a> {
    schema: i32,
    target_schema: i32,
    spans: &'a [Span],
    buckets: &'a [f64],
    positive: bool,
    custom_values: &'a [f64],
    spans_idx: usize,
    idx_in_span: u32,
    buckets_idx: usize,
    curr_count: f64,
    curr_idx: i64,
    orig_idx: i64,
    absolute_start_value: f64,
    bound_reached_start_value: bool,
}

impl<'a> ForwardIter<'a> {
    /// Go `FloatHistogram.floatBucketIterator`. A target schema above the
    /// histogram's schema (a Go panic) is clamped to the histogram's schema.
    fn new(
        h: &'a FloatHistogram,
        positive: bool,
        absolute_start_value: f64,
        target_schema: i32,
    ) -> Self {
        let target_schema = if h.uses_custom_buckets() || is_custom_buckets_schema(target_schema) {
            h.schema
        } else {
            target_schema.min(h.schema)
        };
        let (spans, buckets, custom_values): (&[Span], &[f64], &[f64]) = if positive {
            (&h.positive_spans, &h.positive_buckets, &h.custom_values)
        } else {
            (&h.negative_spans, &h.negative_buckets, &[])
        };
        ForwardIter {
            schema: h.schema,
            target_schema,
            spans,
            buckets,
            positive,
            custom_values,
            spans_idx: 0,
            idx_in_span: 0,
            buckets_idx: 0,
            curr_count: 0.0,
            curr_idx: 0,
            orig_idx: 0,
            absolute_start_value,
            bound_reached_start_value: absolute_start_value == 0.0,
        }
    }

    /// Go `floatBucketIterator.Next`.
    fn advance(&mut self) -> bool {
        loop {
            if !self.advance_once() {
                return false;
            }
            // Skip buckets before absolute_start_value for exponential schemas.
            if !self.bound_reached_start_value
                && is_exponential_schema(self.target_schema)
                && get_bound_exponential(self.curr_idx, self.target_schema)
                    <= self.absolute_start_value
            {
                continue;
            }
            self.bound_reached_start_value = true;
            return true;
        }
    }

    fn advance_once(&mut self) -> bool {
        let Some(&first_span) = self.spans.get(self.spans_idx) else {
            return false;
        };
        let mut span = first_span;
        if self.schema == self.target_schema {
            // Fast path for the common case.
            if self.buckets_idx == 0 {
                self.curr_idx = span.offset as i64;
            } else {
                self.curr_idx += 1;
            }
            if self.buckets_idx >= self.buckets.len() {
                return false;
            }
            while self.idx_in_span >= span.length {
                // Current span exhausted (also handles spans of length 0).
                self.idx_in_span = 0;
                self.spans_idx += 1;
                let Some(&s) = self.spans.get(self.spans_idx) else {
                    return false;
                };
                span = s;
                self.curr_idx += span.offset as i64;
            }
            self.curr_count = self.buckets[self.buckets_idx];
            self.idx_in_span += 1;
            self.buckets_idx += 1;
            return true;
        }
        // Merge all original buckets that fall into one target bucket. Work
        // on local copies so we can look ahead and roll back.
        let (mut orig_idx, mut spans_idx, mut idx_in_span) =
            (self.orig_idx, self.spans_idx, self.idx_in_span);
        let mut first_pass = true;
        self.curr_count = 0.0;
        'merge: loop {
            if self.buckets_idx == 0 {
                orig_idx = span.offset as i64;
            } else {
                orig_idx += 1;
            }
            if self.buckets_idx >= self.buckets.len() {
                if first_pass {
                    return false;
                }
                break 'merge;
            }
            while idx_in_span >= span.length {
                idx_in_span = 0;
                spans_idx += 1;
                let Some(&s) = self.spans.get(spans_idx) else {
                    if first_pass {
                        return false;
                    }
                    break 'merge;
                };
                span = s;
                orig_idx += span.offset as i64;
            }
            let curr = target_idx(orig_idx, self.schema, self.target_schema);
            if first_pass {
                self.curr_idx = curr;
                first_pass = false;
            } else if curr != self.curr_idx {
                // Reached the next target bucket: don't consume it.
                break 'merge;
            }
            self.curr_count += self.buckets[self.buckets_idx];
            idx_in_span += 1;
            self.buckets_idx += 1;
            self.orig_idx = orig_idx;
            self.spans_idx = spans_idx;
            self.idx_in_span = idx_in_span;
        }
        true
    }

    fn at(&self) -> Bucket {
        bucket_at(
            self.curr_idx,
            self.curr_count,
            self.target_schema,
            self.positive,
            self.custom_values,
        )
    }
}

impl Iterator for ForwardIter<'_> {
    type Item = Bucket;
    fn next(&mut self) -> Option<Bucket> {
        if self.advance() {
            Some(self.at())
        } else {
            None
        }
    }
}

/// Iterator over one side's buckets from the highest index down (Go
/// `reverseFloatBucketIterator`).
#[derive(Clone)]
struct ReverseIter<'a> {
    schema: i32,
    spans: &'a [Span],
    buckets: &'a [f64],
    positive: bool,
    custom_values: &'a [f64],
    spans_idx: isize,
    buckets_idx: isize,
    idx_in_span: i64,
    curr_idx: i64,
    curr_count: f64,
}

impl<'a> ReverseIter<'a> {
    fn new(
        spans: &'a [Span],
        buckets: &'a [f64],
        schema: i32,
        positive: bool,
        custom_values: &'a [f64],
    ) -> Self {
        let spans_idx = spans.len() as isize - 1;
        let idx_in_span = spans.last().map_or(0, |s| s.length as i64 - 1);
        let curr_idx = spans
            .iter()
            .map(|s| s.offset as i64 + s.length as i64)
            .sum();
        ReverseIter {
            schema,
            spans,
            buckets,
            positive,
            custom_values,
            spans_idx,
            buckets_idx: buckets.len() as isize - 1,
            idx_in_span,
            curr_idx,
            curr_count: 0.0,
        }
    }
}

impl Iterator for ReverseIter<'_> {
    type Item = Bucket;
    fn next(&mut self) -> Option<Bucket> {
        self.curr_idx -= 1;
        if self.buckets_idx < 0 {
            return None;
        }
        while self.idx_in_span < 0 {
            // Current span exhausted (also handles spans of length 0).
            self.spans_idx -= 1;
            if self.spans_idx < 0 {
                return None;
            }
            let s = self.spans.get(self.spans_idx as usize)?;
            self.idx_in_span = s.length as i64 - 1;
            let next = self.spans.get(self.spans_idx as usize + 1)?;
            self.curr_idx -= next.offset as i64;
        }
        self.curr_count = *self.buckets.get(self.buckets_idx as usize)?;
        self.buckets_idx -= 1;
        self.idx_in_span -= 1;
        Some(bucket_at(
            self.curr_idx,
            self.curr_count,
            self.schema,
            self.positive,
            self.custom_values,
        ))
    }
}

/// Iterator over all buckets (one side, the zero bucket, the other side),
/// clamping buckets that overlap the zero bucket to the zero threshold (Go
/// `allFloatBucketIterator`). Ascending when created by [`AllIter::forward`],
/// descending when created by [`AllIter::reverse`].
struct AllIter<'a> {
    h: &'a FloatHistogram,
    left: ReverseIter<'a>,
    right: ForwardIter<'a>,
    state: i8,
}

impl<'a> AllIter<'a> {
    /// Go `AllBucketIterator`: ascending order.
    fn forward(h: &'a FloatHistogram) -> Self {
        AllIter {
            h,
            left: ReverseIter::new(&h.negative_spans, &h.negative_buckets, h.schema, false, &[]),
            right: ForwardIter::new(h, true, 0.0, h.schema),
            state: -1,
        }
    }

    /// Go `AllReverseBucketIterator`: descending order.
    fn reverse(h: &'a FloatHistogram) -> Self {
        AllIter {
            h,
            left: ReverseIter::new(
                &h.positive_spans,
                &h.positive_buckets,
                h.schema,
                true,
                &h.custom_values,
            ),
            right: ForwardIter::new(h, false, 0.0, h.schema),
            state: -1,
        }
    }

    fn clamp(&self, mut b: Bucket) -> Bucket {
        let zt = self.h.zero_threshold;
        if b.upper < 0.0 && b.upper > -zt {
            b.upper = -zt;
        } else if b.lower > 0.0 && b.lower < zt {
            b.lower = zt;
        }
        b
    }
}

impl Iterator for AllIter<'_> {
    type Item = Bucket;
    fn next(&mut self) -> Option<Bucket> {
        loop {
            match self.state {
                -1 => {
                    if let Some(b) = self.left.next() {
                        return Some(self.clamp(b));
                    }
                    self.state = 0;
                }
                0 => {
                    self.state = 1;
                    // Go would panic on a custom-buckets histogram with a zero count.
                    if self.h.zero_count > 0.0 && !self.h.uses_custom_buckets() {
                        return Some(self.h.zero_bucket());
                    }
                }
                1 => {
                    if let Some(b) = self.right.next() {
                        return Some(self.clamp(b));
                    }
                    self.state = 42;
                    return None;
                }
                _ => return None,
            }
        }
    }
}

// ---------------------------------------------------------------------------
// FloatHistogram: arithmetic and bookkeeping
// ---------------------------------------------------------------------------

impl FloatHistogram {
    /// True if the schema is the custom-buckets schema (-53).
    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_buckets_schema(self.schema)
    }

    /// The zero bucket `[-zero_threshold, zero_threshold]` (closed on both
    /// sides). Meaningless for custom-buckets histograms (Go panics there).
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    /// Bounds `(lower, upper)` of the zero bucket, or `None` for custom buckets.
    pub fn zero_bucket_bounds(&self) -> Option<(f64, f64)> {
        if self.uses_custom_buckets() {
            None
        } else {
            Some((-self.zero_threshold, self.zero_threshold))
        }
    }

    /// All positive buckets in ascending order (Go `PositiveBucketIterator`).
    pub fn positive_buckets_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        ForwardIter::new(self, true, 0.0, self.schema)
    }

    /// All negative buckets, starting next to zero and going down (Go
    /// `NegativeBucketIterator`).
    pub fn negative_buckets_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        ForwardIter::new(self, false, 0.0, self.schema)
    }

    /// Negative, zero and positive buckets in ascending order (Go
    /// `AllBucketIterator`), clamped to the zero threshold.
    pub fn all_buckets_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        AllIter::forward(self)
    }

    /// Like [`Self::all_buckets_iter`] but in descending order (Go
    /// `AllReverseBucketIterator`).
    pub fn all_buckets_rev_iter(&self) -> impl Iterator<Item = Bucket> + '_ {
        AllIter::reverse(self)
    }

    /// Scales counts, sum, zero count and buckets by `factor` (Go `Mul`).
    /// A negative factor turns the histogram into a gauge histogram.
    pub fn mul(&mut self, factor: f64) {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|b| *b *= factor);
        self.negative_buckets.iter_mut().for_each(|b| *b *= factor);
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Divides like [`Self::mul`] multiplies (Go `Div`). Dividing by 0 sets
    /// count, sum and zero count to ±Inf/NaN and removes all buckets (and,
    /// as in Go, leaves the counter reset hint alone). A negative divisor
    /// turns the histogram into a gauge histogram.
    pub fn div(&mut self, divisor: f64) {
        self.zero_count /= divisor;
        self.count /= divisor;
        self.sum /= divisor;
        if divisor == 0.0 {
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            self.positive_spans.clear();
            self.negative_spans.clear();
            return;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= divisor);
        self.negative_buckets.iter_mut().for_each(|b| *b /= divisor);
        if divisor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Adds `other` to `self` (Go `Add`): the result has the lower of both
    /// schemas and a zero threshold wide enough for both zero buckets;
    /// buckets missing in `self` are inserted. Custom-buckets histograms with
    /// different bounds are added on the intersection of both bound sets (as
    /// Prometheus 3 does). Mixing exponential and custom buckets is an error,
    /// as are inconsistent spans/buckets (which Go would panic on). The
    /// result may contain empty buckets; call [`Self::compact`] to tidy up.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<(), HistogramError> {
        self.add_ext(other).map(|_| ())
    }

    /// Like [`Self::add`] but subtracts. As in Go, the counter reset hint is
    /// combined like for `add`; PromQL's `-` operator sets it to gauge afterwards.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<(), HistogramError> {
        self.sub_ext(other).map(|_| ())
    }

    /// [`Self::add`] that also reports counter-reset collisions and custom
    /// bound reconciliation.
    pub fn add_ext(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramError> {
        self.add_or_sub(other, false)
    }

    /// [`Self::sub`] that also reports counter-reset collisions and custom
    /// bound reconciliation.
    pub fn sub_ext(&mut self, other: &FloatHistogram) -> Result<AddOutcome, HistogramError> {
        self.add_or_sub(other, true)
    }

    fn add_or_sub(
        &mut self,
        other: &FloatHistogram,
        negative: bool,
    ) -> Result<AddOutcome, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        // Go trusts its inputs here and panics on inconsistent ones; we
        // refuse them up front so that the span arithmetic below is safe.
        for h in [&*self, other] {
            check_histogram_spans(&h.positive_spans, h.positive_buckets.len(), "positive")?;
            check_histogram_spans(&h.negative_spans, h.negative_buckets.len(), "negative")?;
        }
        let mut outcome = AddOutcome {
            counter_reset_collision: self.adjust_counter_reset(other),
            nhcb_bounds_reconciled: false,
        };
        let sign = if negative { -1.0 } else { 1.0 };
        if !self.uses_custom_buckets() {
            let other_zero_count = self.reconcile_zero_buckets(other);
            self.zero_count += sign * other_zero_count;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;

        if self.uses_custom_buckets() {
            let spans = std::mem::take(&mut self.positive_spans);
            let buckets = std::mem::take(&mut self.positive_buckets);
            if custom_bucket_bounds_match(&self.custom_values, &other.custom_values) {
                let (s, b) = add_buckets(
                    self.schema,
                    self.zero_threshold,
                    negative,
                    spans,
                    buckets,
                    &other.positive_spans,
                    &other.positive_buckets,
                );
                self.positive_spans = s;
                self.positive_buckets = b;
            } else {
                outcome.nhcb_bounds_reconciled = true;
                let intersected =
                    intersect_custom_bucket_bounds(&self.custom_values, &other.custom_values);
                let (s, b) = add_custom_buckets_with_mismatches(
                    negative,
                    &spans,
                    &buckets,
                    &self.custom_values,
                    &other.positive_spans,
                    &other.positive_buckets,
                    &other.custom_values,
                    &intersected,
                );
                self.positive_spans = s;
                self.positive_buckets = b;
                self.custom_values = intersected;
            }
            return Ok(outcome);
        }

        let mut h_pos_spans = std::mem::take(&mut self.positive_spans);
        let mut h_pos_buckets = std::mem::take(&mut self.positive_buckets);
        let mut h_neg_spans = std::mem::take(&mut self.negative_spans);
        let mut h_neg_buckets = std::mem::take(&mut self.negative_buckets);
        let reduced_other;
        let (o_pos_spans, o_pos_buckets, o_neg_spans, o_neg_buckets): (
            &[Span],
            &[f64],
            &[Span],
            &[f64],
        );
        if other.schema < self.schema {
            // Cannot fail: spans were checked above.
            let (s, b) = reduce_resolution_spans(
                &h_pos_spans,
                &h_pos_buckets,
                self.schema,
                other.schema,
                "positive",
            )?;
            h_pos_spans = s;
            h_pos_buckets = b;
            let (s, b) = reduce_resolution_spans(
                &h_neg_spans,
                &h_neg_buckets,
                self.schema,
                other.schema,
                "negative",
            )?;
            h_neg_spans = s;
            h_neg_buckets = b;
            self.schema = other.schema;
            (o_pos_spans, o_pos_buckets, o_neg_spans, o_neg_buckets) = (
                &other.positive_spans,
                &other.positive_buckets,
                &other.negative_spans,
                &other.negative_buckets,
            );
        } else if other.schema > self.schema {
            let p = reduce_resolution_spans(
                &other.positive_spans,
                &other.positive_buckets,
                other.schema,
                self.schema,
                "positive",
            )?;
            let n = reduce_resolution_spans(
                &other.negative_spans,
                &other.negative_buckets,
                other.schema,
                self.schema,
                "negative",
            )?;
            reduced_other = (p, n);
            (o_pos_spans, o_pos_buckets, o_neg_spans, o_neg_buckets) = (
                &reduced_other.0.0,
                &reduced_other.0.1,
                &reduced_other.1.0,
                &reduced_other.1.1,
            );
        } else {
            (o_pos_spans, o_pos_buckets, o_neg_spans, o_neg_buckets) = (
                &other.positive_spans,
                &other.positive_buckets,
                &other.negative_spans,
                &other.negative_buckets,
            );
        }
        let (s, b) = add_buckets(
            self.schema,
            self.zero_threshold,
            negative,
            h_pos_spans,
            h_pos_buckets,
            o_pos_spans,
            o_pos_buckets,
        );
        self.positive_spans = s;
        self.positive_buckets = b;
        let (s, b) = add_buckets(
            self.schema,
            self.zero_threshold,
            negative,
            h_neg_spans,
            h_neg_buckets,
            o_neg_spans,
            o_neg_buckets,
        );
        self.negative_spans = s;
        self.negative_buckets = b;
        Ok(outcome)
    }

    /// Go `adjustCounterReset`; returns true on a CounterReset/NotCounterReset collision.
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        let (mine, theirs) = (self.counter_reset_hint, other.counter_reset_hint);
        if theirs == mine || mine == Gauge {
            // Same kind, or adding something to a gauge: keep.
        } else if theirs == Gauge {
            self.counter_reset_hint = Gauge;
        } else if mine == Unknown {
            // Stays unknown.
        } else if theirs == Unknown {
            self.counter_reset_hint = Unknown;
        } else {
            // CounterReset vs. NotCounterReset.
            self.counter_reset_hint = Unknown;
            return true;
        }
        false
    }

    /// The zero count this histogram would have with the given larger (or
    /// equal) zero threshold, and the threshold actually needed: if the
    /// requested one falls inside a populated bucket, it is widened to that
    /// bucket's bound (Go `zeroCountForLargerThreshold`). A smaller threshold
    /// (a Go panic) returns the current zero count and threshold.
    fn zero_count_for_larger_threshold(&self, larger_threshold: f64) -> (f64, f64) {
        let mut larger = larger_threshold;
        if larger <= self.zero_threshold {
            return (self.zero_count, self.zero_threshold.max(larger));
        }
        'outer: loop {
            let mut zero_count = self.zero_count;
            for b in ForwardIter::new(self, true, 0.0, self.schema) {
                if b.lower >= larger {
                    break;
                }
                zero_count += b.count; // Bucket merged into the zero bucket.
                if b.upper > larger {
                    // New threshold inside this bucket: widen if populated.
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for b in ForwardIter::new(self, false, 0.0, self.schema) {
                if b.upper <= -larger {
                    break;
                }
                zero_count += b.count;
                if b.lower < -larger {
                    if b.count != 0.0 {
                        // Widen and redo: the positive side is invalid now.
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (zero_count, larger);
        }
    }

    /// Zeroes all buckets inside the zero bucket and compacts (Go
    /// `trimBucketsInZeroBucket`). Their counts must already be in the zero count.
    fn trim_buckets_in_zero_bucket(&mut self) {
        let zt = self.zero_threshold;
        let n_pos = ForwardIter::new(self, true, 0.0, self.schema)
            .take_while(|b| b.lower < zt)
            .count();
        let n_neg = ForwardIter::new(self, false, 0.0, self.schema)
            .take_while(|b| b.upper > -zt)
            .count();
        self.positive_buckets
            .iter_mut()
            .take(n_pos)
            .for_each(|b| *b = 0.0);
        self.negative_buckets
            .iter_mut()
            .take(n_neg)
            .for_each(|b| *b = 0.0);
        self.compact(0);
    }

    /// Widens the zero buckets of `self` and (virtually) `other` until they
    /// match; returns the zero count `other` would have (Go `reconcileZeroBuckets`).
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_zero_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        // Thresholds only grow, so this converges; the guard protects against NaN.
        let mut rounds = 0;
        while other_threshold != self.zero_threshold && rounds < 10_000 {
            rounds += 1;
            let mut progressed = false;
            if self.zero_threshold > other_threshold {
                (other_zero_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
                progressed = true;
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
                progressed = true;
            }
            if !progressed {
                break; // NaN thresholds.
            }
        }
        other_zero_count
    }

    /// Removes empty buckets at span edges, merges spans at most
    /// `max_empty_buckets` apart and splits spans with longer runs of empty
    /// buckets (Go `Compact`).
    pub fn compact(&mut self, max_empty_buckets: usize) {
        compact_buckets(
            &mut self.positive_buckets,
            &mut self.positive_spans,
            max_empty_buckets,
        );
        compact_buckets(
            &mut self.negative_buckets,
            &mut self.negative_spans,
            max_empty_buckets,
        );
    }

    /// True if `self` cannot be the successor of `previous` without a counter
    /// reset (Go `DetectReset`): a hint of CounterReset/NotCounterReset
    /// short-cuts; otherwise any decrease in count, zero count or any bucket
    /// (after reconciling schema and zero threshold, or custom bounds) is a reset.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            // Unknown and Gauge (gauges are treated as counters here, as in Go).
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if !custom_bucket_bounds_match(&self.custom_values, &previous.custom_values) {
                return self.detect_reset_with_mismatched_custom_bounds(previous);
            }
        }
        if self.schema > previous.schema {
            return true;
        }
        if previous.uses_custom_buckets() && !self.uses_custom_buckets() {
            // Unreachable in Go (exponential schemas are all > -53); kept for safety.
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (previous_zero_count, new_threshold) =
            previous.zero_count_for_larger_threshold(self.zero_threshold);
        if new_threshold != self.zero_threshold {
            // The threshold is inside a populated bucket of previous.
            return true;
        }
        if self.zero_count < previous_zero_count {
            return true;
        }
        for positive in [true, false] {
            let curr = ForwardIter::new(self, positive, self.zero_threshold, self.schema);
            let prev = ForwardIter::new(previous, positive, self.zero_threshold, self.schema);
            if detect_reset_buckets(curr, prev) {
                return true;
            }
        }
        false
    }

    /// Go `detectResetWithMismatchedCustomBounds`: compares cumulative counts
    /// at the bounds both histograms share.
    fn detect_reset_with_mismatched_custom_bounds(&self, previous: &FloatHistogram) -> bool {
        if !self.uses_custom_buckets() || !previous.uses_custom_buckets() {
            return false;
        }
        let (curr_bounds, prev_bounds) = (&self.custom_values, &previous.custom_values);
        let mut curr_it = ForwardIter::new(self, true, 0.0, self.schema);
        let mut prev_it = ForwardIter::new(previous, true, 0.0, previous.schema);

        // Sums the buckets with upper bound ≤ bound; returns the sum, the
        // first bucket beyond the bound and whether there is one.
        fn rollup(
            it: &mut ForwardIter<'_>,
            started: bool,
            bucket: Bucket,
            bound: f64,
        ) -> (f64, Bucket, bool) {
            let mut bucket = bucket;
            if !started {
                match it.next() {
                    Some(b) => bucket = b,
                    None => return (0.0, Bucket::default(), false),
                }
            }
            let mut sum = 0.0;
            while bucket.upper <= bound {
                sum += bucket.count;
                match it.next() {
                    Some(b) => bucket = b,
                    None => return (sum, Bucket::default(), false),
                }
            }
            (sum, bucket, true)
        }

        let (mut ci, mut pi) = (0usize, 0usize);
        let (mut curr_bucket, mut prev_bucket) = (Bucket::default(), Bucket::default());
        let (mut curr_started, mut curr_more, mut prev_started, mut prev_more) =
            (false, false, false, false);
        while ci <= curr_bounds.len() && pi <= prev_bounds.len() {
            let cb = curr_bounds.get(ci).copied().unwrap_or(f64::INFINITY);
            let pb = prev_bounds.get(pi).copied().unwrap_or(f64::INFINITY);
            if cb == pb {
                let mut curr_sum = 0.0;
                if !curr_started || curr_more {
                    (curr_sum, curr_bucket, curr_more) =
                        rollup(&mut curr_it, curr_started, curr_bucket, cb);
                    curr_started = true;
                }
                let mut prev_sum = 0.0;
                if !prev_started || prev_more {
                    (prev_sum, prev_bucket, prev_more) =
                        rollup(&mut prev_it, prev_started, prev_bucket, cb);
                    prev_started = true;
                }
                if curr_sum < prev_sum {
                    return true;
                }
                ci += 1;
                pi += 1;
            } else if cb < pb {
                ci += 1;
            } else {
                // Also taken for NaN bounds, which guarantees progress.
                pi += 1;
            }
        }
        false
    }

    /// Reduces the resolution to `target_schema` (Go `ReduceResolution`).
    /// Does nothing if that is not possible (custom buckets, target not
    /// lower than the current schema, inconsistent spans); see
    /// [`Self::try_reduce_resolution`] for the error.
    pub fn reduce_resolution(&mut self, target_schema: i32) {
        let _ = self.try_reduce_resolution(target_schema);
    }

    /// [`Self::reduce_resolution`] reporting why it could not be done.
    pub fn try_reduce_resolution(&mut self, target_schema: i32) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() {
            return Err(HistogramError::ReduceResolution(
                "cannot reduce resolution when there are custom buckets".into(),
            ));
        }
        if is_custom_buckets_schema(target_schema) {
            return Err(HistogramError::ReduceResolution(
                "cannot reduce resolution to custom buckets schema".into(),
            ));
        }
        if target_schema >= self.schema {
            return Err(HistogramError::ReduceResolution(format!(
                "cannot reduce resolution from schema {} to {}",
                self.schema, target_schema
            )));
        }
        let (ps, pb) = reduce_resolution_spans(
            &self.positive_spans,
            &self.positive_buckets,
            self.schema,
            target_schema,
            "positive",
        )?;
        let (ns, nb) = reduce_resolution_spans(
            &self.negative_spans,
            &self.negative_buckets,
            self.schema,
            target_schema,
            "negative",
        )?;
        self.positive_spans = ps;
        self.positive_buckets = pb;
        self.negative_spans = ns;
        self.negative_buckets = nb;
        self.schema = target_schema;
        Ok(())
    }

    /// Consistency checks of Go `Validate`: spans vs. buckets, negative
    /// counts, custom bounds, and fields not allowed for the schema.
    pub fn validate(&self) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() {
            check_custom_bounds(
                &self.custom_values,
                &self.positive_spans,
                self.positive_buckets.len(),
            )?;
            if self.zero_count != 0.0 {
                return Err(HistogramError::CustomBucketsZeroCount);
            }
            if self.zero_threshold != 0.0 {
                return Err(HistogramError::CustomBucketsZeroThreshold);
            }
            if !self.negative_spans.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeSpans);
            }
            if !self.negative_buckets.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeBuckets);
            }
        } else if is_exponential_schema(self.schema) {
            check_histogram_spans(
                &self.positive_spans,
                self.positive_buckets.len(),
                "positive",
            )?;
            check_histogram_spans(
                &self.negative_spans,
                self.negative_buckets.len(),
                "negative",
            )?;
            check_buckets(&self.negative_buckets, "negative")?;
            if self.zero_count < 0.0 {
                return Err(HistogramError::NegativeBucketCount {
                    side: "zero",
                    bucket_number: 0,
                    count: self.zero_count,
                });
            }
            if !self.custom_values.is_empty() {
                return Err(HistogramError::ExponentialSchemaCustomBounds);
            }
        } else {
            return Err(HistogramError::InvalidSchema(self.schema));
        }
        if self.count < 0.0 {
            return Err(HistogramError::NegativeCount(self.count));
        }
        check_buckets(&self.positive_buckets, "positive")
    }
}

/// Go `detectReset` over two bucket iterators of the same schema.
fn detect_reset_buckets(mut curr_it: ForwardIter<'_>, mut prev_it: ForwardIter<'_>) -> bool {
    // Stripped buckets: (count, index) without computing bounds.
    fn next_stripped(it: &mut ForwardIter<'_>) -> Option<(f64, i64)> {
        if it.advance() {
            Some((it.curr_count, it.curr_idx))
        } else {
            None
        }
    }
    fn any_populated(first: (f64, i64), it: &mut ForwardIter<'_>) -> bool {
        let mut b = first;
        loop {
            if b.0 != 0.0 {
                return true;
            }
            match next_stripped(it) {
                Some(n) => b = n,
                None => return false,
            }
        }
    }
    let Some(mut prev) = next_stripped(&mut prev_it) else {
        return false; // Nothing in previous, nothing can be reset.
    };
    let Some(mut curr) = next_stripped(&mut curr_it) else {
        return any_populated(prev, &mut prev_it);
    };
    loop {
        // Forward curr until it reaches prev's index.
        while curr.1 < prev.1 {
            match next_stripped(&mut curr_it) {
                Some(c) => curr = c,
                None => return any_populated(prev, &mut prev_it),
            }
        }
        if curr.1 > prev.1 {
            // Previous has a bucket the current one lacks.
            if prev.0 != 0.0 {
                return true;
            }
        } else if curr.0 < prev.0 {
            return true;
        }
        match next_stripped(&mut prev_it) {
            Some(p) => prev = p,
            None => return false,
        }
    }
}

/// Go `checkHistogramSpans`.
fn check_histogram_spans(
    spans: &[Span],
    num_buckets: usize,
    side: &'static str,
) -> Result<(), HistogramError> {
    let mut span_buckets: u64 = 0;
    for (n, span) in spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(HistogramError::SpanNegativeOffset {
                side,
                span_number: n + 1,
                offset: span.offset,
            });
        }
        span_buckets += span.length as u64;
    }
    if span_buckets != num_buckets as u64 {
        return Err(HistogramError::SpansBucketsMismatch {
            side,
            spans_need: span_buckets,
            have: num_buckets,
        });
    }
    Ok(())
}

/// Go `checkHistogramBuckets` for absolute counts.
fn check_buckets(buckets: &[f64], side: &'static str) -> Result<(), HistogramError> {
    match buckets.iter().position(|&c| c < 0.0) {
        Some(i) => Err(HistogramError::NegativeBucketCount {
            side,
            bucket_number: i + 1,
            count: buckets[i],
        }),
        None => Ok(()),
    }
}

/// Go `checkHistogramCustomBounds`.
fn check_custom_bounds(
    bounds: &[f64],
    spans: &[Span],
    num_buckets: usize,
) -> Result<(), HistogramError> {
    let mut prev = f64::NEG_INFINITY;
    for (i, &curr) in bounds.iter().enumerate() {
        if curr.is_nan() {
            return Err(HistogramError::CustomBucketsNaN);
        }
        if i > 0 && curr <= prev {
            return Err(HistogramError::CustomBucketsNotIncreasing { prev, curr });
        }
        prev = curr;
    }
    if prev == f64::INFINITY {
        return Err(HistogramError::CustomBucketsInfinite);
    }
    let mut span_buckets: u64 = 0;
    let mut total_span_length: i64 = 0;
    for (n, span) in spans.iter().enumerate() {
        if span.offset < 0 {
            return Err(HistogramError::SpanNegativeOffset {
                side: "positive",
                span_number: n + 1,
                offset: span.offset,
            });
        }
        span_buckets += span.length as u64;
        total_span_length += span.length as i64 + span.offset as i64;
    }
    if span_buckets != num_buckets as u64 {
        return Err(HistogramError::SpansBucketsMismatch {
            side: "positive",
            spans_need: span_buckets,
            have: num_buckets,
        });
    }
    if (bounds.len() as i64 + 1) < total_span_length {
        return Err(HistogramError::CustomBucketsTooFew {
            bounds: bounds.len(),
            span_length: total_span_length as u64,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Span/bucket algorithms (ports of the Go helpers)
// ---------------------------------------------------------------------------

/// Adds (or, if `negative`, subtracts) the buckets of B to those of A,
/// inserting buckets missing in A (Go `addBuckets`). Both must use `schema`.
/// Buckets of B with an upper bound ≤ `threshold` (exponential schemas
/// only) are ignored: they are inside the zero bucket. Indices are tracked
/// as i64 and every access is checked, so inconsistent input cannot panic.
fn add_buckets(
    schema: i32,
    threshold: f64,
    negative: bool,
    mut spans_a: Vec<Span>,
    mut buckets_a: Vec<f64>,
    spans_b: &[Span],
    buckets_b: &[f64],
) -> (Vec<Span>, Vec<f64>) {
    let mut i_span: i64 = -1; // -1: not yet positioned in A.
    let mut i_bucket: i64 = -1;
    let mut i_in_span: i64 = 0;
    let mut index_a: i64 = 0;
    let mut index_b: i64 = 0;
    let mut b_idx_b: usize = 0;
    let mut lower_than_threshold = true;

    for span_b in spans_b {
        index_b += span_b.offset as i64;
        for _ in 0..span_b.length {
            'body: {
                if lower_than_threshold
                    && is_exponential_schema(schema)
                    && get_bound_exponential(index_b, schema) <= threshold
                {
                    break 'body;
                }
                lower_than_threshold = false;

                let Some(&b) = buckets_b.get(b_idx_b) else {
                    return (spans_a, buckets_a);
                };
                let bucket_b = if negative { -b } else { b };

                if i_span == -1 {
                    let first_offset = spans_a.first().map(|s| s.offset as i64);
                    if first_offset.is_none_or(|o| o > index_b) {
                        // Add bucket before all others.
                        buckets_a.insert(0, bucket_b);
                        if first_offset == Some(index_b + 1) {
                            spans_a[0].length += 1;
                            spans_a[0].offset -= 1;
                            break 'body;
                        }
                        spans_a.insert(
                            0,
                            Span {
                                offset: index_b as i32,
                                length: 1,
                            },
                        );
                        if let Some(s) = spans_a.get_mut(1) {
                            // Absolute offset of the formerly first span becomes relative.
                            s.offset = (s.offset as i64 - (index_b + 1)) as i32;
                        }
                        break 'body;
                    } else if first_offset == Some(index_b) {
                        // Just add to the first bucket.
                        match buckets_a.get_mut(0) {
                            Some(v) => *v += bucket_b,
                            None => return (spans_a, buckets_a),
                        }
                        break 'body;
                    }
                    i_span = 0;
                    i_bucket = 0;
                    i_in_span = 0;
                    index_a = first_offset.unwrap_or(0);
                }
                let mut delta_index = index_b - index_a;
                loop {
                    let Some(span) = spans_a.get(i_span as usize) else {
                        return (spans_a, buckets_a);
                    };
                    let remaining_in_span = span.length as i64 - i_in_span;
                    if delta_index < remaining_in_span {
                        // Bucket is in the current span.
                        i_bucket += delta_index;
                        i_in_span += delta_index;
                        match usize::try_from(i_bucket)
                            .ok()
                            .and_then(|i| buckets_a.get_mut(i))
                        {
                            Some(v) => *v += bucket_b,
                            None => return (spans_a, buckets_a),
                        }
                        break;
                    }
                    delta_index -= remaining_in_span;
                    i_bucket += remaining_in_span;
                    i_span += 1;
                    let next_offset = spans_a.get(i_span as usize).map(|s| s.offset as i64);
                    if next_offset.is_none_or(|o| delta_index < o) {
                        // Bucket is in the gap behind the previous span (or
                        // there are no further spans).
                        let ib = match usize::try_from(i_bucket) {
                            Ok(ib) if ib <= buckets_a.len() => ib,
                            _ => return (spans_a, buckets_a),
                        };
                        buckets_a.insert(ib, bucket_b);
                        if delta_index == 0 {
                            // Directly after the previous span: extend it.
                            if let Some(s) = spans_a.get_mut(i_span as usize) {
                                s.offset -= 1;
                            }
                            i_span -= 1;
                            let prev = &mut spans_a[i_span as usize];
                            i_in_span = prev.length as i64;
                            prev.length += 1;
                        } else if next_offset.is_some_and(|o| delta_index == o - 1) {
                            // Directly before the next span: extend it.
                            i_in_span = 0;
                            let next = &mut spans_a[i_span as usize];
                            next.offset -= 1;
                            next.length += 1;
                        } else {
                            // Not adjacent to anything: new span.
                            i_in_span = 0;
                            if let Some(s) = spans_a.get_mut(i_span as usize) {
                                s.offset = (s.offset as i64 - (delta_index + 1)) as i32;
                            }
                            spans_a.insert(
                                i_span as usize,
                                Span {
                                    length: 1,
                                    offset: delta_index as i32,
                                },
                            );
                        }
                        break 'body;
                    }
                    // Try the start of the next span.
                    delta_index -= next_offset.unwrap_or(0);
                    i_in_span = 0;
                }
            }
            // nextLoop:
            index_a = index_b;
            index_b += 1;
            b_idx_b += 1;
        }
    }
    (spans_a, buckets_a)
}

/// Go `compactBuckets` for absolute float counts.
fn compact_buckets(buckets: &mut Vec<f64>, spans: &mut Vec<Span>, max_empty_buckets: usize) {
    let max_empty = i64::try_from(max_empty_buckets).unwrap_or(i64::MAX);
    // Fast path: no empty bucket, no small offset, no empty span.
    if !buckets.contains(&0.0)
        && spans
            .iter()
            .all(|s| (s.offset as i64) > max_empty && s.length != 0)
    {
        return;
    }

    // Merge spans with zero offset into their predecessor.
    if spans.len() > 1 {
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for (i, &span) in spans.iter().enumerate() {
            match merged.last_mut() {
                Some(last) if i > 0 && span.offset == 0 => {
                    last.length = last.length.wrapping_add(span.length)
                }
                _ => merged.push(span),
            }
        }
        *spans = merged;
    }
    // Drop zero-length spans, carrying their offset to the next span.
    let mut kept: Vec<Span> = Vec::with_capacity(spans.len());
    let mut carry: i32 = 0;
    for &span in spans.iter() {
        if span.length == 0 {
            carry = carry.wrapping_add(span.offset);
            continue;
        }
        kept.push(Span {
            offset: span.offset.wrapping_add(carry),
            length: span.length,
        });
        carry = 0;
    }
    *spans = kept;
    if spans.is_empty() {
        buckets.clear();
        return;
    }

    // Cut empty buckets from the start and end of spans, and from their
    // middle if more than max_empty_buckets are consecutive.
    let (mut i_bucket, mut i_span, mut pos_in_span) = (0usize, 0usize, 0u32);
    while i_bucket < buckets.len() && i_span < spans.len() {
        // Number of consecutive empty buckets from here, within the span.
        let mut n_empty = 0usize;
        {
            let len = spans[i_span].length;
            let mut v = buckets[i_bucket];
            while (n_empty as u64 + pos_in_span as u64) < len as u64 && v == 0.0 {
                n_empty += 1;
                match buckets.get(i_bucket + n_empty) {
                    Some(&x) => v = x,
                    None => break,
                }
            }
        }
        if n_empty > 0 {
            let remaining = spans[i_span].length.wrapping_sub(pos_in_span) as u64;
            if pos_in_span > 0 && (n_empty as u64) < remaining && (n_empty as i64) <= max_empty {
                // Few enough empty buckets in the middle of a span: keep them.
                i_bucket += n_empty;
                pos_in_span += n_empty as u32;
                continue;
            }
            buckets.drain(i_bucket..i_bucket + n_empty);
            if pos_in_span == 0 {
                // Start of span.
                if n_empty as u64 == spans[i_span].length as u64 {
                    // The whole span is empty.
                    let offset = spans[i_span].offset;
                    spans.remove(i_span);
                    if let Some(s) = spans.get_mut(i_span) {
                        s.offset = s.offset.wrapping_add(offset).wrapping_add(n_empty as i32);
                    }
                    continue;
                }
                spans[i_span].length = spans[i_span].length.wrapping_sub(n_empty as u32);
                spans[i_span].offset = spans[i_span].offset.wrapping_add(n_empty as i32);
                continue;
            }
            // In the middle or at the end of the span: split it.
            let new_span = Span {
                offset: n_empty as i32,
                length: spans[i_span]
                    .length
                    .wrapping_sub(pos_in_span)
                    .wrapping_sub(n_empty as u32),
            };
            spans[i_span].length = pos_in_span;
            i_span += 1;
            pos_in_span = 0;
            if new_span.length == 0 {
                // We were at the end of the span already.
                if let Some(s) = spans.get_mut(i_span) {
                    s.offset = s.offset.wrapping_add(n_empty as i32);
                }
                continue;
            }
            spans.insert(i_span, new_span);
            continue;
        }
        i_bucket += 1;
        pos_in_span += 1;
        if pos_in_span >= spans[i_span].length {
            pos_in_span = 0;
            i_span += 1;
        }
    }
    if max_empty == 0 || buckets.is_empty() {
        return;
    }

    // Merge spans whose gap is at most max_empty_buckets, filling in zeros.
    let Some(first) = spans.first() else { return };
    let mut i_bucket = first.length as usize;
    let mut i_span = 1;
    while i_span < spans.len() {
        let offset = spans[i_span].offset as i64;
        let len = spans[i_span].length as usize;
        if offset > max_empty {
            i_bucket += len;
            i_span += 1;
            continue;
        }
        let gap = offset.max(0) as usize;
        spans[i_span - 1].length = spans[i_span - 1]
            .length
            .wrapping_add(gap as u32)
            .wrapping_add(len as u32);
        spans.remove(i_span);
        let at = i_bucket.min(buckets.len());
        buckets.splice(at..at, std::iter::repeat_n(0.0, gap));
        i_bucket += gap + len;
    }
}

/// Merges buckets of `origin_schema` into the lower `target_schema` (Go
/// `reduceResolution` for absolute counts). Errors on inconsistent spans.
fn reduce_resolution_spans(
    origin_spans: &[Span],
    origin_buckets: &[f64],
    origin_schema: i32,
    target_schema: i32,
    side: &'static str,
) -> Result<(Vec<Span>, Vec<f64>), HistogramError> {
    let mut target_spans: Vec<Span> = Vec::new();
    let mut target_buckets: Vec<f64> = Vec::new();
    let mut bucket_idx: i64 = 0;
    let mut bucket_count_idx: usize = 0;
    let mut last_target_idx: i64 = 0;
    let mut needed: u64 = 0;
    for (n, span) in origin_spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(HistogramError::SpanNegativeOffset {
                side,
                span_number: n + 1,
                offset: span.offset,
            });
        }
        needed += span.length as u64;
        bucket_idx += span.offset as i64;
        for _ in 0..span.length {
            let Some(&count) = origin_buckets.get(bucket_count_idx) else {
                let total: u64 = origin_spans.iter().map(|s| s.length as u64).sum();
                return Err(HistogramError::SpansBucketsMismatch {
                    side,
                    spans_need: total,
                    have: origin_buckets.len(),
                });
            };
            let t = target_idx(bucket_idx, origin_schema, target_schema);
            if target_spans.is_empty() {
                target_spans.push(Span {
                    offset: t as i32,
                    length: 1,
                });
                target_buckets.push(count);
                last_target_idx = t;
            } else if last_target_idx == t {
                if let Some(last) = target_buckets.last_mut() {
                    *last += count;
                }
            } else if last_target_idx + 1 == t {
                if let Some(last) = target_spans.last_mut() {
                    last.length += 1;
                }
                last_target_idx += 1;
                target_buckets.push(count);
            } else {
                target_spans.push(Span {
                    offset: (t - last_target_idx - 1) as i32,
                    length: 1,
                });
                last_target_idx = t;
                target_buckets.push(count);
            }
            bucket_idx += 1;
            bucket_count_idx += 1;
        }
    }
    if bucket_count_idx != origin_buckets.len() {
        return Err(HistogramError::SpansBucketsMismatch {
            side,
            spans_need: needed,
            have: origin_buckets.len(),
        });
    }
    Ok((target_spans, target_buckets))
}

/// Bounds present in both sorted bound sets (Go `intersectCustomBucketBounds`).
fn intersect_custom_bucket_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut result = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            result.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    result
}

/// Adds/subtracts custom-bucket histograms with different bounds by mapping
/// both onto the intersected bounds (Go `addCustomBucketsWithMismatches`).
/// Each source bucket goes to the first intersected bucket whose upper
/// bound is ≥ its own upper bound. Zero-valued result buckets are dropped.
#[allow(clippy::too_many_arguments)]
fn add_custom_buckets_with_mismatches(
    negative: bool,
    spans_a: &[Span],
    buckets_a: &[f64],
    bounds_a: &[f64],
    spans_b: &[Span],
    buckets_b: &[f64],
    bounds_b: &[f64],
    intersected: &[f64],
) -> (Vec<Span>, Vec<f64>) {
    let n = intersected.len() + 1;
    let mut target = vec![0.0; n];
    let mut comp = vec![0.0; n];

    let mut map_buckets = |spans: &[Span], buckets: &[f64], bounds: &[f64], negative: bool| {
        let mut src_idx: i64 = 0;
        let mut bucket_idx = 0usize;
        let mut intersect_idx = 0usize;
        for span in spans {
            src_idx += span.offset as i64;
            for _ in 0..span.length {
                if let Some(&value) = buckets.get(bucket_idx) {
                    let mut t = n - 1; // Default: the +Inf bucket.
                    if src_idx >= 0 && (src_idx as usize) < bounds.len() {
                        let src_bound = bounds[src_idx as usize];
                        while intersect_idx < intersected.len() {
                            if intersected[intersect_idx] >= src_bound {
                                t = intersect_idx;
                                break;
                            }
                            intersect_idx += 1;
                        }
                    }
                    let inc = if negative { -value } else { value };
                    (target[t], comp[t]) = kahan_inc(inc, target[t], comp[t]);
                }
                src_idx += 1;
                bucket_idx += 1;
            }
        }
    };
    map_buckets(spans_a, buckets_a, bounds_a, false);
    map_buckets(spans_b, buckets_b, bounds_b, negative);

    // As in Go, the result takes the Kahan sums without their compensation.
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::new();
    let mut last_idx: i64 = -1;
    for i in 0..n {
        if target[i] == 0.0 && comp[i] == 0.0 {
            continue;
        }
        buckets.push(target[i]);
        let idx = i as i64;
        match spans.last_mut() {
            Some(last) if idx == last_idx + 1 => last.length += 1,
            Some(_) => spans.push(Span {
                offset: (idx - last_idx - 1) as i32,
                length: 1,
            }),
            None => spans.push(Span {
                offset: idx as i32,
                length: 1,
            }),
        }
        last_idx = idx;
    }
    (spans, buckets)
}

// ---------------------------------------------------------------------------
// Encoding, rendering, comparison
// ---------------------------------------------------------------------------

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64); // Zig-zag.
}

/// Bounds-checked reader for [`FloatHistogram::decode`].
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn err(&self, what: &str) -> HistogramError {
        HistogramError::Decode(format!("{what} at byte {}", self.pos))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn u8(&mut self, what: &str) -> Result<u8, HistogramError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| self.err(&format!("truncated {what}")))?;
        self.pos += 1;
        Ok(b)
    }

    fn f64(&mut self, what: &str) -> Result<f64, HistogramError> {
        let end = self.pos.checked_add(8).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.err(&format!("truncated {what}")));
        };
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(f64::from_le_bytes(raw))
    }

    fn uvarint(&mut self, what: &str) -> Result<u64, HistogramError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8(what)?;
            if shift == 63 && b > 1 {
                return Err(self.err(&format!("overflowing varint in {what}")));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err(&format!("overflowing varint in {what}")))
    }

    fn varint_i32(&mut self, what: &str) -> Result<i32, HistogramError> {
        let u = self.uvarint(what)?;
        let v = ((u >> 1) as i64) ^ -((u & 1) as i64);
        i32::try_from(v).map_err(|_| self.err(&format!("{what} out of range")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, HistogramError> {
        let u = self.uvarint(what)?;
        u32::try_from(u).map_err(|_| self.err(&format!("{what} out of range")))
    }

    /// A length prefix, checked against the bytes left (each element takes
    /// at least `min_elem_size` bytes) so garbage cannot trigger huge allocations.
    fn len(&mut self, what: &str, min_elem_size: usize) -> Result<usize, HistogramError> {
        let n = self.uvarint(what)?;
        if n > (self.remaining() / min_elem_size) as u64 {
            return Err(self.err(&format!("{what} length {n} exceeds input")));
        }
        Ok(n as usize)
    }

    fn spans(&mut self, what: &str) -> Result<Vec<Span>, HistogramError> {
        let n = self.len(what, 2)?;
        let mut spans = Vec::with_capacity(n);
        for _ in 0..n {
            let offset = self.varint_i32(what)?;
            let length = self.u32(what)?;
            spans.push(Span { offset, length });
        }
        Ok(spans)
    }

    fn floats(&mut self, what: &str) -> Result<Vec<f64>, HistogramError> {
        let n = self.len(what, 8)?;
        (0..n).map(|_| self.f64(what)).collect()
    }
}

impl FloatHistogram {
    /// Appends the compact binary encoding: version byte (1), counter reset
    /// hint byte, zig-zag varint schema, zero threshold, zero count, count,
    /// sum (f64 little-endian, bit-exact so NaN payloads such as the stale
    /// marker survive), then positive spans, negative spans (varint count,
    /// then zig-zag offset + varint length each), positive buckets, negative
    /// buckets and custom values (varint count, then f64 LE each).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(ENCODING_VERSION);
        out.push(self.counter_reset_hint.to_byte());
        put_varint(out, self.schema as i64);
        for v in [self.zero_threshold, self.zero_count, self.count, self.sum] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for spans in [&self.positive_spans, &self.negative_spans] {
            put_uvarint(out, spans.len() as u64);
            for s in spans.iter() {
                put_varint(out, s.offset as i64);
                put_uvarint(out, s.length as u64);
            }
        }
        for floats in [
            &self.positive_buckets,
            &self.negative_buckets,
            &self.custom_values,
        ] {
            put_uvarint(out, floats.len() as u64);
            for v in floats.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// Decodes what [`Self::encode`] wrote. Rejects unknown versions, unknown
    /// hints, truncated input, trailing bytes and out-of-range integers;
    /// never panics. It does not check semantic consistency (use
    /// [`Self::validate`] for that).
    pub fn decode(bytes: &[u8]) -> Result<FloatHistogram, HistogramError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8("version")?;
        if version != ENCODING_VERSION {
            return Err(HistogramError::Decode(format!(
                "unsupported version {version}"
            )));
        }
        let hint_byte = r.u8("counter reset hint")?;
        let counter_reset_hint = CounterResetHint::from_byte(hint_byte).ok_or_else(|| {
            HistogramError::Decode(format!("unknown counter reset hint {hint_byte}"))
        })?;
        let schema = r.varint_i32("schema")?;
        let zero_threshold = r.f64("zero threshold")?;
        let zero_count = r.f64("zero count")?;
        let count = r.f64("count")?;
        let sum = r.f64("sum")?;
        let positive_spans = r.spans("positive spans")?;
        let negative_spans = r.spans("negative spans")?;
        let positive_buckets = r.floats("positive buckets")?;
        let negative_buckets = r.floats("negative buckets")?;
        let custom_values = r.floats("custom values")?;
        if r.remaining() != 0 {
            return Err(r.err("trailing bytes"));
        }
        Ok(FloatHistogram {
            counter_reset_hint,
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive_spans,
            negative_spans,
            positive_buckets,
            negative_buckets,
            custom_values,
        })
    }

    /// Go `FloatHistogram.String()`, e.g.
    /// `{count:20, sum:10, [-2,-1):1, [-1,-0.5):2, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2}`.
    /// Lists non-empty buckets in ascending order; bucket bounds are not
    /// clamped to the zero threshold here (unlike [`Self::api_buckets`]).
    pub fn to_prom_string(&self) -> String {
        let mut s = format!(
            "{{count:{}, sum:{}",
            format_go_float(self.count),
            format_go_float(self.sum)
        );
        let negative: Vec<Bucket> = self
            .negative_buckets_iter()
            .filter(|b| b.count != 0.0)
            .collect();
        for b in negative.iter().rev() {
            s.push_str(", ");
            s.push_str(&b.to_prom_string());
        }
        if self.zero_count != 0.0 && !self.uses_custom_buckets() {
            s.push_str(", ");
            s.push_str(&self.zero_bucket().to_prom_string());
        }
        for b in self.positive_buckets_iter().filter(|b| b.count != 0.0) {
            s.push_str(", ");
            s.push_str(&b.to_prom_string());
        }
        s.push('}');
        s
    }

    /// Every bucket with a non-zero count in ascending order, as the HTTP
    /// API's JSON `buckets` lists them (Prometheus `jsonutil.MarshalHistogram`
    /// over `AllBucketIterator`): `(boundary rule, lower, upper, count)` with
    /// rule 0 = (lower, upper], 1 = [lower, upper), 2 = (lower, upper),
    /// 3 = [lower, upper]. Exponential positive buckets are rule 0, negative
    /// ones rule 1, the zero bucket rule 3; custom buckets are rule 0 except
    /// the first, `[-Inf, b0]`, which is rule 3. Buckets overlapping the zero
    /// bucket are clamped to the zero threshold.
    pub fn api_buckets(&self) -> Vec<(u8, f64, f64, f64)> {
        self.all_buckets_iter()
            .filter(|b| b.count != 0.0)
            .map(|b| {
                let rule = match (b.lower_inclusive, b.upper_inclusive) {
                    (true, true) => 3,
                    (true, false) => 1,
                    (false, true) => 0,
                    (false, false) => 2,
                };
                (rule, b.lower, b.upper, b.count)
            })
            .collect()
    }

    /// Go `TestExpression()`: the promqltest literal (with `{{`/`}}`) of the
    /// histogram after compacting it into at most one span per side.
    pub fn to_test_expression(&self) -> String {
        let mut m = self.clone();
        m.compact(usize::MAX);
        let mut res: Vec<String> = Vec::new();
        if m.schema != 0 {
            res.push(format!("schema:{}", m.schema));
        }
        if m.count != 0.0 {
            res.push(format!("count:{}", format_go_float(m.count)));
        }
        if m.sum != 0.0 {
            res.push(format!("sum:{}", format_go_float(m.sum)));
        }
        if m.zero_count != 0.0 {
            res.push(format!("z_bucket:{}", format_go_float(m.zero_count)));
        }
        if m.zero_threshold != 0.0 {
            res.push(format!("z_bucket_w:{}", format_go_float(m.zero_threshold)));
        }
        if m.uses_custom_buckets() {
            res.push(format!(
                "custom_values:[{}]",
                join_go_floats(&m.custom_values)
            ));
        }
        match m.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => res.push("counter_reset_hint:reset".into()),
            CounterResetHint::NotCounterReset => res.push("counter_reset_hint:not_reset".into()),
            CounterResetHint::Gauge => res.push("counter_reset_hint:gauge".into()),
        }
        for (buckets, spans, bkey, okey) in [
            (&m.positive_buckets, &m.positive_spans, "buckets", "offset"),
            (
                &m.negative_buckets,
                &m.negative_spans,
                "n_buckets",
                "n_offset",
            ),
        ] {
            // Go panics on more than one span; after compact(MAX) there is at most one.
            if let Some(span) = spans.first().filter(|s| s.offset != 0) {
                res.push(format!("{okey}:{}", span.offset));
            }
            if !buckets.is_empty() {
                res.push(format!("{bkey}:[{}]", join_go_floats(buckets)));
            }
        }
        format!("{{{{{}}}}}", res.join(" "))
    }

    /// Equality as promqltest compares expected and actual histograms: both
    /// compacted with `compact(0)`, schema and zero threshold equal, custom
    /// values equal (custom schema only), equivalent span layouts, and
    /// count, sum, zero count and buckets equal within promqltest's relative
    /// tolerance [`DEFAULT_TEST_EPSILON`] (NaN equals NaN, StaleNaN only
    /// equals StaleNaN). The counter reset hint is compared only when
    /// `compare_hint`. Use [`Self::equals_for_test_eps`] with epsilon 0 for
    /// exact float comparison.
    pub fn equals_for_test(&self, other: &FloatHistogram, compare_hint: bool) -> bool {
        self.equals_for_test_eps(other, compare_hint, DEFAULT_TEST_EPSILON)
    }

    /// [`Self::equals_for_test`] with an explicit relative tolerance.
    pub fn equals_for_test_eps(
        &self,
        other: &FloatHistogram,
        compare_hint: bool,
        epsilon: f64,
    ) -> bool {
        let mut exp = self.clone();
        let mut cur = other.clone();
        exp.compact(0);
        cur.compact(0);
        let eq = |a: f64, b: f64| almost_equal(a, b, epsilon);
        let buckets_eq =
            |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| eq(*x, *y));
        if exp.schema != cur.schema || !eq(exp.count, cur.count) || !eq(exp.sum, cur.sum) {
            return false;
        }
        if exp.uses_custom_buckets()
            && !custom_bucket_bounds_match(&exp.custom_values, &cur.custom_values)
        {
            return false;
        }
        if exp.zero_threshold != cur.zero_threshold || !eq(exp.zero_count, cur.zero_count) {
            return false;
        }
        if !spans_match(&exp.negative_spans, &cur.negative_spans)
            || !buckets_eq(&exp.negative_buckets, &cur.negative_buckets)
            || !spans_match(&exp.positive_spans, &cur.positive_spans)
            || !buckets_eq(&exp.positive_buckets, &cur.positive_buckets)
        {
            return false;
        }
        !compare_hint || exp.counter_reset_hint == cur.counter_reset_hint
    }
}

/// Prometheus `almost.Equal`.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    let stale_a = a.to_bits() == STALE_NAN_BITS;
    let stale_b = b.to_bits() == STALE_NAN_BITS;
    if stale_a || stale_b {
        return stale_a && stale_b;
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE; // Smallest positive normal f64.
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// promqltest `spansMatch`: same bucket layout, ignoring zero-length spans.
fn spans_match(s1: &[Span], s2: &[Span]) -> bool {
    if s1.is_empty() && s2.is_empty() {
        return true;
    }
    fn all_empty(s: &[Span]) -> bool {
        s.iter().all(|x| x.length == 0)
    }
    // Folds a run of zero-length spans into the next non-empty one.
    fn next(s: &[Span], idx: &mut usize) -> Span {
        let mut cur = s[*idx];
        *idx += 1;
        if cur.length == 0 {
            while *idx < s.len() && s[*idx].length == 0 {
                cur.offset = cur.offset.wrapping_add(s[*idx].offset);
                *idx += 1;
            }
            if *idx < s.len() {
                cur.offset = cur.offset.wrapping_add(s[*idx].offset);
                cur.length = s[*idx].length;
                *idx += 1;
            }
        }
        cur
    }
    let (mut i1, mut i2) = (0, 0);
    loop {
        if i1 >= s1.len() {
            return all_empty(&s2[i2..]);
        }
        if i2 >= s2.len() {
            return all_empty(&s1[i1..]);
        }
        let c1 = next(s1, &mut i1);
        let c2 = next(s2, &mut i2);
        if c1.length == 0 && c2.length == 0 {
            return true;
        }
        if c1 != c2 {
            return false;
        }
    }
}

fn join_go_floats(v: &[f64]) -> String {
    v.iter()
        .map(|x| format_go_float(*x))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Formats a float like Go's `fmt` `%g`/`%v` (= `strconv.FormatFloat(x,
/// 'g', -1, 64)`, as Prometheus' `String()` uses): shortest round-trip
/// digits, exponent form with at least two exponent digits (`1e-05`,
/// `1.5e+06`) when the decimal exponent is < -4 or ≥ 6, plus `+Inf`,
/// `-Inf`, `NaN` and `-0`.
pub fn format_go_float(x: f64) -> String {
    format_go_g(x, 6)
}

/// Go `strconv.FormatFloat(x, 'g', -1, 64)` semantics with `fmt`'s
/// `+Inf`: shortest round-trip digits; %e form when the decimal exponent is
/// < -4 or ≥ `eprec`.
fn format_go_g(x: f64, eprec: i32) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` yields the shortest round-trip digits, e.g. "-1.2345e-5".
    let sci = format!("{:e}", x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else {
        let dp = exp + 1; // Position of the decimal point within digits.
        let nd = digits.len() as i32;
        if dp <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-dp) as usize));
            out.push_str(&digits);
        } else if dp >= nd {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (dp - nd) as usize));
        } else {
            out.push_str(&digits[..dp as usize]);
            out.push('.');
            out.push_str(&digits[dp as usize..]);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// PromQL functions
// ---------------------------------------------------------------------------

/// The counter reset hint Prometheus' TSDB gives `current` when it is
/// appended after `previous` in the same series, if `current` has none
/// (`Unknown`): `CounterReset` when it is one, else `NotCounterReset`.
/// Other hints (gauges, hints set by the sender) stay as they are.
pub fn appended_counter_reset_hint(
    previous: &FloatHistogram,
    current: &FloatHistogram,
) -> Option<CounterResetHint> {
    if current.counter_reset_hint != CounterResetHint::Unknown {
        return None;
    }
    Some(if current.detect_reset(previous) {
        CounterResetHint::CounterReset
    } else {
        CounterResetHint::NotCounterReset
    })
}

/// `histogram_quantile` for native histograms (Go `HistogramQuantile`,
/// without annotations).
///
/// q < 0 → -Inf, q > 1 → +Inf, NaN q or zero count → NaN. Within
/// exponential buckets the result is interpolated exponentially (on a log2
/// scale); within custom buckets and the zero bucket linearly. A natural
/// lower (upper) bound of 0 is assumed for the zero bucket if there are only
/// positive (negative) buckets; custom buckets use 0 as lower bound of a
/// first bucket with positive upper bound, return the upper bound of a first
/// bucket with non-positive upper bound and the lower bound of the +Inf bucket.
/// With NaN observations (sum NaN) a rank beyond all buckets yields NaN.
pub fn histogram_quantile(q: f64, h: &FloatHistogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let forward = h.sum.is_nan() || q < 0.5;
    // Forward iteration for NaN observations or q < 0.5, otherwise reverse.
    let (mut it, mut rank) = if forward {
        (AllIter::forward(h), q * h.count)
    } else {
        (AllIter::reverse(h), (1.0 - q) * h.count)
    };
    let mut bucket = Bucket::default();
    let mut count = 0.0;
    for b in it.by_ref() {
        bucket = b;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    if !h.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            // Zero bucket with only positive buckets: 0 is the lower bound.
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            // Zero bucket with only negative buckets: 0 is the upper bound.
            bucket.upper = 0.0;
        }
    } else if h.uses_custom_buckets() {
        if bucket.lower == f64::NEG_INFINITY {
            // First bucket, with lower bound -Inf.
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            // Last bucket, with upper bound +Inf.
            return bucket.lower;
        }
    }
    // Numerical inaccuracies could make count exceed h.count.
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        // Rank beyond all buckets: only expected with NaN observations.
        if h.sum.is_nan() {
            return f64::NAN;
        }
        return bucket.upper;
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    if h.sum.is_nan() {
        // Go drains the iterator here (to detect NaN skew for an annotation)
        // and in doing so overwrites `bucket` with the last remaining
        // bucket. Ported faithfully so results stay bit-identical.
        for b in it.by_ref() {
            bucket = b;
        }
    }
    let fraction = rank / bucket.count;
    // Linear interpolation for custom buckets and the zero bucket.
    if h.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    // Exponential interpolation: linear on a log2 scale.
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (log_lower + (log_upper - log_lower) * fraction).exp2();
    }
    // Negative bucket: mirrored.
    -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
}

/// `histogram_fraction` for native histograms (Go `HistogramFraction`,
/// without annotations): the estimated fraction of observations between
/// `lower` and `upper`, interpolating like [`histogram_quantile`]. Zero
/// count or NaN bounds → NaN; `lower >= upper` → 0. NaN observations are in
/// no bucket, so the fraction over (-Inf, +Inf) can be below 1 then.
pub fn histogram_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut it = AllIter::forward(h);
    for mut b in it.by_ref() {
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let linear = h.uses_custom_buckets() || zero_bucket;
        // Rank at a finite `v` strictly inside the bucket.
        let interpolate = |v: f64| -> f64 {
            if linear {
                // No interpolation in a bucket reaching down to -Inf
                // (counts as fully below v), nor up to +Inf (the formula
                // yields no contribution there).
                if b.lower == f64::NEG_INFINITY {
                    return b.count;
                }
                return rank + b.count * b.fraction_below(v, true);
            }
            rank + b.count * b.fraction_below(v, false)
        };
        if !lower_set && b.lower >= lower {
            // The lower value is at the lower bucket boundary.
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    if h.sum.is_nan() {
        // NaN observations are in no bucket: use the bucket total.
        for b in it {
            count += b.count;
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / h.count
}

/// `histogram_stdvar`: estimated variance of the observations, taking each
/// bucket's observations to be at its geometric mean (exponential buckets),
/// arithmetic mean (custom buckets) or 0 (zero bucket); Kahan-summed as in Go.
pub fn histogram_stdvar(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut variance, mut c) = (0.0, 0.0);
    for b in h.all_buckets_iter() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -v } else { v }
        };
        let delta = val - mean;
        (variance, c) = kahan_inc(b.count * delta * delta, variance, c);
    }
    (variance + c) / h.count
}

/// `histogram_stddev`: square root of [`histogram_stdvar`].
pub fn histogram_stddev(h: &FloatHistogram) -> f64 {
    histogram_stdvar(h).sqrt()
}

// ---------------------------------------------------------------------------
// promqltest literal parsing
// ---------------------------------------------------------------------------

/// Parses a promqltest native histogram literal: the text inside `{{`/`}}`,
/// e.g. `schema:0 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 1]
/// offset:1 n_buckets:[1] n_offset:0 custom_values:[1 2]
/// counter_reset_hint:gauge`. Items are space separated `key:value`, in any
/// order, all optional; duplicates are an error. `buckets`/`n_buckets`
/// become one span starting at `offset`/`n_offset` (an empty list gives no
/// span). Returns the histogram and whether `counter_reset_hint` was given.
///
/// Numbers follow the PromQL lexer/Go parser: optional sign (not for
/// `z_bucket_w`), `Inf`/`NaN` in any case, Go integer literals (`0x1f`,
/// `0o17`, `017` octal, `0b101`) and decimal floats. `schema`, `offset` and
/// `n_offset` take decimal integers. Durations (`1m`) are not supported.
pub fn parse_test_literal(inner: &str) -> Result<(FloatHistogram, bool), String> {
    let mut h = FloatHistogram::default();
    let mut hint_set = false;
    let mut seen: Vec<&str> = Vec::new();
    let (mut pos_offset, mut neg_offset) = (0i32, 0i32);
    let (mut pos_buckets, mut neg_buckets): (Option<Vec<f64>>, Option<Vec<f64>>) = (None, None);
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let colon = rest.find(':').ok_or_else(|| {
            format!(
                "unexpected {:?} in histogram description, expected key:value",
                rest
            )
        })?;
        let key = &rest[..colon];
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("invalid histogram description key {:?}", key));
        }
        rest = &rest[colon + 1..];
        let value;
        if rest.starts_with('[') {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("unclosed '[' in value of {:?}", key))?;
            value = &rest[..=close];
            rest = &rest[close + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = &rest[..end];
            rest = &rest[end..];
        }
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            return Err(format!(
                "missing space after value of {:?} in histogram description",
                key
            ));
        }
        rest = rest.trim_start();
        if value.is_empty() {
            return Err(format!(
                "missing value for {:?} in histogram description",
                key
            ));
        }
        if seen.contains(&key) {
            return Err(format!("duplicate key \"{key}\" in histogram"));
        }
        seen.push(key);
        let num = |signed: bool| {
            parse_promql_number(value, signed)
                .ok_or_else(|| format!("error parsing {key} number: {value:?}"))
        };
        let int =
            || parse_int(value).ok_or_else(|| format!("error parsing {key} number: {value:?}"));
        match key {
            "schema" => h.schema = int()?,
            "sum" => h.sum = num(true)?,
            "count" => h.count = num(true)?,
            "z_bucket" => h.zero_count = num(true)?,
            "z_bucket_w" => h.zero_threshold = num(false)?,
            "custom_values" => h.custom_values = parse_bucket_set(key, value)?,
            "buckets" => pos_buckets = Some(parse_bucket_set(key, value)?),
            "n_buckets" => neg_buckets = Some(parse_bucket_set(key, value)?),
            "offset" => pos_offset = int()?,
            "n_offset" => neg_offset = int()?,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => {
                        return Err(format!(
                            "error parsing counter_reset_hint: unknown value {value:?}"
                        ));
                    }
                };
            }
            _ => return Err(format!("unknown histogram description key {key:?}")),
        }
    }
    for (buckets, offset, spans, dest) in [
        (
            pos_buckets,
            pos_offset,
            &mut h.positive_spans,
            &mut h.positive_buckets,
        ),
        (
            neg_buckets,
            neg_offset,
            &mut h.negative_spans,
            &mut h.negative_buckets,
        ),
    ] {
        if let Some(b) = buckets {
            if !b.is_empty() {
                let length = u32::try_from(b.len()).map_err(|_| "too many buckets".to_string())?;
                spans.push(Span { offset, length });
            }
            *dest = b;
        }
    }
    Ok((h, hint_set))
}

/// `[n n n]` with single-space or any-whitespace separation.
fn parse_bucket_set(key: &str, value: &str) -> Result<Vec<f64>, String> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| format!("error parsing {key} float array: {value:?}"))?;
    inner
        .split_whitespace()
        .map(|t| {
            parse_promql_number(t, true)
                .ok_or_else(|| format!("error parsing {key} float array: bad number {t:?}"))
        })
        .collect()
}

/// Decimal integer with optional '-' (the PromQL grammar's `int`).
fn parse_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().and_then(|v| i32::try_from(v).ok())
}

/// A PromQL number: Go `strconv.ParseInt(s, 0, 64)` falling back to
/// `strconv.ParseFloat(s, 64)`, with an optional leading sign if `signed`.
fn parse_promql_number(s: &str, signed: bool) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') if signed => (true, &s[1..]),
        Some(b'+') if signed => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let v = parse_go_int_base0(body)
        .map(|i| i as f64)
        .or_else(|| parse_go_float(body))?;
    Some(if neg { -v } else { v })
}

/// Go `strconv.ParseInt(s, 0, 64)` for an unsigned body (no underscores).
fn parse_go_int_base0(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    i64::from_str_radix(digits, radix).ok()
}

/// Go `strconv.ParseFloat(s, 64)` for the decimal forms PromQL lexes
/// (digits, '.', exponent, `inf`/`infinity`/`nan` in any case).
fn parse_go_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "infinity" => return Some(f64::INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if !lower
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
    {
        return None;
    }
    lower.parse::<f64>().ok()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
// Expected values are copied verbatim from Prometheus' tests.
#[allow(clippy::approx_constant, clippy::type_complexity)]
mod tests {
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
        let h = lit(
            "schema:0 sum:10 count:20 z_bucket:2 z_bucket_w:0.001 buckets:[1 2] n_buckets:[2 1]",
        );
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
        let h = lit(
            "schema:0 sum:10 count:20 z_bucket:2 z_bucket_w:0.001 buckets:[1 0 2] n_buckets:[2 1]",
        );
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
        let h =
            lit("schema:0 count:2 z_bucket_w:0.5 buckets:[1] offset:-2 n_buckets:[1] n_offset:-2");
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
        let mut h = lit(
            "schema:2 count:4 sum:10 buckets:[1 0 0 0 1 0 0 1 1] n_buckets:[1 1 1] n_offset:-1",
        );
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
}
