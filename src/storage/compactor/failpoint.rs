//! Failpoints for crash tests: with `O11YDB_FAILPOINT=compactor:<step>` in
//! the environment the process aborts (no cleanup, like `kill -9`) when the
//! compactor reaches that step. Steps:
//!
//! * `after_output` — a merged block and its index are written, the
//!   manifest does not list them yet;
//! * `after_publish` — the manifest that swaps the inputs for the output is
//!   published, the inputs are pending deletion;
//! * `after_expire` — the manifest that drops blocks past retention is published;
//! * `after_downsample_output` — a downsampled block and its index are
//!   written, the manifest does not list them yet;
//! * `during_delete` — one due block's files are deleted, the manifest still
//!   lists it as pending deletion.

use std::sync::LazyLock;

static FAILPOINT: LazyLock<Option<String>> =
    LazyLock::new(|| std::env::var("O11YDB_FAILPOINT").ok());

/// Every step a failpoint can name.
pub const STEPS: [&str; 5] = [
    "after_output",
    "after_publish",
    "after_expire",
    "after_downsample_output",
    "during_delete",
];

/// Aborts the process if the failpoint names this compactor step.
pub fn hit(step: &'static str) {
    debug_assert!(STEPS.contains(&step), "unknown failpoint step {step}");
    if let Some(fp) = FAILPOINT.as_deref()
        && fp.strip_prefix("compactor:") == Some(step)
    {
        eprintln!("failpoint {fp}: aborting");
        std::process::abort();
    }
}
