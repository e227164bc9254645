//! o11ydb: one observability database for logs, metrics and traces, queried
//! with SQL, PromQL, LogQL and TraceQL over the Postgres wire
//! protocol and HTTP.
//!
//! Where things live:
//!
//! | module | what flows through it |
//! | --- | --- |
//! | [`config`] | TOML file + flags → one typed [`config::Config`] |
//! | [`model`] | the Arrow schemas of `logs`, `samples`, `spans`; labels, series ids, normalisation |
//! | [`ingest`] | protocol decoders (remote write, Loki push, OTLP, Zipkin) → distributor (tenant, validation, limits) → WAL (fsync, group commit) → in-memory head → flush to blocks; accepted spans → metrics generator (span metrics, service graphs) → samples, exemplars in memory |
//! | [`storage`] | Parquet blocks, bloom indexes and atomic manifests on object storage; the compactor: small blocks → streaming k-way merge (dedupe, retention) → one block swapped in by one manifest version; replaced blocks deleted after a delay; log deletion requests per tenant (filtered in every `logs` scan, removed from blocks by the compactor); downsampling: old raw samples blocks → 5m, then 1h aggregate blocks (count, sum, min, max, counter) beside them |
//! | [`catalog`] | DataFusion table providers over head ∪ blocks, with pruning; `INSERT`; the aggregates of one downsampled resolution |
//! | [`query`] | PromQL text → selector scans of `samples` (range queries: of downsampled blocks where `max_source_resolution` and the step allow) → step-grid evaluator → Prometheus-shaped results; LogQL text → pushed-down scans of `logs` → pipeline per line → streams, or samples into the same evaluator; TraceQL text → pushed-down scans of `spans` → whole candidate traces → spansets or per-step series; the `promql()`/`logql()`/`traceql()` SQL table functions; `span_metrics()` planned from parameterised SQL in `sql/`, `service_graph()` paired per trace by its own operator (its rules in `sql/service_graph.sql`); the conformance runners; the query frontend (limits, split by time, PromQL sharded by series and LogQL metric queries by stream, results cache, per-tenant fair queue) in front of them |
//! | [`ruler`] | rule files per tenant (PromQL, LogQL) → groups evaluated on their interval → recording-rule samples and `ALERTS` written through the distributor; alerts → bounded queues → Alertmanager's `/api/v2/alerts` |
//! | [`engine`] | the open database: lock, storage, ingester, runtime; SQL sessions per tenant |
//! | [`server`] | Postgres wire (users, SCRAM/md5/password, TLS, cancel), HTTP (push endpoints, Prometheus, Loki and Tempo query APIs, `/metrics`), OTLP/gRPC and Arrow Flight SQL front ends; `[[users]]` → password checks and tenants for pgwire and Flight SQL (TLS, cancel) |
//! | [`import`] | `o11ydb import`: Parquet files → record batches → Flight SQL bulk ingest to a running server, with progress |
//! | [`bench`] | data generators and whole-engine measurements for benchmarks |
//! | [`demo`] | synthetic logs, metrics and traces written through the real write path |
//! | [`metrics`] | self-monitoring counters, gauges and histograms (`prometheus-client`) served on `/metrics` |
//! | [`error`] | the crate error and its SQLSTATE / HTTP mapping |

pub mod bench;
pub mod catalog;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod import;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod query;
pub mod ruler;
pub mod server;
pub mod storage;

pub use config::Config;
pub use engine::Engine;
pub use error::{Error, Result};
