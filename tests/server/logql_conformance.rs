//! The LogQL conformance cases of `tests/logql/cases/` (format in its
//! README) through the conformance runner: every file must read, and at
//! least [`FLOOR`] cases must pass.

use std::path::PathBuf;

use o11ydb::query::logql::conformance::run_dir;

/// Cases that must pass (all 419 of the suite). Raise it as cases are added.
const FLOOR: usize = 419;

#[tokio::test(flavor = "multi_thread")]
async fn logql_conformance_cases_pass_the_floor() {
    cases_pass_the_floor(false).await;
}

/// The same cases with every `load` flushed into a block: line filters are
/// decided per line template there (blocks list their templates).
#[tokio::test(flavor = "multi_thread")]
async fn logql_conformance_cases_pass_the_floor_from_blocks() {
    cases_pass_the_floor(true).await;
}

async fn cases_pass_the_floor(from_blocks: bool) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/logql/cases");
    let report = run_dir(&dir, from_blocks)
        .await
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for failure in &report.failures {
        println!("{failure}");
    }
    println!("{}", report.summary());
    assert!(
        report
            .failures
            .iter()
            .all(|f| !f.contains("cannot read the file")),
        "a case file does not parse"
    );
    assert!(
        report.passed >= FLOOR,
        "{} cases passed, the floor is {FLOOR}",
        report.passed
    );
}
