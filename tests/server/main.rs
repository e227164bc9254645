//! Integration tests over real sockets: each test starts the real `o11ydb`
//! binary on free ports with a temporary data directory and talks to it with
//! real clients (the PromQL conformance scripts drive the library's runner
//! directly). One test binary, so the engine is linked once.

mod common;
mod durability;
mod limits;
mod logql_conformance;
mod loki_api;
mod prom_answers;
mod prometheus_api;
mod promql_conformance;
mod promql_differential;
mod pruning;
mod remote_write;
mod sql;
mod traces_bench;
