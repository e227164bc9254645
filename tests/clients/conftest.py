"""Starts the real o11ydb binary for the Python client tests.

The binary is taken from $O11YDB_BIN, else from $CARGO_TARGET_DIR/debug/o11ydb,
else from ./target/debug/o11ydb. Each test module gets its own server on free
ports with a temporary data directory.
"""

import os
import pathlib
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def binary() -> str:
    if os.environ.get("O11YDB_BIN"):
        return os.environ["O11YDB_BIN"]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "debug" / "o11ydb"
    if not path.exists():
        raise RuntimeError(f"{path} does not exist: run `cargo build` first or set O11YDB_BIN")
    return str(path)


class Server:
    def __init__(self, data_dir: pathlib.Path, extra_args=(), env=None, config_text=""):
        """`config_text` is appended to the config file (more sections)."""
        config = data_dir.parent / "config.toml"
        config.write_text('[ingester]\nflush_max_age = "1h"\nflush_check_interval = "1h"\n' + config_text)
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary(), "serve", "--config", str(config), "--data-dir", str(data_dir),
             "--pg-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
             "--otlp-grpc-listen", "127.0.0.1:0", "--flight-listen", "127.0.0.1:0", *extra_args],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env={**os.environ, **(env or {})})
        self.pg_host, self.pg_port, self.http, self.otlp_grpc = None, None, None, None
        self.flight = None  # grpc://host:port (Arrow Flight SQL; grpc+tls:// with [flight] TLS)
        deadline = time.time() + 60
        while None in (self.http, self.pg_port, self.otlp_grpc, self.flight):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("o11ydb exited before listening: " + self.log_path.read_text())
            line = line.strip()
            if line.startswith("postgres:"):
                host, port = line.split()[1].rsplit(":", 1)
                self.pg_host, self.pg_port = host, int(port)
            elif line.startswith("http:"):
                self.http = line.split()[1]
            elif line.startswith("otlp grpc:"):
                self.otlp_grpc = line.split()[2]
            elif line.startswith("flight:"):
                scheme = "grpc+tls" if "grpc+tls://" in line else "grpc"
                self.flight = f"{scheme}://{line.split()[1]}"
            if time.time() > deadline:
                raise RuntimeError("o11ydb did not start in time")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def dsn(self) -> str:
        return f"host={self.pg_host} port={self.pg_port} user=o11ydb dbname=o11ydb"

    def flush(self):
        req = urllib.request.Request(self.http + "/flush", method="POST")
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 204

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory(prefix="o11ydb-py") as tmp:
        s = Server(pathlib.Path(tmp) / "data")
        try:
            yield s
        finally:
            s.stop()
