//! Alert notifications: alerts the rules fire or resolve → one bounded
//! queue per Alertmanager → `POST <url>/api/v2/alerts` in batches.
//!
//! What flows through: [`Notification`]s (an alert's labels, annotations,
//! `startsAt`, `endsAt`, `generatorURL`) come in from group evaluations.
//! Each Alertmanager has its own queue and sender task, so one that is
//! down holds up no other. A queued alert is replaced by a newer state of
//! the same alert (same labels) in place, so an Alertmanager that is down
//! for a long time costs one queue slot per alert, not one per resend. A
//! failed send puts the batch back at the head of the queue and retries
//! with exponential backoff (no alert is lost while the Alertmanager is
//! down); only a queue past `notification_queue_capacity` drops, oldest
//! first, counted in `o11ydb_ruler_notifications_dropped_total`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;

/// Most alerts in one request (Prometheus' `maxBatchSize`).
const MAX_BATCH: usize = 64;
/// First retry delay after a failed send; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub const SENT: &str = "o11ydb_ruler_notifications_sent_total";
pub const ERRORS: &str = "o11ydb_ruler_notifications_errors_total";
pub const DROPPED: &str = "o11ydb_ruler_notifications_dropped_total";
pub const QUEUE_LENGTH: &str = "o11ydb_ruler_notifications_queue_length";
pub const QUEUE_CAPACITY: &str = "o11ydb_ruler_notifications_queue_capacity";

pub(super) fn describe(metrics: &Metrics) {
    metrics.describe(
        SENT,
        "counter",
        "Alerts delivered to an Alertmanager (2xx answer).",
    );
    metrics.describe(
        ERRORS,
        "counter",
        "Requests to an Alertmanager that failed (they are retried).",
    );
    metrics.describe(
        DROPPED,
        "counter",
        "Alerts dropped because an Alertmanager's queue was full.",
    );
    metrics.describe(
        QUEUE_LENGTH,
        "gauge",
        "Alerts waiting to be sent to an Alertmanager.",
    );
    metrics.describe(
        QUEUE_CAPACITY,
        "gauge",
        "Most alerts one Alertmanager queue holds.",
    );
}

/// One alert as Alertmanager's v2 API takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Sorted; external labels already added.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub generator_url: String,
}

impl Notification {
    fn key(&self) -> String {
        let mut key = String::new();
        for (k, v) in &self.labels {
            key.push_str(k);
            key.push('\u{0}');
            key.push_str(v);
            key.push('\u{0}');
        }
        key
    }

    pub fn to_json(&self) -> Value {
        let map = |pairs: &[(String, String)]| {
            Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect::<Map<_, _>>(),
            )
        };
        json!({
            "labels": map(&self.labels),
            "annotations": map(&self.annotations),
            "startsAt": rfc3339(self.starts_at_ms),
            "endsAt": rfc3339(self.ends_at_ms),
            "generatorURL": self.generator_url,
        })
    }
}

/// Milliseconds since the epoch as RFC 3339 in UTC (millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Alerts waiting for one Alertmanager, oldest first, one entry per alert.
#[derive(Default)]
struct Queue {
    by_seq: BTreeMap<u64, Notification>,
    seq_of: HashMap<String, u64>,
    next_seq: u64,
}

impl Queue {
    fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// Queues `n`, replacing a queued state of the same alert; returns
    /// how many alerts were dropped to stay within `capacity`.
    fn push(&mut self, n: Notification, capacity: usize) -> usize {
        let key = n.key();
        if let Some(seq) = self.seq_of.get(&key) {
            self.by_seq.insert(*seq, n);
            return 0;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_seq.insert(seq, n);
        self.seq_of.insert(key, seq);
        let mut dropped = 0;
        while self.by_seq.len() > capacity {
            if let Some((_, old)) = self.by_seq.pop_first() {
                self.seq_of.remove(&old.key());
                dropped += 1;
            }
        }
        dropped
    }

    fn take_batch(&mut self) -> Vec<(u64, Notification)> {
        let mut out = Vec::new();
        while out.len() < MAX_BATCH {
            let Some((seq, n)) = self.by_seq.pop_first() else {
                break;
            };
            self.seq_of.remove(&n.key());
            out.push((seq, n));
        }
        out
    }

    /// Puts a batch that could not be sent back in its place, unless a
    /// newer state of an alert was queued meanwhile.
    fn put_back(&mut self, batch: Vec<(u64, Notification)>, capacity: usize) -> usize {
        for (seq, n) in batch {
            let key = n.key();
            if self.seq_of.contains_key(&key) {
                continue;
            }
            self.seq_of.insert(key, seq);
            self.by_seq.insert(seq, n);
        }
        let mut dropped = 0;
        while self.by_seq.len() > capacity {
            if let Some((_, old)) = self.by_seq.pop_first() {
                self.seq_of.remove(&old.key());
                dropped += 1;
            }
        }
        dropped
    }
}

struct Target {
    /// `<alertmanager_url>/api/v2/alerts`
    endpoint: String,
    /// The configured URL, the `alertmanager` label of the metrics.
    url: String,
    queue: Mutex<Queue>,
    wake: Notify,
}

/// Sends alerts to every configured Alertmanager.
pub struct Notifier {
    targets: Vec<Arc<Target>>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Notifier {
    /// A notifier for `urls` (none: alerts are evaluated but not sent).
    pub fn new(urls: &[String], capacity: usize, metrics: Arc<Metrics>) -> Notifier {
        describe(&metrics);
        let targets: Vec<Arc<Target>> = urls
            .iter()
            .map(|url| {
                Arc::new(Target {
                    endpoint: format!("{}/api/v2/alerts", url.trim_end_matches('/')),
                    url: url.clone(),
                    queue: Mutex::new(Queue::default()),
                    wake: Notify::new(),
                })
            })
            .collect();
        for t in &targets {
            metrics.set(QUEUE_CAPACITY, &[("alertmanager", &t.url)], capacity as f64);
            metrics.set(QUEUE_LENGTH, &[("alertmanager", &t.url)], 0.0);
            metrics.add(SENT, &[("alertmanager", &t.url)], 0.0);
            metrics.add(ERRORS, &[("alertmanager", &t.url)], 0.0);
            metrics.add(DROPPED, &[("alertmanager", &t.url)], 0.0);
        }
        Notifier {
            targets,
            capacity,
            metrics,
        }
    }

    /// Queues `alerts` for every Alertmanager.
    pub fn send(&self, alerts: &[Notification]) {
        if alerts.is_empty() {
            return;
        }
        for t in &self.targets {
            let (dropped, len) = {
                let mut q = t.queue.lock();
                let dropped: usize = alerts
                    .iter()
                    .map(|a| q.push(a.clone(), self.capacity))
                    .sum();
                (dropped, q.len())
            };
            if dropped > 0 {
                self.metrics
                    .add(DROPPED, &[("alertmanager", &t.url)], dropped as f64);
                tracing::warn!(
                    alertmanager = %t.url,
                    dropped,
                    "alert queue full (notification_queue_capacity = {}); oldest alerts dropped",
                    self.capacity
                );
            }
            self.metrics
                .set(QUEUE_LENGTH, &[("alertmanager", &t.url)], len as f64);
            t.wake.notify_one();
        }
    }

    /// Starts one sender task per Alertmanager; they stop when `shutdown`
    /// fires, after one last attempt to deliver what is queued.
    pub fn spawn(
        self: &Arc<Self>,
        timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let client = match reqwest::Client::builder().timeout(timeout).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot build the Alertmanager HTTP client: {e}");
                return Vec::new();
            }
        };
        self.targets
            .iter()
            .map(|t| {
                let this = self.clone();
                let target = t.clone();
                let client = client.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { this.run(target, client, shutdown).await })
            })
            .collect()
    }

    async fn run(
        &self,
        t: Arc<Target>,
        client: reqwest::Client,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let batch = t.queue.lock().take_batch();
            if batch.is_empty() {
                tokio::select! {
                    _ = t.wake.notified() => continue,
                    _ = shutdown.changed() => return,
                }
            }
            let body = Value::Array(batch.iter().map(|(_, n)| n.to_json()).collect());
            let result = client.post(&t.endpoint).json(&body).send().await;
            let failure = match result {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    Some(format!("{status}: {}", text.trim()))
                }
                Err(e) => Some(e.to_string()),
            };
            let labels = [("alertmanager", t.url.as_str())];
            match failure {
                None => {
                    self.metrics.add(SENT, &labels, batch.len() as f64);
                    backoff = FIRST_BACKOFF;
                    let len = t.queue.lock().len();
                    self.metrics.set(QUEUE_LENGTH, &labels, len as f64);
                }
                Some(why) => {
                    self.metrics.add(ERRORS, &labels, 1.0);
                    tracing::warn!(
                        alertmanager = %t.url,
                        alerts = batch.len(),
                        "sending alerts failed, retrying in {backoff:?}: {why}"
                    );
                    let (dropped, len) = {
                        let mut q = t.queue.lock();
                        let d = q.put_back(batch, self.capacity);
                        (d, q.len())
                    };
                    if dropped > 0 {
                        self.metrics.add(DROPPED, &labels, dropped as f64);
                    }
                    self.metrics.set(QUEUE_LENGTH, &labels, len as f64);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, ends: i64) -> Notification {
        Notification {
            labels: vec![("alertname".into(), name.into())],
            annotations: vec![],
            starts_at_ms: 0,
            ends_at_ms: ends,
            generator_url: String::new(),
        }
    }

    #[test]
    fn queue_keeps_one_entry_per_alert_and_drops_oldest_past_capacity() {
        let mut q = Queue::default();
        assert_eq!(q.push(alert("a", 1), 2), 0);
        assert_eq!(q.push(alert("b", 1), 2), 0);
        // A newer state of `a` replaces the queued one in place.
        assert_eq!(q.push(alert("a", 2), 2), 0);
        assert_eq!(q.len(), 2);
        let batch = q.take_batch();
        assert_eq!(batch[0].1, alert("a", 2));
        // While the batch was out, `b` changed: the put-back keeps the new one.
        q.push(alert("b", 3), 2);
        assert_eq!(q.put_back(batch, 2), 0);
        let names: Vec<_> = q.take_batch().into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, [alert("a", 2), alert("b", 3)]);
        q.push(alert("a", 1), 2);
        q.push(alert("b", 1), 2);
        assert_eq!(q.push(alert("c", 1), 2), 1);
        let names: Vec<_> = q.take_batch().into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, [alert("b", 1), alert("c", 1)]);
    }

    #[test]
    fn alertmanager_json() {
        let n = Notification {
            labels: vec![("alertname".into(), "X".into())],
            annotations: vec![("summary".into(), "s".into())],
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: 1_700_000_060_500,
            generator_url: "http://h/graph".into(),
        };
        assert_eq!(
            n.to_json().to_string(),
            r#"{"annotations":{"summary":"s"},"endsAt":"2023-11-14T22:14:20.500Z","generatorURL":"http://h/graph","labels":{"alertname":"X"},"startsAt":"2023-11-14T22:13:20.000Z"}"#
        );
    }
}
