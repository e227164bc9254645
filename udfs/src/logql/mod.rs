//! Per-line kernels of LogQL pipeline stages, with the semantics of Grafana
//! Loki: plain `std` code that takes one log line (or label value) and gives
//! back extracted labels, a rewritten line or a match decision.
//!
//! What flows through: the engine compiles each stage once (patterns,
//! expressions, templates, IP ranges) and then calls the kernel for every
//! line of the selected streams. Kernels borrow the line and avoid
//! allocating unless they return owned labels.
//!
//! * [`labels`] — label-name sanitisation of parsed keys.
//! * [`logfmt`] — `| logfmt` (with `--strict` / `--keep-empty`).
//! * [`json`] — `| json`, `| json l="expr"` and `| unpack`.
//! * [`pattern`] — `| pattern` and the `|>` / `!>` line filters.
//! * [`template`] — the Go text/template subset of `line_format` and
//!   `label_format`, with Loki's function set.
//! * [`units`] — byte sizes and durations (`| unwrap bytes(..)`,
//!   `duration(..)`, label filters on sizes and durations).
//! * [`ip`] — the `ip("…")` line and label filters.
//! * [`ansi`] — `| decolorize`.

pub mod ansi;
pub mod ip;
pub mod json;
pub mod labels;
pub mod logfmt;
pub mod pattern;
pub mod template;
pub mod units;
