"""Loki push (JSON, gzip JSON, protobuf + snappy) and Zipkin v2 spans sent
with `requests` to the real server, then read back over pgwire with psycopg."""

import gzip
import json
import re
import socket
import time
import urllib.parse

import cramjam
import psycopg
import pytest
import requests

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def conn(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        yield c


def now_ns() -> int:
    return time.time_ns()


def loki(server, body, headers=None, **kwargs):
    return requests.post(server.http + "/loki/api/v1/push", data=body, headers=headers or {}, timeout=120, **kwargs)


def rows(conn, app):
    return conn.execute(
        "SELECT labels, line, structured_metadata, severity FROM logs WHERE labels['app'] = %s ORDER BY timestamp",
        (app,)).fetchall()


# --- a tiny protobuf encoder for logproto.PushRequest -------------------------

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def push_request(streams) -> bytes:
    """streams: [(labels text, [(ns, line, {metadata})])] -> PushRequest bytes."""
    out = b""
    for labels, entries in streams:
        stream = field_bytes(1, labels.encode())
        for ns, line, metadata in entries:
            ts = field_varint(1, ns // 1_000_000_000) + field_varint(2, ns % 1_000_000_000)
            entry = field_bytes(1, ts) + field_bytes(2, line.encode())
            for k, v in metadata.items():
                entry += field_bytes(3, field_bytes(1, k.encode()) + field_bytes(2, v.encode()))
            stream += field_bytes(2, entry)
        out += field_bytes(1, stream)
    return out


# --- Loki push ----------------------------------------------------------------

def test_json_push_is_queryable(server, conn):
    t = now_ns()
    body = {"streams": [{"stream": {"app": "json", "env": "prod"}, "values": [
        [str(t), "plain line"],
        [str(t + 1), 'level=error msg="boom"', {"level": "error", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}],
    ]}]}
    r = loki(server, json.dumps(body), JSON)
    assert r.status_code == 204, r.text
    got = rows(conn, "json")
    assert got == [
        ({"app": "json", "env": "prod"}, "plain line", {}, None),
        ({"app": "json", "env": "prod"}, 'level=error msg="boom"',
         {"level": "error", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}, "error"),
    ]
    trace = conn.execute("SELECT trace_id FROM logs WHERE labels['app'] = 'json' AND severity = 'error'").fetchone()
    assert trace == ("4bf92f3577b34da6a3ce929d0e0e4736",)


def test_gzip_json_push(server, conn):
    body = json.dumps({"streams": [{"stream": {"app": "gz"}, "values": [[str(now_ns()), "compressed"]]}]})
    r = loki(server, gzip.compress(body.encode()), {**JSON, "Content-Encoding": "gzip"})
    assert r.status_code == 204, r.text
    assert [row[1] for row in rows(conn, "gz")] == ["compressed"]


def test_protobuf_snappy_push(server, conn):
    t = now_ns()
    payload = push_request([
        ('{app="proto", quoted="a \\"b\\" c"}', [
            (t, "first", {}),
            (t + 5, "second", {"detected_level": "warn", "user": "u1"}),
        ]),
    ])
    body = bytes(cramjam.snappy.compress_raw(payload))
    r = loki(server, body, {"Content-Type": "application/x-protobuf"})
    assert r.status_code == 204, r.text
    got = rows(conn, "proto")
    assert got == [
        ({"app": "proto", "quoted": 'a "b" c'}, "first", {}, None),
        ({"app": "proto", "quoted": 'a "b" c'}, "second", {"detected_level": "warn", "user": "u1"}, "warn"),
    ]
    # Without Content-Type, protobuf + snappy is the default (as in Loki).
    payload = push_request([('{app="proto-default"}', [(now_ns(), "x", {})])])
    r = loki(server, bytes(cramjam.snappy.compress_raw(payload)))
    assert r.status_code == 204, r.text
    assert len(rows(conn, "proto-default")) == 1


def test_protobuf_bad_labels_name_the_position(server, conn):
    t = now_ns()
    payload = push_request([('{app="bad', [(t, "lost", {})]), ('{app="protook"}', [(t, "kept", {})])])
    r = loki(server, bytes(cramjam.snappy.compress_raw(payload)), {"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400
    assert "error parsing labels" in r.text and "byte 5" in r.text, r.text
    assert [row[1] for row in rows(conn, "protook")] == ["kept"]


def test_large_batch_in_one_request(server, conn):
    t = now_ns()
    line = "x" * 999
    n = 20_000  # ~20 MB of lines
    values = [[str(t + i), f"{i:06d}{line}"] for i in range(n)]
    body = json.dumps({"streams": [{"stream": {"app": "big"}, "values": values}]})
    assert len(body) > 20_000_000
    r = loki(server, body, JSON)
    assert r.status_code == 204, r.text
    count, total = conn.execute(
        "SELECT count(*), sum(length(line)) FROM logs WHERE labels['app'] = 'big'").fetchone()
    assert (count, total) == (n, n * 1005)


def test_too_long_lines_are_refused_and_the_rest_written(server, conn):
    t = now_ns()
    body = {"streams": [{"stream": {"app": "mixed"}, "values": [
        [str(t), "short one"],
        [str(t + 1), "y" * 300_000],
        [str(t + 2), "short two"],
    ]}]}
    r = loki(server, json.dumps(body), JSON)
    assert r.status_code == 400
    assert "max_line_size" in r.text and "line_too_long: 1" in r.text, r.text
    assert [row[1] for row in rows(conn, "mixed")] == ["short one", "short two"]


def test_invalid_timestamp_is_discarded(server, conn):
    body = {"streams": [{"stream": {"app": "badts"}, "values": [["yesterday", "a"], [str(now_ns()), "b"]]}]}
    r = loki(server, json.dumps(body), JSON)
    assert r.status_code == 400
    assert '"yesterday"' in r.text and "streams[0].values[0]" in r.text, r.text
    assert [row[1] for row in rows(conn, "badts")] == ["b"]


def test_garbage_bodies_are_400(server):
    r = loki(server, b"{not json", JSON)
    assert r.status_code == 400 and "invalid Loki push JSON" in r.text and "column" in r.text, r.text
    r = loki(server, b"\xff\x00garbage", {"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400, r.text
    r = loki(server, bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\x01")),
             {"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400 and "malformed protobuf at byte" in r.text, r.text


def test_wrong_content_type_is_415(server):
    r = loki(server, b"hello", {"Content-Type": "text/plain"})
    assert r.status_code == 415 and "text/plain" in r.text, r.text
    r = requests.post(server.http + "/api/v2/spans", data=b"x", headers={"Content-Type": "application/x-thrift"},
                      timeout=30)
    assert r.status_code == 415, r.text


def test_body_over_the_limit_is_413(server):
    # 50 MiB is server.max_request_body_bytes by default. The server may answer
    # before reading the whole body, so send it by hand and read the answer.
    size = 51 << 20
    url = urllib.parse.urlsplit(server.http)
    with socket.create_connection((url.hostname, url.port), timeout=60) as s:
        s.sendall((f"POST /loki/api/v1/push HTTP/1.1\r\nHost: {url.netloc}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode())
        chunk = b" " * (1 << 20)
        try:
            for _ in range(size // len(chunk)):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = s.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer


def test_tenants_are_separate(server, conn):
    body = json.dumps({"streams": [{"stream": {"app": "tenant-b"}, "values": [[str(now_ns()), "hidden"]]}]})
    r = loki(server, body, {**JSON, "X-Scope-OrgID": "tenant-b"})
    assert r.status_code == 204, r.text
    assert rows(conn, "tenant-b") == [], "pgwire sessions see tenant anonymous only"
    status = requests.get(server.http + "/debug/storage", timeout=30).json()
    assert status["tenants"]["tenant-b"]["logs"]["head_rows"] == 1
    r = loki(server, body, {**JSON, "X-Scope-OrgID": "a|b"})
    assert r.status_code == 400, r.text


# --- Zipkin ---------------------------------------------------------------------

def test_zipkin_spans(server, conn):
    start_us = time.time_ns() // 1000
    spans = [
        {"traceId": "5af7183fb1d4cf5f", "id": "6b221d5bc9e6496c", "name": "get /api", "kind": "CLIENT",
         "timestamp": start_us, "duration": 207_000,
         "localEndpoint": {"serviceName": "frontend", "ipv4": "127.0.0.1"},
         "remoteEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9000},
         "tags": {"http.method": "GET", "http.path": "/api"},
         "annotations": [{"timestamp": start_us + 10, "value": "wire send"}]},
        {"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "parentId": "6b221d5bc9e6496c",
         "name": "get /api", "kind": "SERVER", "timestamp": start_us + 100, "duration": 150_000,
         "localEndpoint": {"serviceName": "backend"}, "tags": {"error": "db timeout"}},
    ]
    r = requests.post(server.http + "/api/v2/spans", json=spans, timeout=30)
    assert r.status_code == 202, r.text
    got = conn.execute(
        "SELECT service, kind, name, parent_span_id FROM spans WHERE trace_id = %s ORDER BY start_time",
        ("00000000000000005af7183fb1d4cf5f",)).fetchall()
    assert got == [("frontend", "client", "get /api", None), ("backend", "server", "get /api", "6b221d5bc9e6496c")]
    attrs, status, message, duration = conn.execute(
        "SELECT attributes, status_code, status_message, duration_ns FROM spans WHERE span_id = '352bff9a74ca9ad2'"
    ).fetchone()
    assert (attrs, status, message, duration) == ({"error": "db timeout"}, "error", "db timeout", 150_000_000)
    attrs, events = conn.execute(
        "SELECT attributes, events FROM spans WHERE span_id = '6b221d5bc9e6496c'").fetchone()
    assert attrs["peer.service"] == "backend" and attrs["net.peer.port"] == "9000"
    assert [e["name"] for e in events] == ["wire send"]


def test_zipkin_gzip_and_invalid_spans(server, conn):
    start_us = time.time_ns() // 1000
    spans = [
        {"traceId": "not-hex", "id": "1", "timestamp": start_us},
        {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a", "name": "ok", "timestamp": start_us},
    ]
    r = requests.post(server.http + "/api/v2/spans", data=gzip.compress(json.dumps(spans).encode()),
                      headers={**JSON, "Content-Encoding": "gzip"}, timeout=30)
    assert r.status_code == 400 and "invalid_trace_id: 1" in r.text and "spans[0]" in r.text, r.text
    got = conn.execute("SELECT span_id, kind FROM spans WHERE trace_id = '463ac35c9f6413ad48485a3953bb6124'").fetchall()
    assert got == [("000000000000000a", "unspecified")]
    r = requests.post(server.http + "/api/v2/spans", data=b'{"not": "a list"}', headers=JSON, timeout=30)
    assert r.status_code == 400 and "line 1 column" in r.text, r.text


# --- self-monitoring --------------------------------------------------------------

def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def test_metrics_count_received_and_discarded_lines(server):
    text = requests.get(server.http + "/metrics", timeout=30).text
    assert metric(text, "o11ydb_received_log_lines_total", tenant="anonymous") >= 20_000
    assert metric(text, "o11ydb_discarded_log_lines_total", tenant="anonymous", reason="line_too_long") == 1
    assert metric(text, "o11ydb_discarded_log_lines_total", tenant="anonymous", reason="invalid_labels") == 1
    assert metric(text, "o11ydb_received_spans_total", tenant="anonymous") >= 4
    assert metric(text, "o11ydb_discarded_spans_total", tenant="anonymous", reason="invalid_trace_id") == 1
