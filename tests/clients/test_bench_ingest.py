"""`o11ydb bench ingest` against the real server: every protocol's load
generator sends requests the server accepts, and what it reports as
acknowledged is exactly what SQL then counts."""

import subprocess

import psycopg
import pytest

from conftest import binary

CASES = [
    # protocol, args, table, unit printed by the generator
    ("remote-write", ["--items", "500", "--rounds", "4", "--per-request", "300"], "samples", "samples"),
    ("loki-push", ["--items", "50", "--rounds", "40", "--per-request", "500"], "logs", "lines"),
    ("otlp-traces", ["--items", "30", "--rounds", "3", "--per-request", "100"], "spans", "spans"),
]


def report(output: str) -> dict:
    return dict(line.split(": ", 1) for line in output.strip().splitlines())


@pytest.mark.parametrize("protocol,args,table,unit", CASES, ids=[c[0] for c in CASES])
def test_load_generator_counts_match_sql(server, protocol, args, table, unit):
    target = server.http.removeprefix("http://")
    done = subprocess.run(
        [binary(), "bench", "ingest", "--protocol", protocol, "--target", target, "--connections", "3", *args],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    r = report(done.stdout)
    assert r["failed_requests"] == "0"
    sent = int(r[unit])
    assert sent > 0
    assert float(r[f"{unit}_per_second"]) > 0
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert count == sent


def test_bad_target_fails_clearly():
    done = subprocess.run(
        [binary(), "bench", "ingest", "--target", "127.0.0.1:1", "--items", "10", "--rounds", "1"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "refused" in (done.stdout + done.stderr).lower()
