"""pgjdbc (Debian's libpostgresql-jdbc-java): runs the single-file Java
program tests/clients/java/JdbcClient.java against a real o11ydb server."""

import pathlib
import shutil
import subprocess

import pytest

JAVA_DIR = pathlib.Path(__file__).resolve().parent / "java"
DRIVER = pathlib.Path("/usr/share/java/postgresql.jar")


def test_pgjdbc(server):
    if shutil.which("java") is None or not DRIVER.exists():
        pytest.fail("java or the JDBC driver is missing: apt-get install default-jdk-headless "
                    "libpostgresql-jdbc-java (.ci/run does)")
    result = subprocess.run(
        ["java", "-cp", str(DRIVER), "JdbcClient.java", server.pg_host, str(server.pg_port)],
        cwd=JAVA_DIR, capture_output=True, text=True, timeout=300)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout
