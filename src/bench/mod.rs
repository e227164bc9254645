//! Benchmark support shared by `benches/` (criterion) and the
//! `o11ydb bench` command: deterministic data generators and the
//! measurements that need a whole engine (bytes per sample, SQL aggregates).

pub mod compaction;
pub mod downsampling;
pub mod frontend;
pub mod ingest;
pub mod logql;
pub mod pg_clients;
pub mod prom_http;
pub mod promql;
pub mod ruler;
pub mod ruler_compare;
pub mod samples;
pub mod scrape_dataset;
pub mod storage;
pub mod traces;
