//! The span-metrics processor: every span → Tempo's RED series, labelled
//! `service`, `span_name`, `span_kind` (`SPAN_KIND_SERVER`, ...) and
//! `status_code` (`STATUS_CODE_OK`, ...): `traces_spanmetrics_calls_total`,
//! the `traces_spanmetrics_latency` histogram (exemplar: the trace id) and
//! `traces_spanmetrics_size_total` (OTLP bytes).

use std::sync::Arc;

use super::registry::Registry;
use super::spans::Span;

pub const CALLS: &str = "traces_spanmetrics_calls_total";
pub const LATENCY: &str = "traces_spanmetrics_latency";
pub const SIZE: &str = "traces_spanmetrics_size_total";

/// Tempo's `prometheus.ExponentialBuckets(0.002, 2, 14)`: 2 ms to 16.384 s.
pub fn default_buckets() -> Vec<f64> {
    (0..14).map(|i| 0.002 * f64::powi(2.0, i)).collect()
}

/// OTLP's enum name of a `spans.kind` value.
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "internal" => "SPAN_KIND_INTERNAL",
        "server" => "SPAN_KIND_SERVER",
        "client" => "SPAN_KIND_CLIENT",
        "producer" => "SPAN_KIND_PRODUCER",
        "consumer" => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

/// OTLP's enum name of a `spans.status_code` value.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "ok" => "STATUS_CODE_OK",
        "error" => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

pub fn process(registry: &mut Registry, buckets: &Arc<[f64]>, span: &Span, now_ms: i64) {
    let labels = vec![
        ("service".to_string(), span.service.clone()),
        ("span_kind".to_string(), kind_label(&span.kind).to_string()),
        ("span_name".to_string(), span.name.clone()),
        (
            "status_code".to_string(),
            status_label(&span.status_code).to_string(),
        ),
    ];
    registry.add(CALLS, labels.clone(), 1.0, now_ms);
    registry.add(SIZE, labels.clone(), span.size as f64, now_ms);
    registry.observe(
        LATENCY,
        labels,
        buckets,
        span.duration_seconds(),
        &span.trace_id,
        now_ms,
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn buckets_are_tempos() {
        let b = super::default_buckets();
        let text: Vec<String> = b.iter().map(|v| format!("{v}")).collect();
        assert_eq!(text.first().unwrap(), "0.002");
        assert_eq!(text.last().unwrap(), "16.384");
        assert_eq!(text.len(), 14);
    }
}
