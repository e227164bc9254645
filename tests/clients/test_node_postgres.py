"""node-postgres (pg, pinned in tests/clients/node/package-lock.json):
runs `node --test` in tests/clients/node against a real o11ydb server."""

import os
import pathlib
import subprocess

import pytest

NODE_DIR = pathlib.Path(__file__).resolve().parent / "node"


def test_node_postgres(server):
    if not (NODE_DIR / "node_modules" / "pg").is_dir():
        pytest.fail("node_modules is missing: run `npm ci` in tests/clients/node (.ci/run does)")
    env = {**os.environ, "PGHOST": server.pg_host, "PGPORT": str(server.pg_port),
           "PGUSER": "o11ydb", "PGDATABASE": "o11ydb", "TZ": "UTC"}
    result = subprocess.run(["node", "--test", "--test-reporter=spec", "pg.test.mjs"],
                            cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=300)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
