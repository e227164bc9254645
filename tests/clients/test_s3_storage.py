"""Blocks on an S3-compatible object store: o11ydb with --storage s3://...
against a real S3 API server (moto's standalone server), including a restart
on an empty data directory, which can only answer from the bucket."""

import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import psycopg
import pytest

from conftest import Server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    port = free_port()
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    deadline = time.time() + 30
    while True:
        try:
            client.create_bucket(Bucket="telemetry")
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    env = {"AWS_ENDPOINT": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    yield client, env
    proc.terminate()
    proc.wait(timeout=10)


def test_blocks_live_in_the_bucket_and_survive_a_new_data_dir(s3):
    client, env = s3
    args = ["--storage", "s3://telemetry/o11ydb"]
    with tempfile.TemporaryDirectory(prefix="o11ydb-s3") as tmp:
        first = Server(pathlib.Path(tmp) / "first", args, env)
        try:
            with psycopg.connect(first.dsn(), autocommit=True) as c:
                c.execute("INSERT INTO logs (timestamp, labels, line) "
                          "VALUES ('2026-01-01T00:00:00Z', map(['app'], ['s3']), 'stored in a bucket')")
            first.flush()
        finally:
            first.stop()
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="telemetry")["Contents"]]
        assert any(k.startswith("o11ydb/tenants/anonymous/logs/blocks/") and k.endswith(".parquet") for k in keys), keys
        assert any(k.startswith("o11ydb/tenants/anonymous/logs/manifests/") for k in keys), keys

        second = Server(pathlib.Path(tmp) / "second", args, env)
        try:
            with psycopg.connect(second.dsn(), autocommit=True) as c:
                rows = c.execute("SELECT labels, line FROM logs").fetchall()
                assert rows == [({"app": "s3"}, "stored in a bucket")]
        finally:
            second.stop()
