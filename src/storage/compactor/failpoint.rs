//! Failpoints for crash and progress tests: with
//! `O11YDB_FAILPOINT=compactor:<step>` in the environment the process
//! aborts (no cleanup, like `kill -9`) when the compactor reaches that
//! step; with `O11YDB_FAILPOINT=compactor:<step>:sleep=<duration>` the
//! compactor instead pauses there each time (a slow object store, so a run
//! can be watched while it is under way). Steps:
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
use std::time::Duration;

/// What a failpoint does at its step.
enum Action {
    Abort,
    Sleep(Duration),
}

static FAILPOINT: LazyLock<Option<(String, Action)>> = LazyLock::new(|| {
    let fp = std::env::var("O11YDB_FAILPOINT").ok()?;
    let rest = fp.strip_prefix("compactor:")?;
    match rest.split_once(':') {
        None => Some((rest.to_string(), Action::Abort)),
        Some((step, action)) => {
            let sleep = action
                .strip_prefix("sleep=")
                .and_then(|d| crate::config::parse_duration(d).ok());
            match sleep {
                Some(d) => Some((step.to_string(), Action::Sleep(d))),
                None => {
                    eprintln!("failpoint {fp}: unknown action {action:?} (want sleep=<duration>)");
                    None
                }
            }
        }
    }
});

/// Every step a failpoint can name.
pub const STEPS: [&str; 5] = [
    "after_output",
    "after_publish",
    "after_expire",
    "after_downsample_output",
    "during_delete",
];

/// Aborts the process, or pauses the calling thread, if the failpoint names
/// this compactor step. The compactor runs on a blocking thread, so a pause
/// holds up nothing else.
pub fn hit(step: &'static str) {
    debug_assert!(STEPS.contains(&step), "unknown failpoint step {step}");
    match FAILPOINT.as_ref() {
        Some((s, Action::Abort)) if s == step => {
            eprintln!("failpoint compactor:{step}: aborting");
            std::process::abort();
        }
        Some((s, Action::Sleep(d))) if s == step => std::thread::sleep(*d),
        _ => {}
    }
}
