//! Numeric kernels behind o11ydb's PromQL functions: pure `std` code with no
//! knowledge of Arrow, DataFusion or labels.
//!
//! What flows through: for one series and one evaluation step, the engine
//! selects the window's samples (timestamps in milliseconds, `f64` values,
//! in time order, stale markers already removed) and hands them to a kernel,
//! which folds them into one value — the same value Prometheus 3.x computes
//! for that window, including its NaN/±Inf behaviour and float rounding.
//!
//! * [`range`] — range-vector functions: `rate`/`increase`/`delta`,
//!   `irate`/`idelta`, `resets`, `changes`, `deriv`, `predict_linear`,
//!   `double_exponential_smoothing` and the `*_over_time` family.
//! * [`stats`] — Kahan summation, the quantile over a set of values, and
//!   running accumulators for the `sum`, `avg`, `stddev`/`stdvar`
//!   aggregations across series.
//! * [`histogram`] — `histogram_quantile` and `histogram_fraction` over
//!   classic (`le`-bucketed) histograms.
//!
//! Kernels never panic: empty slices, NaN and ±Inf inputs give a value
//! (usually NaN) or `None` where Prometheus would emit no sample at all.

pub mod histogram;
pub mod range;
pub mod stats;
