//! LogQL: query text → syntax tree ([`ast`]) → a scan of the tenant's `logs`
//! with the stream selector, time range and line filters pushed down → the
//! pipeline stages per line → log streams, or (metric queries) per-step
//! series evaluated by the same step-grid evaluator as PromQL.

pub mod ast;
