//! psql's meta-commands against o11ydb: each runs the catalog queries the
//! real psql binary sends (`\l`, `\dn`, `\df`, `\dt`, `\d`, `\d logs`,
//! `\d+ samples`, `\dv`, `\du`, `\conninfo`), exits 0 with no `ERROR`, and
//! shows o11ydb's tables, views, schemas and functions. Also the settings
//! drivers read at connect time (`SHOW`, `current_setting`).

use std::process::Output;

use crate::common::{Server, tempdir};

fn run(server: &Server, command: &str) -> String {
    let out: Output = server.psql(command);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{command} failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    assert!(
        !stderr.contains("ERROR"),
        "{command} printed an error:\n{stderr}"
    );
    stdout
}

fn assert_lists(command: &str, text: &str, names: &[&str]) {
    for name in names {
        assert!(text.contains(name), "{command} lacks {name}:\n{text}");
    }
}

#[test]
fn psql_meta_commands_list_o11ydbs_catalog() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));

    let text = run(&server, "\\l");
    assert_lists("\\l", &text, &["List of databases", "datafusion"]);

    let text = run(&server, "\\dn");
    assert_lists("\\dn", &text, &["List of schemas", "public"]);

    let text = run(&server, "\\df");
    assert_lists(
        "\\df",
        &text,
        &[
            "promql",
            "logql",
            "traceql",
            "service_graph",
            "span_metrics",
            "query text",
        ],
    );

    let text = run(&server, "\\dt");
    assert_lists("\\dt", &text, &["logs", "samples", "spans", "table"]);
    assert!(!text.contains("traces"), "\\dt lists views:\n{text}");

    let text = run(&server, "\\d");
    assert_lists(
        "\\d",
        &text,
        &["logs", "samples", "spans", "traces", "view"],
    );

    let text = run(&server, "\\d logs");
    assert_lists(
        "\\d logs",
        &text,
        &[
            "Table \"public.logs\"",
            "timestamp",
            "timestamp with time zone",
            "line",
            "labels",
            "not null",
        ],
    );

    let text = run(&server, "\\d+ samples");
    assert_lists(
        "\\d+ samples",
        &text,
        &[
            "Table \"public.samples\"",
            "metric",
            "value",
            "double precision",
            "Storage",
        ],
    );

    let text = run(&server, "\\dv");
    assert_lists("\\dv", &text, &["traces", "series", "view"]);
    assert!(!text.contains("| table"), "\\dv lists tables:\n{text}");

    let text = run(&server, "\\du");
    assert_lists("\\du", &text, &["List of roles", "Role name"]);

    let text = run(&server, "\\conninfo");
    assert_lists(
        "\\conninfo",
        &text,
        &[
            "You are connected to database",
            &server.pg.port().to_string(),
        ],
    );

    // \df with a pattern: only the matching function's overloads.
    let text = run(&server, "\\df promql");
    assert_lists("\\df promql", &text, &["promql", "step interval"]);
    assert!(!text.contains("logql"), "{text}");
}

#[test]
fn connect_time_settings_answer_like_postgres() {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    let text = run(
        &server,
        "SET extra_float_digits = 3; SET application_name = 'PostgreSQL JDBC Driver'; \
         SHOW transaction_isolation; SHOW TRANSACTION ISOLATION LEVEL; SHOW server_version; \
         SHOW application_name; SHOW standard_conforming_strings; \
         SELECT current_setting('server_version_num'), current_setting('jit'), current_schema(), version()",
    );
    assert_lists(
        "settings",
        &text,
        &[
            "read committed",
            "16.6",
            "PostgreSQL JDBC Driver",
            "on",
            "160006",
            "off",
            "public",
            "PostgreSQL 16.6 (o11ydb",
        ],
    );
    assert!(!text.contains("read uncommitted"), "{text}");
    // An unknown setting is an error, as in Postgres; the server keeps serving.
    let out = server.psql("SHOW no_such_setting");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("42704") && stderr.contains("unrecognized configuration parameter"),
        "{stderr}"
    );
    let out = server.psql("SELECT current_setting('no_such_setting')");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unrecognized configuration parameter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(&server, "SELECT 1");
}
