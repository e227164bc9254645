//! Integration tests over real sockets: each test starts the real `o11ydb`
//! binary on free ports with a temporary data directory and talks to it with
//! real clients (the PromQL conformance scripts drive the library's runner
//! directly). One test binary, so the engine is linked once.

mod check_cli;
mod common;
mod compactor;
mod downsampling;
mod durability;
mod flight_sql;
mod import;
mod limits;
mod log_deletion;
mod logql_conformance;
mod loki_api;
mod pg_auth;
mod prom_answers;
mod prometheus_api;
mod promql_conformance;
mod promql_differential;
mod pruning;
mod psql_meta;
mod query_frontend;
mod query_sharding;
mod query_sharding_logql;
mod remote_write;
mod ruler;
mod self_monitoring;
mod series_limit;
mod service_graph;
mod sql;
mod tempo_api;
mod tenant_isolation;
mod traceql_api;
mod traces_bench;
mod wire_bad_input;
