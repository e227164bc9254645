//! The per-tenant fair queue in front of query execution (the query
//! scheduler of Mimir/Loki, in process): at most `max_concurrent` queries
//! (or parts of split queries) run at once; the others wait in one queue
//! per tenant, and a freed slot goes to the next tenant in round-robin
//! order, so a tenant flooding the queue delays its own queries, not
//! everyone's. A tenant with `max_outstanding_requests_per_tenant` waiting
//! is refused at once (HTTP 429).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// The queue was full for this tenant.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "too many outstanding requests: tenant {tenant:?} already has {limit} queries waiting (max_outstanding_requests_per_tenant)"
)]
pub struct QueueFull {
    pub tenant: String,
    pub limit: usize,
}

pub struct FairQueue {
    max_concurrent: usize,
    max_outstanding: usize,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: usize,
    /// Tenants with waiters, in the order they are served next.
    turn: VecDeque<String>,
    waiting: HashMap<String, VecDeque<oneshot::Sender<Permit>>>,
}

/// A running slot of a tenant; dropping it hands the slot to the next waiter.
pub struct Permit {
    queue: Arc<FairQueue>,
    tenant: String,
    armed: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.queue.release(&self.tenant);
        }
    }
}

pub const QUEUE_LENGTH: &str = "o11ydb_query_scheduler_queue_length";
pub const DISCARDED: &str = "o11ydb_query_scheduler_discarded_requests_total";
pub const RUNNING: &str = "o11ydb_query_scheduler_running_queries";

impl FairQueue {
    pub fn new(max_concurrent: usize, max_outstanding: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.describe(
            QUEUE_LENGTH,
            "gauge",
            "Queries of a tenant waiting for a slot in the query scheduler.",
        );
        metrics.describe(
            DISCARDED,
            "counter",
            "Queries refused because the tenant's queue was full (HTTP 429).",
        );
        metrics.describe(RUNNING, "gauge", "Queries running now.");
        Arc::new(FairQueue {
            max_concurrent: max_concurrent.max(1),
            max_outstanding,
            metrics,
            state: Mutex::new(State::default()),
        })
    }

    /// Waits for a slot for `tenant` (in turn with other tenants), or fails
    /// at once when the tenant's queue is full.
    pub async fn acquire(self: &Arc<Self>, tenant: &str) -> Result<Permit, QueueFull> {
        let receiver = {
            let mut s = self.state.lock();
            let nobody_waits = s.turn.is_empty();
            if nobody_waits && s.running < self.max_concurrent {
                s.running += 1;
                self.metrics.set(RUNNING, &[], s.running as f64);
                return Ok(Permit {
                    queue: self.clone(),
                    tenant: tenant.to_string(),
                    armed: true,
                });
            }
            let queue = s.waiting.entry(tenant.to_string()).or_default();
            // Waiters whose request went away no longer count.
            queue.retain(|w| !w.is_closed());
            if queue.len() >= self.max_outstanding {
                drop(s);
                self.metrics.add(DISCARDED, &[("tenant", tenant)], 1.0);
                return Err(QueueFull {
                    tenant: tenant.to_string(),
                    limit: self.max_outstanding,
                });
            }
            let (tx, rx) = oneshot::channel();
            queue.push_back(tx);
            let len = queue.len();
            if !s.turn.iter().any(|t| t == tenant) {
                s.turn.push_back(tenant.to_string());
            }
            self.metrics
                .set(QUEUE_LENGTH, &[("tenant", tenant)], len as f64);
            rx
        };
        // The sender lives in the queue until it is handed a permit.
        Ok(receiver
            .await
            .expect("a waiter is only dropped after being sent a permit"))
    }

    /// Hands the slot `released_by` freed to the next tenant's oldest
    /// waiter (another tenant's first, when others wait), or frees it.
    fn release(self: &Arc<Self>, released_by: &str) {
        let mut s = self.state.lock();
        if s.turn.len() > 1 && s.turn.front().is_some_and(|t| t == released_by) {
            s.turn.rotate_left(1);
        }
        while let Some(tenant) = s.turn.pop_front() {
            let Some(queue) = s.waiting.get_mut(&tenant) else {
                continue;
            };
            let Some(waiter) = queue.pop_front() else {
                s.waiting.remove(&tenant);
                continue;
            };
            let left = queue.len();
            if left > 0 {
                s.turn.push_back(tenant.clone());
            } else {
                s.waiting.remove(&tenant);
            }
            self.metrics
                .set(QUEUE_LENGTH, &[("tenant", &tenant)], left as f64);
            let permit = Permit {
                queue: self.clone(),
                tenant: tenant.clone(),
                armed: true,
            };
            match waiter.send(permit) {
                Ok(()) => return,
                // The request went away while waiting: try the next one.
                Err(mut unused) => unused.armed = false,
            }
        }
        s.running -= 1;
        self.metrics.set(RUNNING, &[], s.running as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tenant A queues many queries before B asks; B gets the next slot, not the last.
    #[tokio::test]
    async fn a_flooding_tenant_does_not_starve_another() {
        let queue = FairQueue::new(1, 100, Arc::new(Metrics::default()));
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = queue.acquire("a").await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (q, o) = (queue.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = q.acquire("a").await.unwrap();
                o.lock().push(format!("a{i}"));
            }));
            tokio::task::yield_now().await;
        }
        let (q, o) = (queue.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _p = q.acquire("b").await.unwrap();
            o.lock().push("b".to_string());
        }));
        tokio::task::yield_now().await;
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().clone();
        assert_eq!(order[0], "b", "{order:?}");
        assert_eq!(order[1], "a0", "{order:?}");
        assert_eq!(queue.state.lock().running, 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_abandoned_waiters_are_skipped() {
        let queue = FairQueue::new(1, 2, Arc::new(Metrics::default()));
        let running = queue.acquire("a").await.unwrap();
        let w1 = tokio::spawn({
            let q = queue.clone();
            async move { q.acquire("a").await.map(|_| ()) }
        });
        let w2 = tokio::spawn({
            let q = queue.clone();
            async move { q.acquire("a").await.map(|_| ()) }
        });
        while queue.state.lock().waiting.get("a").map_or(0, |q| q.len()) < 2 {
            tokio::task::yield_now().await;
        }
        let err = queue.acquire("a").await.err().unwrap();
        assert!(
            err.to_string()
                .contains("max_outstanding_requests_per_tenant")
        );
        // Another tenant still gets in line.
        let b = tokio::spawn({
            let q = queue.clone();
            async move { q.acquire("b").await.map(|_| ()) }
        });
        w1.abort();
        let _ = w1.await;
        drop(running);
        w2.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(queue.state.lock().running, 0);
    }
}
