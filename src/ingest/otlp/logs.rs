//! OTLP logs → `logs` rows, mapped as Loki's native OTLP endpoint maps them
//! by default (Loki `pkg/loghttp/push/otlp.go`, docs "Ingesting logs to Loki
//! using OpenTelemetry Collector"):
//!
//! * stream labels: the resource attributes Loki indexes by default
//!   ([`INDEXED_RESOURCE_ATTRIBUTES`]: `service.name`, `service.namespace`,
//!   `service.instance.id`, `deployment.environment`, `cloud.*`, `k8s.*`
//!   names…), named as Prometheus labels (`service.name` → `service_name`).
//!   Without `service.name`, `service_name` is discovered from the other
//!   labels as Loki does, else `unknown_service`;
//! * structured metadata: every other resource attribute, the scope's
//!   attributes, name and version (`scope_name`, `scope_version`), the log
//!   record's attributes, and `severity_text`, `severity_number`,
//!   `observed_timestamp`, `flags`, `dropped_attributes_count`, `event_name`
//!   when set — all with label-style names; key/value-list attributes are
//!   flattened (`a.b` = {c: 1} → `a_b_c`);
//! * `line`: the body as text; `severity`: `severity_text` lower-cased, or
//!   derived from `severity_number`; `trace_id`/`span_id`: hex when valid;
//! * timestamp: `time_unix_nano`, else `observed_time_unix_nano`, else now.
//!
//! Records outside the tenant's time window or over `max_line_size`, and
//! resources whose stream labels break the label limits, are discarded with
//! a reason. The rate-limit cost is the bytes of the lines.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::{
    ROWS_PER_BATCH, UNKNOWN_SERVICE, any_value_text, id_hex, label_name, ns, resource_attributes,
};
use crate::ingest::distributor::{Decoded, Discards};
use crate::ingest::limits::Limits;
use crate::ingest::validate::{check_labels, check_time, render_labels};
use crate::model::Signal;
use crate::model::builders::{LogLine, LogsBuilder, canonical};

/// The resource attributes Loki turns into stream labels by default
/// (its `blessedAttributes`); every other attribute is structured metadata.
pub const INDEXED_RESOURCE_ATTRIBUTES: [&str; 17] = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Stream labels Loki looks at, in order, for a `service_name` when the
/// resource has no `service.name` (its default `discover_service_name`).
const SERVICE_NAME_DISCOVERY: [&str; 13] = [
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// Appends `key = value` with a label-style name; key/value lists are
/// flattened into one pair per leaf (`key_subkey`). Pairs whose name cannot
/// be made a label name (empty) are skipped.
fn flatten(key: &str, value: Option<&AnyValue>, out: &mut Vec<(String, String)>) {
    let Some(name) = label_name(key) else {
        return;
    };
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::KvlistValue(list)) => {
            for kv in &list.values {
                flatten(&format!("{name}_{}", kv.key), kv.value.as_ref(), out);
            }
        }
        _ => out.push((name, any_value_text(value))),
    }
}

fn flatten_all(kvs: &[KeyValue], out: &mut Vec<(String, String)>) {
    for kv in kvs {
        flatten(&kv.key, kv.value.as_ref(), out);
    }
}

/// `severity_text` lower-cased, else the level of `severity_number`
/// (1–4 trace, 5–8 debug, 9–12 info, 13–16 warn, 17–20 error, 21–24 fatal).
pub fn severity(text: &str, number: i32) -> Option<String> {
    if !text.is_empty() {
        return Some(text.to_lowercase());
    }
    let level = match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => return None,
    };
    Some(level.to_string())
}

/// Name/value pairs (labels or structured metadata).
type Pairs = Vec<(String, String)>;

/// Stream labels and resource-level structured metadata of one resource.
fn resource_split(attrs: &[KeyValue]) -> (Pairs, Pairs) {
    let mut labels = Vec::new();
    let mut metadata = Vec::new();
    for kv in attrs {
        if INDEXED_RESOURCE_ATTRIBUTES.contains(&kv.key.as_str()) {
            flatten(&kv.key, kv.value.as_ref(), &mut labels);
        } else {
            flatten(&kv.key, kv.value.as_ref(), &mut metadata);
        }
    }
    let has_service = labels
        .iter()
        .any(|(k, v)| k == "service_name" && !v.is_empty());
    if !has_service {
        labels.retain(|(k, _)| k != "service_name");
        let discovered = SERVICE_NAME_DISCOVERY.iter().find_map(|name| {
            labels
                .iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        });
        labels.push((
            "service_name".into(),
            discovered.unwrap_or_else(|| UNKNOWN_SERVICE.into()),
        ));
    }
    (labels, metadata)
}

/// Converts one request; never fails as a whole (see the module docs).
pub fn decode_logs(request: ExportLogsServiceRequest, limits: &Limits, now_ms: i64) -> Decoded {
    let mut builder = LogsBuilder::new();
    let mut batches = Vec::new();
    let mut discards = Discards::default();
    let mut cost = 0u64;
    let now_ns = now_ms.saturating_mul(1_000_000);
    for resource_logs in request.resource_logs {
        let (labels, resource_metadata) =
            resource_split(resource_attributes(resource_logs.resource.as_ref()));
        if let Err(invalid) = check_labels(&labels, limits) {
            let n: usize = resource_logs
                .scope_logs
                .iter()
                .map(|s| s.log_records.len())
                .sum();
            discards.add(invalid.reason, n as u64, || {
                format!("log stream labels: {}", invalid.message)
            });
            continue;
        }
        let labels = canonical(labels);
        let stream_id = LogsBuilder::stream_id(&labels);
        for scope_logs in resource_logs.scope_logs {
            let mut scope_metadata = Vec::new();
            if let Some(scope) = &scope_logs.scope {
                flatten_all(&scope.attributes, &mut scope_metadata);
                if !scope.name.is_empty() {
                    scope_metadata.push(("scope_name".into(), scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    scope_metadata.push(("scope_version".into(), scope.version.clone()));
                }
                if scope.dropped_attributes_count != 0 {
                    scope_metadata.push((
                        "scope_dropped_attributes_count".into(),
                        scope.dropped_attributes_count.to_string(),
                    ));
                }
            }
            for record in scope_logs.log_records {
                let row = log_row(
                    &record,
                    &resource_metadata,
                    &scope_metadata,
                    limits,
                    now_ms,
                    now_ns,
                );
                let (timestamp_ns, line, metadata) = match row {
                    Ok(r) => r,
                    Err((reason, message)) => {
                        discards.add(reason, 1, || {
                            format!("{message} (log stream {})", render_labels(&labels))
                        });
                        continue;
                    }
                };
                let severity = severity(&record.severity_text, record.severity_number);
                let trace_id = id_hex(&record.trace_id, 16, "trace id").ok().flatten();
                let span_id = id_hex(&record.span_id, 8, "span id").ok().flatten();
                builder.push(
                    &labels,
                    stream_id,
                    &LogLine {
                        timestamp_ns,
                        line: &line,
                        metadata: &metadata,
                        severity: severity.as_deref(),
                        trace_id: trace_id.as_deref(),
                        span_id: span_id.as_deref(),
                    },
                );
                if builder.len() >= ROWS_PER_BATCH {
                    cost += builder.line_bytes();
                    batches.push(builder.finish());
                }
            }
        }
    }
    if !builder.is_empty() {
        cost += builder.line_bytes();
        batches.push(builder.finish());
    }
    Decoded {
        signal: Signal::Logs,
        batches,
        discards,
        cost: cost as f64,
    }
}

type Refused = (&'static str, String);

/// Timestamp, line and canonical structured metadata of one record.
fn log_row(
    record: &LogRecord,
    resource_metadata: &[(String, String)],
    scope_metadata: &[(String, String)],
    limits: &Limits,
    now_ms: i64,
    now_ns: i64,
) -> Result<(i64, String, Pairs), Refused> {
    let timestamp_ns = match (record.time_unix_nano, record.observed_time_unix_nano) {
        (0, 0) => now_ns,
        (0, observed) => ns(observed),
        (t, _) => ns(t),
    };
    check_time(
        Signal::Logs,
        timestamp_ns.div_euclid(1_000_000),
        limits,
        now_ms,
    )
    .map_err(|invalid| (invalid.reason, format!("log record {}", invalid.message)))?;
    let line = any_value_text(record.body.as_ref());
    if limits.max_line_size > 0 && line.len() as u64 > limits.max_line_size {
        return Err((
            "line_too_long",
            format!(
                "log line is {} bytes long, more than max_line_size = {} bytes; it starts {:?}",
                line.len(),
                limits.max_line_size,
                line.chars().take(64).collect::<String>()
            ),
        ));
    }
    let mut metadata = Vec::with_capacity(
        record.attributes.len() + resource_metadata.len() + scope_metadata.len() + 4,
    );
    flatten_all(&record.attributes, &mut metadata);
    if record.time_unix_nano != 0 && record.observed_time_unix_nano != 0 {
        metadata.push((
            "observed_timestamp".into(),
            record.observed_time_unix_nano.to_string(),
        ));
    }
    if record.severity_number != 0 {
        metadata.push(("severity_number".into(), record.severity_number.to_string()));
    }
    if !record.severity_text.is_empty() {
        metadata.push(("severity_text".into(), record.severity_text.clone()));
    }
    if record.dropped_attributes_count != 0 {
        metadata.push((
            "dropped_attributes_count".into(),
            record.dropped_attributes_count.to_string(),
        ));
    }
    if record.flags != 0 {
        metadata.push(("flags".into(), record.flags.to_string()));
    }
    if !record.event_name.is_empty() {
        metadata.push(("event_name".into(), record.event_name.clone()));
    }
    metadata.extend_from_slice(resource_metadata);
    metadata.extend_from_slice(scope_metadata);
    Ok((timestamp_ns, line, canonical(metadata)))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use arrow::array::{Array, AsArray, MapArray, RecordBatch};
    use arrow::datatypes::TimestampNanosecondType;
    use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};

    fn request(resource_kvs: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(resource_kvs),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app.logger".into(),
                        attributes: vec![s("scope.attr", "sv")],
                        ..Default::default()
                    }),
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn record(body: &str) -> LogRecord {
        LogRecord {
            time_unix_nano: NOW_NS,
            body: Some(AnyValue {
                value: Some(Value::StringValue(body.into())),
            }),
            ..Default::default()
        }
    }

    fn map(batch: &RecordBatch, column: &str, row: usize) -> Vec<(String, String)> {
        let m: &MapArray = batch.column_by_name(column).unwrap().as_map();
        let entries = m.value(row);
        let k = entries.column(0).as_string::<i32>();
        let v = entries.column(1).as_string::<i32>();
        (0..entries.len())
            .map(|i| (k.value(i).to_string(), v.value(i).to_string()))
            .collect()
    }

    fn text(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
        let c = batch.column_by_name(column).unwrap().as_string::<i32>();
        c.is_valid(row).then(|| c.value(row).to_string())
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn records_map_like_loki() {
        let mut r = record("user logged in");
        r.severity_text = "WARNING".into();
        r.severity_number = 13;
        r.observed_time_unix_nano = NOW_NS + 5;
        r.trace_id = vec![0xab; 16];
        r.span_id = vec![0xcd; 8];
        r.attributes = vec![
            s("user.id", "u1"),
            kv(
                "http",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("status", Value::IntValue(200))],
                }),
            ),
        ];
        let d = decode_logs(
            request(
                vec![
                    s("service.name", "cart"),
                    s("k8s.pod.name", "cart-1"),
                    s("host.name", "h1"),
                ],
                vec![r],
            ),
            &Limits::default(),
            NOW_MS,
        );
        assert!(d.discards.is_empty(), "{:?}", d.discards);
        assert_eq!(d.cost, "user logged in".len() as f64);
        let b = &d.batches[0];
        assert_eq!(
            crate::model::normalize::normalize(Signal::Logs, b).unwrap(),
            *b,
            "canonical"
        );
        assert_eq!(
            map(b, "labels", 0),
            pairs(&[("k8s_pod_name", "cart-1"), ("service_name", "cart")])
        );
        assert_eq!(
            map(b, "structured_metadata", 0),
            pairs(&[
                ("host_name", "h1"),
                ("http_status", "200"),
                ("observed_timestamp", &(NOW_NS + 5).to_string()),
                ("scope_attr", "sv"),
                ("scope_name", "app.logger"),
                ("severity_number", "13"),
                ("severity_text", "WARNING"),
                ("user_id", "u1"),
            ])
        );
        assert_eq!(text(b, "line", 0).unwrap(), "user logged in");
        assert_eq!(text(b, "severity", 0).unwrap(), "warning");
        assert_eq!(text(b, "trace_id", 0).unwrap(), "ab".repeat(16));
        assert_eq!(text(b, "span_id", 0).unwrap(), "cd".repeat(8));
        let ts = b.column(0).as_primitive::<TimestampNanosecondType>();
        assert_eq!(ts.value(0), NOW_NS as i64);
    }

    #[test]
    fn severity_numbers_and_bodies() {
        assert_eq!(severity("", 9).as_deref(), Some("info"));
        assert_eq!(severity("", 17).as_deref(), Some("error"));
        assert_eq!(severity("", 24).as_deref(), Some("fatal"));
        assert_eq!(severity("", 1).as_deref(), Some("trace"));
        assert_eq!(severity("", 0), None);
        assert_eq!(severity("", 99), None);
        assert_eq!(severity("Debug", 17).as_deref(), Some("debug"));

        let mut int_body = record("");
        int_body.body = Some(AnyValue {
            value: Some(Value::IntValue(42)),
        });
        int_body.time_unix_nano = 0;
        int_body.observed_time_unix_nano = NOW_NS + 7;
        let mut no_time = record("no time");
        no_time.time_unix_nano = 0;
        no_time.trace_id = vec![1, 2, 3];
        let d = decode_logs(
            request(vec![], vec![int_body, no_time]),
            &Limits::default(),
            NOW_MS,
        );
        let b = &d.batches[0];
        assert_eq!(text(b, "line", 0).unwrap(), "42");
        let ts = b.column(0).as_primitive::<TimestampNanosecondType>();
        assert_eq!(
            ts.value(0),
            NOW_NS as i64 + 7,
            "observed time when there is no time"
        );
        assert_eq!(ts.value(1), NOW_NS as i64, "now when there is neither");
        assert_eq!(
            text(b, "trace_id", 1),
            None,
            "invalid trace ids are not stored"
        );
        assert_eq!(
            map(b, "labels", 0),
            pairs(&[("service_name", "unknown_service")])
        );
    }

    #[test]
    fn service_name_is_discovered_from_other_labels() {
        let d = decode_logs(
            request(
                vec![
                    s("k8s.container.name", "web"),
                    s("k8s.namespace.name", "prod"),
                ],
                vec![record("x")],
            ),
            &Limits::default(),
            NOW_MS,
        );
        assert_eq!(
            map(&d.batches[0], "labels", 0),
            pairs(&[
                ("k8s_container_name", "web"),
                ("k8s_namespace_name", "prod"),
                ("service_name", "web")
            ])
        );
    }

    #[test]
    fn bad_records_are_discarded_with_reasons() {
        let limits = Limits {
            max_line_size: 10,
            max_label_value_length: 20,
            ..Limits::default()
        };
        let mut old = record("old");
        old.time_unix_nano = 1;
        let mut future = record("future");
        future.time_unix_nano = u64::MAX;
        let d = decode_logs(
            request(
                vec![s("service.name", "svc")],
                vec![record("this line is too long"), old, future, record("ok")],
            ),
            &limits,
            NOW_MS,
        );
        let reasons = d.discards.counts();
        assert_eq!(
            reasons,
            vec![
                ("greater_than_max_sample_age", 1),
                ("line_too_long", 1),
                ("too_far_in_future", 1)
            ]
        );
        assert_eq!(d.rows(), 1);
        assert!(
            d.discards.first().unwrap().contains("max_line_size = 10"),
            "{:?}",
            d.discards.first()
        );
        assert!(
            d.discards.first().unwrap().contains("service_name=\"svc\""),
            "{:?}",
            d.discards.first()
        );

        let d = decode_logs(
            request(
                vec![s("service.name", &"x".repeat(21))],
                vec![record("a"), record("b")],
            ),
            &limits,
            NOW_MS,
        );
        assert_eq!(d.discards.by_reason().get("label_value_too_long"), Some(&2));
        assert_eq!(d.rows(), 0);
    }
}
