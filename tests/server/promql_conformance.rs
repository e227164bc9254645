//! The Prometheus promqltest scripts (`/work/shared/conformance/promql`, or
//! `O11YDB_CONFORMANCE_DIR`) through the conformance runner: every script
//! must parse, and at least [`FLOOR`] evals must pass.

use std::path::PathBuf;

use o11ydb::query::promql::conformance::{RunOptions, run_dir};

/// Evals that must pass (of 1,169 in the 12 scripts). Every float eval
/// passes; the failures are native-histogram samples (not stored yet) and
/// the annotations about them. Raise it as conformance improves.
const FLOOR: usize = 1168;

fn conformance_dir() -> PathBuf {
    match std::env::var_os("O11YDB_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/promql"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn promql_conformance_scripts_pass_the_floor() {
    run_above_floor(RunOptions::default()).await;
}

/// The same scripts with each `load` flushed into a block: every selector
/// reads Parquet through the blocks' series directories.
#[tokio::test(flavor = "multi_thread")]
async fn promql_conformance_scripts_pass_the_floor_from_blocks() {
    run_above_floor(RunOptions {
        from_blocks: true,
        ..RunOptions::default()
    })
    .await;
}

async fn run_above_floor(options: RunOptions) {
    let dir = conformance_dir();
    if !dir.is_dir() {
        println!(
            "skipped: no PromQL conformance scripts at {} (set O11YDB_CONFORMANCE_DIR)",
            dir.display()
        );
        return;
    }
    // Into a buffer and then `print!`, so the harness captures the report.
    let mut out = Vec::new();
    let result = run_dir(&dir, &options, &mut out).await;
    print!("{}", String::from_utf8_lossy(&out));
    let summary = result.unwrap_or_else(|e| panic!("conformance run failed: {e}"));
    assert!(
        !summary.files.is_empty(),
        "no *.test files in {}",
        dir.display()
    );
    let above_floor = summary.passed >= FLOOR;
    assert!(
        above_floor,
        "{} evals passed, the floor is {FLOOR}",
        summary.passed
    );
}
