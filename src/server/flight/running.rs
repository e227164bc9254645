//! Running statements and their cancellation: statement tickets in, query
//! ids out; a `CancelFlightInfo` (or Flight SQL's `CancelQuery`) names a
//! `FlightInfo`, whose ticket's id stops the `DoGet` streams running it.
//!
//! Every statement `FlightInfo` carries a ticket with a fresh random id
//! ([`StatementTicket`]). A `DoGet` registers that id under its tenant and
//! runs the query in a task of its own ([`pump`]) that holds the
//! DataFusion stream and the tenant's queue slot and feeds a small channel
//! to the gRPC response. The task stops, dropping the DataFusion stream
//! (which aborts its partitions' tasks) and the slot at once, when:
//!
//! - the id is cancelled: the response then ends with `CANCELLED`, even if
//!   the client is not reading;
//! - the client goes away (it dropped the `DoGet` stream or the
//!   connection): nothing keeps computing a result no one will read.
//!
//! A cancelled id stays cancelled (a later `DoGet` of the same ticket is
//! `CANCELLED` too, as Flight prescribes for a cancelled `FlightInfo`); the
//! last [`MAX_CANCELLED`] cancelled ids are remembered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use arrow_flight::error::FlightError;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tonic::Status;

/// How many cancelled ids are remembered (oldest forgotten first).
pub const MAX_CANCELLED: usize = 10_000;

/// Batches a statement may compute ahead of the client reading them.
const AHEAD: usize = 2;

/// What a statement ticket (`TicketStatementQuery.statement_handle`) holds:
/// the id `CancelFlightInfo` names, and the SQL to run or the handle of the
/// prepared statement to run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatementTicket {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub sql: String,
    #[prost(bytes = "vec", tag = "3")]
    pub prepared_handle: Vec<u8>,
}

impl StatementTicket {
    /// A ticket with a fresh id running `sql`.
    pub fn sql(sql: &str) -> Self {
        StatementTicket {
            id: new_id(),
            sql: sql.to_string(),
            prepared_handle: vec![],
        }
    }

    /// A ticket with a fresh id running the prepared statement `handle`.
    pub fn prepared(handle: &[u8]) -> Self {
        StatementTicket {
            id: new_id(),
            sql: String::new(),
            prepared_handle: handle.to_vec(),
        }
    }

    /// Reads a statement handle this server issued.
    pub fn decode_handle(handle: &[u8]) -> Result<Self, Status> {
        match StatementTicket::decode(handle) {
            Ok(ticket) if !ticket.id.is_empty() => Ok(ticket),
            _ => Err(Status::invalid_argument(
                "the statement ticket was not issued by this server: \
                 use the ticket of the FlightInfo GetFlightInfo answered",
            )),
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A query id of a tenant.
type Key = (String, String);

/// The ids of running and cancelled statements.
#[derive(Default)]
pub struct RunningStatements {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Per running id: its stop signal and how many `DoGet`s run it.
    running: HashMap<Key, (watch::Sender<bool>, usize)>,
    cancelled: HashSet<Key>,
    cancelled_order: VecDeque<Key>,
}

/// A `DoGet` running an id; dropping it forgets the run.
pub struct Registration {
    statements: Arc<RunningStatements>,
    key: Key,
    stop: watch::Receiver<bool>,
}

impl Registration {
    /// Resolves once the statement is cancelled.
    pub async fn cancelled(&self) {
        let mut stop = Some(self.stop.clone());
        cancelled(&mut stop).await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.statements.state.lock();
        if let Some((_, runs)) = state.running.get_mut(&self.key) {
            *runs -= 1;
            if *runs == 0 {
                state.running.remove(&self.key);
            }
        }
    }
}

impl RunningStatements {
    /// Registers a run of `id` for `tenant`; `CANCELLED` if the id was
    /// cancelled already.
    pub fn start(self: &Arc<Self>, tenant: &str, id: &str) -> Result<Registration, Status> {
        let key = (tenant.to_string(), id.to_string());
        let mut state = self.state.lock();
        if state.cancelled.contains(&key) {
            return Err(cancelled_status());
        }
        let (signal, runs) = state
            .running
            .entry(key.clone())
            .or_insert_with(|| (watch::channel(false).0, 0));
        *runs += 1;
        let stop = signal.subscribe();
        Ok(Registration {
            statements: self.clone(),
            key,
            stop,
        })
    }

    /// Cancels `id` of `tenant`: its running `DoGet`s stop and later ones
    /// are refused. Answers whether a run was stopped.
    pub fn cancel(&self, tenant: &str, id: &str) -> bool {
        let key = (tenant.to_string(), id.to_string());
        let mut state = self.state.lock();
        if state.cancelled.insert(key.clone()) {
            state.cancelled_order.push_back(key.clone());
            while state.cancelled_order.len() > MAX_CANCELLED {
                if let Some(old) = state.cancelled_order.pop_front() {
                    state.cancelled.remove(&old);
                }
            }
        }
        match state.running.get(&key) {
            Some((signal, _)) => {
                signal.send_replace(true);
                true
            }
            None => false,
        }
    }

    /// How many distinct ids are running.
    pub fn running(&self) -> usize {
        self.state.lock().running.len()
    }
}

/// The status a cancelled statement's `DoGet` ends with.
pub fn cancelled_status() -> Status {
    Status::cancelled("the statement was cancelled (CancelFlightInfo)")
}

/// Why the pump stopped.
enum Stop {
    Done,
    ClientGone,
    Cancelled,
}

/// Runs `batches` in a task of its own, holding `held` (the query's timer
/// and queue slot) until the batches end, the client goes away or
/// `registration`'s id is cancelled; returns the stream the client reads.
pub fn pump<H: Send + 'static>(
    batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
    held: H,
    registration: Option<Registration>,
) -> impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static {
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::spawn(async move {
        let mut batches = Box::pin(batches);
        let mut stop = registration.as_ref().map(|r| r.stop.clone());
        let stopped = loop {
            let next = tokio::select! {
                _ = cancelled(&mut stop) => break Stop::Cancelled,
                _ = tx.closed() => break Stop::ClientGone,
                next = batches.next() => next,
            };
            let Some(item) = next else {
                break Stop::Done;
            };
            tokio::select! {
                _ = cancelled(&mut stop) => break Stop::Cancelled,
                sent = tx.send(item) => if sent.is_err() {
                    break Stop::ClientGone;
                },
            }
        };
        // Stop the query and give its slot back before anything else.
        drop(batches);
        drop(held);
        drop(registration);
        match stopped {
            Stop::Cancelled => {
                tracing::debug!("flight statement cancelled");
                let _ = tx
                    .send(Err(FlightError::Tonic(Box::new(cancelled_status()))))
                    .await;
            }
            Stop::ClientGone => tracing::debug!("flight client went away mid-statement"),
            Stop::Done => {}
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Resolves once `stop` turns `true`; never without a signal.
async fn cancelled(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            if rx.wait_for(|stopped| *stopped).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn tickets_round_trip_and_foreign_handles_are_refused() {
        let t = StatementTicket::sql("SELECT 1");
        let back = StatementTicket::decode_handle(&t.encode_to_vec()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.id.len(), 32);
        assert_ne!(StatementTicket::sql("SELECT 1").id, t.id);
        let err = StatementTicket::decode_handle(b"").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("not issued by this server"));
    }

    #[test]
    fn cancelled_ids_stay_cancelled_per_tenant_and_are_bounded() {
        let s = Arc::new(RunningStatements::default());
        let run = s.start("a", "q1").unwrap();
        assert_eq!(s.running(), 1);
        // Another tenant cannot stop it.
        assert!(!s.cancel("b", "q1"));
        assert!(!*run.stop.borrow());
        assert!(s.cancel("a", "q1"));
        assert!(*run.stop.borrow());
        drop(run);
        assert_eq!(s.running(), 0);
        let err = s.start("a", "q1").err().unwrap();
        assert_eq!(err.code(), tonic::Code::Cancelled);
        assert!(s.start("c", "q1").is_ok());
        for i in 0..MAX_CANCELLED {
            s.cancel("a", &format!("other{i}"));
        }
        assert!(s.start("a", "q1").is_ok(), "the oldest id is forgotten");
        assert_eq!(s.state.lock().cancelled.len(), MAX_CANCELLED);
    }

    /// Counts how many batches were produced and whether `held` was dropped.
    struct Held(Arc<AtomicUsize>);
    impl Drop for Held {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn endless(produced: Arc<AtomicUsize>) -> impl Stream<Item = Result<RecordBatch, FlightError>> {
        futures::stream::repeat_with(move || {
            produced.fetch_add(1, Ordering::SeqCst);
            Ok(RecordBatch::new_empty(Arc::new(
                arrow::datatypes::Schema::empty(),
            )))
        })
        .then(|b| async move {
            tokio::task::yield_now().await;
            b
        })
    }

    #[tokio::test]
    async fn a_cancel_stops_an_unread_stream_and_frees_what_it_held() {
        let s = Arc::new(RunningStatements::default());
        let (produced, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let run = s.start("a", "q").unwrap();
        let stream = pump(endless(produced.clone()), Held(dropped.clone()), Some(run));
        let mut stream = Box::pin(stream);
        stream.next().await.unwrap().unwrap();
        // The client stops reading; the pump waits with a few batches ahead.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(produced.load(Ordering::SeqCst) <= AHEAD + 3);
        assert!(s.cancel("a", "q"));
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while dropped.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the held slot is released without the client reading");
        assert_eq!(s.running(), 0);
        let err = stream.try_collect::<Vec<_>>().await.unwrap_err();
        match err {
            FlightError::Tonic(status) => assert_eq!(status.code(), tonic::Code::Cancelled),
            other => panic!("{other}"),
        }
    }

    #[tokio::test]
    async fn a_dropped_stream_stops_the_query() {
        let (produced, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let stream = pump(endless(produced.clone()), Held(dropped.clone()), None);
        let mut stream = Box::pin(stream);
        stream.next().await.unwrap().unwrap();
        drop(stream);
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while dropped.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("dropping the stream stops the query");
        let after = produced.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(produced.load(Ordering::SeqCst), after);
    }
}
