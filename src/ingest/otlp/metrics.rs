//! OTLP metrics → `samples`, translated as Prometheus' own OTLP receiver
//! translates them with its default `UnderscoreEscapingWithSuffixes`
//! strategy (Prometheus `storage/remote/otlptranslator`, the
//! `prometheus/otlptranslator` module, and the OpenTelemetry spec
//! "Prometheus and OpenMetrics Compatibility"):
//!
//! * names: characters outside `[a-zA-Z0-9:]` split the name into words
//!   joined by `_`; the unit becomes a suffix (`s` → `_seconds`, `By` →
//!   `_bytes`, `By/s` → `_bytes_per_second`, `1` → none, `{thing}` → none);
//!   monotonic sums get `_total`, gauges with unit `1` get `_ratio`;
//! * gauge and non-monotonic sum → one gauge series; monotonic cumulative
//!   sum → a `_total` counter; histogram → `_bucket{le}` (cumulative counts,
//!   ending in `le="+Inf"` = count), `_sum` (when set) and `_count`; summary →
//!   `{quantile}`, `_sum`, `_count`; exponential histogram → one native
//!   histogram series (scale = schema, at most 8); delta (or unspecified)
//!   temporality is discarded with a reason, as Prometheus refuses it by
//!   default;
//! * labels: data point attributes with sanitised names (values of
//!   attributes that collide after sanitising are joined with `;`), `job` =
//!   `service.namespace/service.name` (or `service.name`), `instance` =
//!   `service.instance.id`; the other resource attributes go to one
//!   `target_info` series (value 1) per resource;
//! * times: nanoseconds → milliseconds; a data point flagged "no recorded
//!   value" becomes a Prometheus stale marker.
//!
//! Every series is checked with the tenant's label limits and every sample
//! with its time window; refused samples are counted with a reason.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint, SummaryDataPoint,
    exponential_histogram_data_point,
};

use super::{
    ROWS_PER_BATCH, any_value_text, attribute, format_float, label_name, ns, resource_attributes,
};
use crate::ingest::distributor::{Decoded, Discards};
use crate::ingest::limits::Limits;
use crate::ingest::validate::{check_labels, check_time, render_labels};
use crate::model::builders::SamplesBuilder;
use crate::model::histogram::{FloatHistogram, Span};
use crate::model::{STALE_NAN_BITS, Signal};

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const NO_RECORDED_VALUE: u32 = 1;
/// `AggregationTemporality` numbers.
const DELTA: i32 = 1;
const CUMULATIVE: i32 = 2;
/// `target_info` samples are spaced half of PromQL's default lookback delta
/// apart across the time range of a resource's samples (as Prometheus does);
/// at most this many per resource and request.
const TARGET_INFO_INTERVAL_MS: i64 = 150_000;
const MAX_TARGET_INFO_SAMPLES: usize = 1024;
/// Resource attributes that identify the target (they become `job` and
/// `instance` and are left out of `target_info`).
const IDENTIFYING: [&str; 3] = ["service.namespace", "service.name", "service.instance.id"];

/// What a metric is, for naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Gauge,
    MonotonicCounter,
    NonMonotonicCounter,
    Histogram,
    Summary,
}

/// UCUM unit → Prometheus unit word (Prometheus `otlptranslator` unit map).
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// UCUM "per" unit → Prometheus word.
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn is_metric_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Invalid characters → `_`, runs of `_` collapsed, leading `_` removed.
fn clean_up_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if is_metric_word_char(c) { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_start_matches('_').to_string()
}

/// The `(main, per)` unit suffixes of a UCUM unit such as `By/s`.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main = if !main.is_empty() && !main.contains(['{', '}']) {
        unit_word(main).to_string()
    } else {
        String::new()
    };
    let per = match parts.next().map(str::trim) {
        Some(p) if !p.is_empty() && !p.contains(['{', '}']) => format!("per_{}", per_unit_word(p)),
        _ => String::new(),
    };
    (main, per)
}

/// The Prometheus name of an OTLP metric (`UnderscoreEscapingWithSuffixes`),
/// or `None` when nothing valid is left of it.
pub fn metric_name(name: &str, unit: &str, kind: MetricType) -> Option<String> {
    let mut tokens: Vec<String> = name
        .split(|c: char| !is_metric_word_char(c))
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    let (main, per) = unit_suffixes(unit);
    let (mut main, per) = (clean_up_unit(&main), clean_up_unit(&per));
    if tokens.contains(&main) {
        main.clear();
    }
    let per = if per == "per_" {
        String::new()
    } else {
        let p = per.strip_suffix('_').unwrap_or(&per).to_string();
        if tokens.contains(&p) {
            String::new()
        } else {
            p
        }
    };
    if !per.is_empty()
        && let Some(m) = main.strip_suffix('_')
    {
        main = m.to_string();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if kind == MetricType::MonotonicCounter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == MetricType::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.is_empty() || (out != name && out.bytes().all(|b| b == b'_')) {
        return None;
    }
    Some(out)
}

type Refused = (&'static str, String);

/// Data point attributes (and job/instance) as Prometheus labels, sorted.
fn base_labels(
    attrs: &[KeyValue],
    target: &[(String, String)],
    ignore: &[&str],
) -> Result<BTreeMap<String, String>, Refused> {
    let mut sorted: Vec<(&str, String)> = attrs
        .iter()
        .filter(|kv| !ignore.contains(&kv.key.as_str()))
        .map(|kv| (kv.key.as_str(), any_value_text(kv.value.as_ref())))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut labels = BTreeMap::new();
    for (key, value) in sorted {
        let Some(name) = label_name(key) else {
            return Err((
                "label_invalid",
                format!("attribute name {key:?} cannot be made a Prometheus label name"),
            ));
        };
        labels
            .entry(name)
            .and_modify(|v: &mut String| {
                v.push(';');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    for (k, v) in target {
        labels.insert(k.clone(), v.clone());
    }
    Ok(labels)
}

struct Converter<'a> {
    limits: &'a Limits,
    now_ms: i64,
    builder: SamplesBuilder,
    batches: Vec<arrow::array::RecordBatch>,
    discards: Discards,
    /// Earliest and latest sample time written for the current resource.
    span: Option<(i64, i64)>,
}

impl Converter<'_> {
    /// Adds one sample of series `name{base, extra}` if its labels and time pass.
    fn sample(
        &mut self,
        name: &str,
        base: &BTreeMap<String, String>,
        extra: Option<(&str, String)>,
        t_ms: i64,
        value: f64,
    ) {
        self.checked_sample(name, base, extra, t_ms, Point::Float(value));
    }

    /// Checks one sample's labels and time and appends it.
    fn checked_sample(
        &mut self,
        name: &str,
        base: &BTreeMap<String, String>,
        extra: Option<(&str, String)>,
        t_ms: i64,
        point: Point,
    ) {
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(base.len() + 2);
        labels.push(("__name__", name));
        let extra_name = extra.as_ref().map(|(k, _)| *k);
        labels.extend(
            base.iter()
                .filter(|(k, _)| Some(k.as_str()) != extra_name)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if let Some((k, v)) = &extra {
            labels.push((*k, v.as_str()));
        }
        if let Err(invalid) = check_labels(&labels, self.limits) {
            self.discards.add(invalid.reason, 1, || invalid.message);
            return;
        }
        if let Err(invalid) = check_time(Signal::Samples, t_ms, self.limits, self.now_ms) {
            self.discards.add(invalid.reason, 1, || {
                format!(
                    "{} for series {name}{}",
                    invalid.message,
                    render_labels(&labels[1..])
                )
            });
            return;
        }
        let mut labels = labels.split_off(1);
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        match point {
            Point::Float(value) => self.builder.push_series(name, &labels, &[(t_ms, value)]),
            Point::Histogram(h) => {
                let id = crate::model::labels::series_id(name, &labels);
                self.builder
                    .push_histograms_with_id(name, &labels, id, &[(t_ms, *h)]);
            }
        }
        self.span = Some(match self.span {
            Some((lo, hi)) => (lo.min(t_ms), hi.max(t_ms)),
            None => (t_ms, t_ms),
        });
        if self.builder.len() >= ROWS_PER_BATCH {
            self.batches.push(self.builder.finish());
        }
    }

    fn number_point(&mut self, name: &str, p: &NumberDataPoint, target: &[(String, String)]) {
        let base = match base_labels(&p.attributes, target, &[]) {
            Ok(b) => b,
            Err((reason, message)) => {
                return self
                    .discards
                    .add(reason, 1, || format!("metric {name}: {message}"));
            }
        };
        let value = if p.flags & NO_RECORDED_VALUE != 0 {
            f64::from_bits(STALE_NAN_BITS)
        } else {
            match p.value {
                Some(number_data_point::Value::AsDouble(v)) => v,
                Some(number_data_point::Value::AsInt(v)) => v as f64,
                None => 0.0,
            }
        };
        self.sample(name, &base, None, ms(p.time_unix_nano), value);
    }

    fn histogram_point(&mut self, name: &str, p: &HistogramDataPoint, target: &[(String, String)]) {
        let base = match base_labels(&p.attributes, target, &[]) {
            Ok(b) => b,
            Err((reason, message)) => {
                return self.discards.add(reason, histogram_samples(p), || {
                    format!("metric {name}: {message}")
                });
            }
        };
        let t = ms(p.time_unix_nano);
        let stale = p.flags & NO_RECORDED_VALUE != 0;
        let v = |x: f64| {
            if stale {
                f64::from_bits(STALE_NAN_BITS)
            } else {
                x
            }
        };
        if let Some(sum) = p.sum {
            self.sample(&format!("{name}_sum"), &base, None, t, v(sum));
        }
        self.sample(&format!("{name}_count"), &base, None, t, v(p.count as f64));
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (bound, count) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
            cumulative = cumulative.saturating_add(*count);
            self.sample(
                &bucket,
                &base,
                Some(("le", format_float(*bound))),
                t,
                v(cumulative as f64),
            );
        }
        self.sample(
            &bucket,
            &base,
            Some(("le", "+Inf".into())),
            t,
            v(p.count as f64),
        );
    }

    fn summary_point(&mut self, name: &str, p: &SummaryDataPoint, target: &[(String, String)]) {
        let base = match base_labels(&p.attributes, target, &[]) {
            Ok(b) => b,
            Err((reason, message)) => {
                let n = p.quantile_values.len() as u64 + 2;
                return self
                    .discards
                    .add(reason, n, || format!("metric {name}: {message}"));
            }
        };
        let t = ms(p.time_unix_nano);
        let stale = p.flags & NO_RECORDED_VALUE != 0;
        let v = |x: f64| {
            if stale {
                f64::from_bits(STALE_NAN_BITS)
            } else {
                x
            }
        };
        self.sample(&format!("{name}_sum"), &base, None, t, v(p.sum));
        self.sample(&format!("{name}_count"), &base, None, t, v(p.count as f64));
        for q in &p.quantile_values {
            self.sample(
                name,
                &base,
                Some(("quantile", format_float(q.quantile))),
                t,
                v(q.value),
            );
        }
    }

    /// One `target_info` series for a resource, over the times its samples cover.
    fn target_info(&mut self, resource: &[KeyValue], target: &[(String, String)]) {
        let Some((earliest, latest)) = self.span.take() else {
            return;
        };
        if target.is_empty()
            || !resource
                .iter()
                .any(|kv| !IDENTIFYING.contains(&kv.key.as_str()))
        {
            return;
        }
        let base = match base_labels(resource, target, &IDENTIFYING) {
            Ok(b) => b,
            Err((reason, message)) => {
                return self
                    .discards
                    .add(reason, 1, || format!("target_info: {message}"));
            }
        };
        let mut t = earliest;
        let mut n = 0;
        while t < latest && n < MAX_TARGET_INFO_SAMPLES {
            self.sample("target_info", &base, None, t, 1.0);
            t = t.saturating_add(TARGET_INFO_INTERVAL_MS);
            n += 1;
        }
        self.sample("target_info", &base, None, latest, 1.0);
        self.span = None;
    }

    fn temporality_ok(&mut self, name: &str, temporality: i32, n: u64) -> bool {
        match temporality {
            CUMULATIVE => true,
            DELTA => {
                self.discards.add("delta_temporality_unsupported", n, || {
                    format!(
                        "metric {name:?} has delta temporality, which is not supported (as in Prometheus); configure the SDK or collector for cumulative temporality"
                    )
                });
                false
            }
            other => {
                self.discards.add("invalid_temporality", n, || {
                    format!("metric {name:?} has aggregation temporality {other}, it must be cumulative (2)")
                });
                false
            }
        }
    }
}

/// What one sample holds.
enum Point {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

impl Converter<'_> {
    /// An exponential histogram point → one native histogram sample (a
    /// stale marker when it has no recorded value), as Prometheus' OTLP
    /// receiver stores it: scale is the schema (scales above 8 are reduced
    /// to 8), bucket `i` of OTLP is bucket `i + 1` of Prometheus.
    fn exponential_point(
        &mut self,
        name: &str,
        p: &ExponentialHistogramDataPoint,
        target: &[(String, String)],
    ) {
        let base = match base_labels(&p.attributes, target, &[]) {
            Ok(b) => b,
            Err((reason, message)) => {
                return self
                    .discards
                    .add(reason, 1, || format!("metric {name}: {message}"));
            }
        };
        let t = ms(p.time_unix_nano);
        if p.flags & NO_RECORDED_VALUE != 0 {
            return self.sample(name, &base, None, t, f64::from_bits(STALE_NAN_BITS));
        }
        if p.scale < -4 {
            return self.discards.add("native_histogram_invalid", 1, || {
                format!(
                    "metric {name}: exponential histogram scale {} is below -4, the coarsest native histogram schema",
                    p.scale
                )
            });
        }
        let side =
            |b: &Option<exponential_histogram_data_point::Buckets>| -> (Vec<Span>, Vec<f64>) {
                match b {
                    Some(b) if !b.bucket_counts.is_empty() => (
                        vec![Span {
                            offset: b.offset.saturating_add(1),
                            length: b.bucket_counts.len() as u32,
                        }],
                        b.bucket_counts.iter().map(|&c| c as f64).collect(),
                    ),
                    _ => (Vec::new(), Vec::new()),
                }
            };
        let (positive_spans, positive_buckets) = side(&p.positive);
        let (negative_spans, negative_buckets) = side(&p.negative);
        let mut h = FloatHistogram {
            schema: p.scale.min(8),
            zero_threshold: p.zero_threshold,
            zero_count: p.zero_count as f64,
            count: p.count as f64,
            sum: p.sum.unwrap_or(0.0),
            positive_spans,
            negative_spans,
            positive_buckets,
            negative_buckets,
            ..Default::default()
        };
        if p.scale > 8 {
            h.schema = p.scale;
            h.reduce_resolution(8);
        }
        h.compact(0);
        if let Err(e) = h.validate() {
            return self.discards.add("native_histogram_invalid", 1, || {
                format!("metric {name}: exponential histogram: {e}")
            });
        }
        self.checked_sample(name, &base, None, t, Point::Histogram(Box::new(h)));
    }
}

/// Samples a histogram data point becomes (for discard counts).
fn histogram_samples(p: &HistogramDataPoint) -> u64 {
    (p.explicit_bounds.len().min(p.bucket_counts.len()) + 2 + usize::from(p.sum.is_some())) as u64
}

/// Nanoseconds → milliseconds.
fn ms(t_ns: u64) -> i64 {
    ns(t_ns) / 1_000_000
}

/// `job` and `instance` of a resource.
fn target_labels(resource: &[KeyValue]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(name) = attribute(resource, "service.name") {
        let name = any_value_text(Some(name));
        let job = match attribute(resource, "service.namespace") {
            Some(ns) => format!("{}/{name}", any_value_text(Some(ns))),
            None => name,
        };
        out.push(("job".to_string(), job));
    }
    if let Some(instance) = attribute(resource, "service.instance.id") {
        out.push(("instance".to_string(), any_value_text(Some(instance))));
    }
    out
}

/// Converts one request; never fails as a whole (see the module docs).
pub fn decode_metrics(
    request: ExportMetricsServiceRequest,
    limits: &Limits,
    now_ms: i64,
) -> Decoded {
    let mut c = Converter {
        limits,
        now_ms,
        builder: SamplesBuilder::new(),
        batches: Vec::new(),
        discards: Discards::default(),
        span: None,
    };
    for resource_metrics in request.resource_metrics {
        let resource = resource_attributes(resource_metrics.resource.as_ref());
        let target = target_labels(resource);
        for scope_metrics in resource_metrics.scope_metrics {
            for metric in scope_metrics.metrics {
                let Some(data) = &metric.data else {
                    c.discards.add("metric_type_unsupported", 1, || {
                        format!("metric {:?} has no data (no type)", metric.name)
                    });
                    continue;
                };
                let kind = match data {
                    Data::Gauge(_) => MetricType::Gauge,
                    Data::Sum(s) if s.is_monotonic => MetricType::MonotonicCounter,
                    Data::Sum(_) => MetricType::NonMonotonicCounter,
                    Data::Histogram(_) => MetricType::Histogram,
                    Data::Summary(_) => MetricType::Summary,
                    Data::ExponentialHistogram(_) => MetricType::Histogram,
                };
                let Some(name) = metric_name(&metric.name, &metric.unit, kind) else {
                    let n = match data {
                        Data::Gauge(g) => g.data_points.len(),
                        Data::Sum(s) => s.data_points.len(),
                        Data::Histogram(h) => h.data_points.len(),
                        Data::Summary(s) => s.data_points.len(),
                        Data::ExponentialHistogram(e) => e.data_points.len(),
                    };
                    c.discards.add("metric_name_invalid", n as u64, || {
                        format!(
                            "metric name {:?} has no character a Prometheus metric name can keep",
                            metric.name
                        )
                    });
                    continue;
                };
                match data {
                    Data::Gauge(g) => g
                        .data_points
                        .iter()
                        .for_each(|p| c.number_point(&name, p, &target)),
                    Data::Sum(s) => {
                        if c.temporality_ok(
                            &metric.name,
                            s.aggregation_temporality,
                            s.data_points.len() as u64,
                        ) {
                            s.data_points
                                .iter()
                                .for_each(|p| c.number_point(&name, p, &target));
                        }
                    }
                    Data::Histogram(h) => {
                        let n = h.data_points.iter().map(histogram_samples).sum();
                        if c.temporality_ok(&metric.name, h.aggregation_temporality, n) {
                            h.data_points
                                .iter()
                                .for_each(|p| c.histogram_point(&name, p, &target));
                        }
                    }
                    Data::Summary(s) => s
                        .data_points
                        .iter()
                        .for_each(|p| c.summary_point(&name, p, &target)),
                    Data::ExponentialHistogram(e) => {
                        let n = e.data_points.len() as u64;
                        if c.temporality_ok(&metric.name, e.aggregation_temporality, n) {
                            e.data_points
                                .iter()
                                .for_each(|p| c.exponential_point(&name, p, &target));
                        }
                    }
                }
            }
        }
        c.target_info(resource, &target);
    }
    if !c.builder.is_empty() {
        c.batches.push(c.builder.finish());
    }
    Decoded::costed_by_rows(Signal::Samples, c.batches, c.discards)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::{Float64Type, TimestampMillisecondType};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, Metric,
        ResourceMetrics, ScopeMetrics, Sum, Summary,
    };

    #[test]
    fn names_follow_prometheus() {
        use MetricType::*;
        let n = |name, unit, kind| metric_name(name, unit, kind).unwrap_or_default();
        assert_eq!(
            n("http.server.request.duration", "s", Histogram),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            n("requests.count", "1", MonotonicCounter),
            "requests_count_total"
        );
        assert_eq!(n("memory.usage", "By", Gauge), "memory_usage_bytes");
        assert_eq!(n("cpu.utilization", "1", Gauge), "cpu_utilization_ratio");
        assert_eq!(
            n("throughput", "By/s", Gauge),
            "throughput_bytes_per_second"
        );
        assert_eq!(
            n("http_requests_total", "", MonotonicCounter),
            "http_requests_total"
        );
        assert_eq!(
            n("requests", "{request}", MonotonicCounter),
            "requests_total"
        );
        assert_eq!(n("queue.size", "{item}", NonMonotonicCounter), "queue_size");
        assert_eq!(n("latency_seconds", "s", Histogram), "latency_seconds");
        assert_eq!(n("disk.io", "%", Gauge), "disk_io_percent");
        assert_eq!(
            n("2xx.responses", "", MonotonicCounter),
            "_2xx_responses_total"
        );
        assert_eq!(n("a__b..c", "", Gauge), "a_b_c");
        assert_eq!(n("ns:metric", "ms", Gauge), "ns:metric_milliseconds");
        assert_eq!(n("weird", "foo bar", Gauge), "weird_foo_bar");
        assert_eq!(metric_name("...", "", Gauge), None);
        assert_eq!(metric_name("", "", Gauge), None);
    }

    fn number(attrs: Vec<KeyValue>, v: f64) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs,
            time_unix_nano: NOW_NS,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        }
    }

    fn metric(name: &str, unit: &str, data: Data) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(data),
            ..Default::default()
        }
    }

    fn request(resource_kvs: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(resource_kvs),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// `name{labels} value @ t` lines, sorted.
    fn rows(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            let ts = b.column(0).as_primitive::<TimestampMillisecondType>();
            let names = b.column(1).as_string::<i32>();
            let labels = b.column(2).as_map();
            let values = b.column(3).as_primitive::<Float64Type>();
            for i in 0..b.num_rows() {
                let entries = labels.value(i);
                let k = entries.column(0).as_string::<i32>();
                let v = entries.column(1).as_string::<i32>();
                let l: Vec<String> = (0..entries.len())
                    .map(|j| format!("{}={}", k.value(j), v.value(j)))
                    .collect();
                out.push(format!(
                    "{}{{{}}} {} @{}",
                    names.value(i),
                    l.join(","),
                    values.value(i),
                    ts.value(i) - NOW_MS
                ));
            }
        }
        out.sort();
        out
    }

    fn service() -> Vec<KeyValue> {
        vec![
            s("service.name", "cart"),
            s("service.namespace", "shop"),
            s("service.instance.id", "i-1"),
            s("host.name", "h1"),
            kv("process.pid", Value::IntValue(42)),
        ]
    }

    #[test]
    fn counters_gauges_histograms_summaries_and_target_info() {
        let counter = metric(
            "http.requests",
            "{request}",
            Data::Sum(Sum {
                data_points: vec![number(
                    vec![s("http.method", "GET"), s("http-method", "x")],
                    5.0,
                )],
                aggregation_temporality: CUMULATIVE,
                is_monotonic: true,
            }),
        );
        let updown = metric(
            "queue.size",
            "",
            Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    value: Some(number_data_point::Value::AsInt(-3)),
                    ..number(vec![], 0.0)
                }],
                aggregation_temporality: CUMULATIVE,
                is_monotonic: false,
            }),
        );
        let gauge = metric(
            "temperature",
            "Cel",
            Data::Gauge(Gauge {
                data_points: vec![number(vec![s("job", "overridden")], 21.5)],
            }),
        );
        let histogram = metric(
            "http.server.duration",
            "ms",
            Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: NOW_NS,
                    count: 6,
                    sum: Some(1234.5),
                    bucket_counts: vec![1, 2, 3, 0],
                    explicit_bounds: vec![0.5, 100.0, 250.0],
                    ..Default::default()
                }],
                aggregation_temporality: CUMULATIVE,
            }),
        );
        let summary = metric(
            "rpc.latency",
            "s",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: NOW_NS,
                    count: 10,
                    sum: 2.5,
                    quantile_values: vec![ValueAtQuantile {
                        quantile: 0.99,
                        value: 0.7,
                    }],
                    ..Default::default()
                }],
            }),
        );
        let d = decode_metrics(
            request(service(), vec![counter, updown, gauge, histogram, summary]),
            &Limits::default(),
            NOW_MS,
        );
        assert!(d.discards.is_empty(), "{:?}", d.discards);
        let b = &d.batches[0];
        assert_eq!(
            crate::model::normalize::normalize(Signal::Samples, b).unwrap(),
            *b,
            "canonical"
        );
        let t = "instance=i-1,job=shop/cart";
        assert_eq!(
            rows(&d.batches),
            vec![
                format!("http_requests_total{{http_method=x;GET,{t}}} 5 @0"),
                format!("http_server_duration_milliseconds_bucket{{{t},le=+Inf}} 6 @0"),
                format!("http_server_duration_milliseconds_bucket{{{t},le=0.5}} 1 @0"),
                format!("http_server_duration_milliseconds_bucket{{{t},le=100}} 3 @0"),
                format!("http_server_duration_milliseconds_bucket{{{t},le=250}} 6 @0"),
                format!("http_server_duration_milliseconds_count{{{t}}} 6 @0"),
                format!("http_server_duration_milliseconds_sum{{{t}}} 1234.5 @0"),
                format!("queue_size{{{t}}} -3 @0"),
                format!("rpc_latency_seconds_count{{{t}}} 10 @0"),
                format!("rpc_latency_seconds_sum{{{t}}} 2.5 @0"),
                format!("rpc_latency_seconds{{{t},quantile=0.99}} 0.7 @0"),
                format!("target_info{{host_name=h1,{t},process_pid=42}} 1 @0"),
                format!("temperature_celsius{{{t}}} 21.5 @0"),
            ]
        );
        assert_eq!(d.cost, 13.0);
    }

    #[test]
    fn target_info_spans_the_resource_and_needs_job_or_instance() {
        let points = vec![
            number(vec![], 1.0),
            NumberDataPoint {
                time_unix_nano: NOW_NS + 400_000_000_000,
                ..number(vec![], 2.0)
            },
        ];
        let g = || {
            metric(
                "g",
                "",
                Data::Gauge(Gauge {
                    data_points: points.clone(),
                }),
            )
        };
        let d = decode_metrics(
            request(vec![s("service.name", "a"), s("host.name", "h")], vec![g()]),
            &Limits {
                creation_grace_period: std::time::Duration::from_secs(3600),
                ..Limits::default()
            },
            NOW_MS,
        );
        let info: Vec<String> = rows(&d.batches)
            .into_iter()
            .filter(|r| r.starts_with("target_info"))
            .collect();
        assert_eq!(
            info,
            vec![
                "target_info{host_name=h,job=a} 1 @0",
                "target_info{host_name=h,job=a} 1 @150000",
                "target_info{host_name=h,job=a} 1 @300000",
                "target_info{host_name=h,job=a} 1 @400000",
            ]
        );
        // Without service.name or service.instance.id there is no target to describe.
        let d = decode_metrics(
            request(vec![s("host.name", "h")], vec![g()]),
            &Limits::default(),
            NOW_MS,
        );
        assert!(
            rows(&d.batches)
                .iter()
                .all(|r| !r.starts_with("target_info"))
        );
        // Only identifying attributes: nothing for target_info to say.
        let d = decode_metrics(
            request(vec![s("service.name", "a")], vec![g()]),
            &Limits::default(),
            NOW_MS,
        );
        assert!(
            rows(&d.batches)
                .iter()
                .all(|r| !r.starts_with("target_info"))
        );
    }

    #[test]
    fn stale_markers_for_points_without_a_recorded_value() {
        let p = NumberDataPoint {
            flags: NO_RECORDED_VALUE,
            ..number(vec![], 1.0)
        };
        let d = decode_metrics(
            request(
                vec![],
                vec![metric(
                    "g",
                    "",
                    Data::Gauge(Gauge {
                        data_points: vec![p],
                    }),
                )],
            ),
            &Limits::default(),
            NOW_MS,
        );
        let v = d.batches[0]
            .column(3)
            .as_primitive::<Float64Type>()
            .value(0);
        assert_eq!(v.to_bits(), STALE_NAN_BITS);
    }

    #[test]
    fn unsupported_and_invalid_data_is_discarded_with_reasons() {
        let delta = metric(
            "d",
            "",
            Data::Sum(Sum {
                data_points: vec![number(vec![], 1.0), number(vec![], 2.0)],
                aggregation_temporality: DELTA,
                is_monotonic: true,
            }),
        );
        let unspecified = metric(
            "h",
            "",
            Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: NOW_NS,
                    count: 1,
                    ..Default::default()
                }],
                aggregation_temporality: 0,
            }),
        );
        let exponential = metric(
            "e",
            "",
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    time_unix_nano: NOW_NS,
                    scale: -5,
                    ..Default::default()
                }],
                aggregation_temporality: CUMULATIVE,
            }),
        );
        let bad_name = metric(
            "%%%",
            "",
            Data::Gauge(Gauge {
                data_points: vec![number(vec![], 1.0)],
            }),
        );
        let bad_label = metric(
            "g",
            "",
            Data::Gauge(Gauge {
                data_points: vec![number(vec![s("", "v")], 1.0)],
            }),
        );
        let old = metric(
            "g",
            "",
            Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: 1,
                    ..number(vec![], 1.0)
                }],
            }),
        );
        let long_value = metric(
            "g",
            "",
            Data::Gauge(Gauge {
                data_points: vec![number(vec![s("a", &"x".repeat(3000))], 1.0)],
            }),
        );
        let no_data = Metric {
            name: "nothing".into(),
            ..Default::default()
        };
        let ok = metric(
            "ok",
            "",
            Data::Gauge(Gauge {
                data_points: vec![number(vec![], 1.0)],
            }),
        );
        let d = decode_metrics(
            request(
                vec![],
                vec![
                    delta,
                    unspecified,
                    exponential,
                    bad_name,
                    bad_label,
                    old,
                    long_value,
                    no_data,
                    ok,
                ],
            ),
            &Limits::default(),
            NOW_MS,
        );
        let reasons = d.discards.counts();
        assert_eq!(
            reasons,
            vec![
                ("delta_temporality_unsupported", 2),
                ("invalid_temporality", 2),
                ("label_invalid", 1),
                ("label_value_too_long", 1),
                ("metric_name_invalid", 1),
                ("metric_type_unsupported", 1),
                ("native_histogram_invalid", 1),
                ("sample_too_old", 1),
            ]
        );
        assert_eq!(rows(&d.batches), vec!["ok{} 1 @0"]);
        assert!(
            d.discards.first().unwrap().contains("delta temporality"),
            "{:?}",
            d.discards.first()
        );
    }
}
