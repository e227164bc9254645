//! `o11ydb check logql|promql|traceql FILE` as a user runs it: the shipped
//! check files pass with exit status 0, and a file with a wrong expectation
//! fails with status 1, naming the line and the parser's message.

use std::process::Command;

use crate::common::BIN;

fn check(language: &str, file: &std::path::Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["check", language])
        .arg(file)
        .output()
        .expect("o11ydb runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn shipped_check_files_pass() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (language, file) in [
        ("traceql", "tests/traceql/check.txt"),
        ("logql", "tests/logql/check.txt"),
    ] {
        let (code, out) = check(language, &root.join(file));
        assert_eq!(code, 0, "{language}: {out}");
        let last = out.lines().last().unwrap_or_default();
        assert!(last.ends_with(" passed, 0 failed"), "{language}: {last}");
    }
}

#[test]
fn a_wrong_expectation_fails_with_its_line_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queries.txt");
    std::fs::write(
        &file,
        "ok\t{ span.a = 1 } >> { status = error }\nok\t{ .a = }\nerr\t{ kind = server }\n",
    )
    .unwrap();
    let (code, out) = check("traceql", &file);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("line 2: { .a = }") && out.contains("parse error at line 1, col 8"),
        "{out}"
    );
    assert!(
        out.contains("line 3:") && out.contains("expected an error"),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 2 failed\n"), "{out}");
}
