//! Validation shared by every ingest decoder: label and metric names
//! (Prometheus rules), label counts and lengths, and timestamps against the
//! tenant's [`Limits`]. A failed check yields the discard reason (the
//! `reason` label of `o11ydb_discarded_*_total`, named as Mimir and Loki
//! name them) and a message naming the item.

use super::limits::Limits;
use crate::model::Signal;

/// A refused item: the discard reason and what to tell the sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            reason,
            message: message.into(),
        }
    }
}

/// A whole request that cannot be decoded (the HTTP status says how bad).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// 400 for malformed bodies, 413 for too large ones, 415 for unknown content types.
    pub status: u16,
    pub message: String,
}

impl DecodeError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        DecodeError {
            status: 400,
            message: message.into(),
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Renders labels as `{a="b", c="d"}` for messages (values truncated).
pub fn render_labels<K: AsRef<str>, V: AsRef<str>>(labels: &[(K, V)]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v.as_ref();
            let shown: String = v.chars().take(64).collect();
            let ellipsis = if shown.len() < v.len() { "…" } else { "" };
            format!("{}={:?}", k.as_ref(), format!("{shown}{ellipsis}"))
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Checks a label set given in the sender's order (before canonical
/// sorting, so duplicates are still visible). `__name__`, when present, is
/// checked as a metric name.
pub fn check_labels<K: AsRef<str>, V: AsRef<str>>(
    labels: &[(K, V)],
    limits: &Limits,
) -> Result<(), Invalid> {
    if labels.is_empty() {
        return Err(Invalid::new("missing_labels", "the label set is empty"));
    }
    if labels.len() > limits.max_label_names_per_series {
        return Err(Invalid::new(
            "max_label_names_per_series",
            format!(
                "series {} has {} labels, more than max_label_names_per_series = {}",
                render_labels(&labels[..labels.len().min(5)]),
                labels.len(),
                limits.max_label_names_per_series
            ),
        ));
    }
    let mut names: Vec<&str> = Vec::with_capacity(labels.len());
    for (k, v) in labels {
        let (k, v) = (k.as_ref(), v.as_ref());
        if k == "__name__" {
            if !is_valid_metric_name(v) {
                return Err(Invalid::new(
                    "metric_name_invalid",
                    format!(
                        "invalid metric name {v:?} in series {}",
                        render_labels(labels)
                    ),
                ));
            }
        } else if !is_valid_label_name(k) {
            return Err(Invalid::new(
                "label_invalid",
                format!(
                    "invalid label name {k:?} in series {}",
                    render_labels(labels)
                ),
            ));
        }
        if k.len() > limits.max_label_name_length {
            return Err(Invalid::new(
                "label_name_too_long",
                format!(
                    "label name {:?} is {} bytes long, more than max_label_name_length = {}",
                    &k[..k.len().min(64)],
                    k.len(),
                    limits.max_label_name_length
                ),
            ));
        }
        if v.len() > limits.max_label_value_length {
            return Err(Invalid::new(
                "label_value_too_long",
                format!(
                    "value of label {k:?} is {} bytes long, more than max_label_value_length = {}",
                    v.len(),
                    limits.max_label_value_length
                ),
            ));
        }
        names.push(k);
    }
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Invalid::new(
            "duplicate_label_names",
            format!(
                "duplicate label name {:?} in series {}",
                w[0],
                render_labels(labels)
            ),
        ));
    }
    Ok(())
}

/// Discard reasons for timestamps outside the accepted window, per signal.
fn time_reasons(signal: Signal) -> (&'static str, &'static str) {
    match signal {
        Signal::Samples => ("sample_too_old", "sample_too_far_in_future"),
        Signal::Logs => ("greater_than_max_sample_age", "too_far_in_future"),
        Signal::Spans => ("span_too_old", "span_too_far_in_future"),
    }
}

/// Checks an item time (ms since the epoch) against the tenant's window at `now_ms`.
pub fn check_time(signal: Signal, t_ms: i64, limits: &Limits, now_ms: i64) -> Result<(), Invalid> {
    let (too_old, too_new) = time_reasons(signal);
    let show = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| ms.to_string())
    };
    if let Some(min) = limits.min_time_ms(now_ms)
        && t_ms < min
    {
        return Err(Invalid::new(
            too_old,
            format!(
                "timestamp {} is too old: the oldest accepted is {} (reject_old_samples_max_age)",
                show(t_ms),
                show(min)
            ),
        ));
    }
    let max = limits.max_time_ms(now_ms);
    if t_ms > max {
        return Err(Invalid::new(
            too_new,
            format!(
                "timestamp {} is too far in the future: the newest accepted is {} (creation_grace_period)",
                show(t_ms),
                show(max)
            ),
        ));
    }
    Ok(())
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_rules() {
        assert!(is_valid_metric_name("http_requests_total"));
        assert!(is_valid_metric_name("job:rate5m"));
        assert!(!is_valid_metric_name("1abc"));
        assert!(!is_valid_metric_name(""));
        assert!(is_valid_label_name("_x1"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name("a-b"));
    }

    #[test]
    fn label_checks_name_the_problem() {
        let limits = Limits {
            max_label_names_per_series: 3,
            max_label_value_length: 5,
            ..Limits::default()
        };
        assert!(check_labels(&[("__name__", "up"), ("job", "api")], &limits).is_ok());
        let e = check_labels(&[("job", "a"), ("job", "b")], &limits).unwrap_err();
        assert_eq!(e.reason, "duplicate_label_names");
        let e =
            check_labels(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")], &limits).unwrap_err();
        assert_eq!(e.reason, "max_label_names_per_series");
        assert!(e.message.contains("= 3"), "{}", e.message);
        let e = check_labels(&[("job", "toolong")], &limits).unwrap_err();
        assert_eq!(e.reason, "label_value_too_long");
        let e = check_labels(&[("__name__", "1x")], &limits).unwrap_err();
        assert_eq!(e.reason, "metric_name_invalid");
        assert_eq!(
            check_labels::<&str, &str>(&[], &limits).unwrap_err().reason,
            "missing_labels"
        );
    }

    #[test]
    fn time_window() {
        let limits = Limits::default();
        let now = 1_767_225_600_000;
        assert!(check_time(Signal::Samples, now, &limits, now).is_ok());
        let e = check_time(Signal::Samples, now - 8 * 86_400_000, &limits, now).unwrap_err();
        assert_eq!(e.reason, "sample_too_old");
        let e = check_time(Signal::Logs, now + 3_600_000, &limits, now).unwrap_err();
        assert_eq!(e.reason, "too_far_in_future");
        assert!(e.message.contains("creation_grace_period"), "{}", e.message);
    }
}
