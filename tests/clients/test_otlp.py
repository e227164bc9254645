"""The real OpenTelemetry Python SDK exporting to o11ydb over OTLP/gRPC and
OTLP/HTTP (protobuf, JSON, gzip): spans, logs with trace context and
metrics land in `spans`, `logs` and `samples` as the mapping in
docs/schema.md says; malformed requests are refused; tenants stay apart.

Telemetry is produced with in-memory exporters/readers and then handed to
the OTLP exporters directly, so every export's result can be asserted.
"""

import gzip
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings

import grpc
import psycopg
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode


@pytest.fixture(scope="module")
def conn(server):
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        yield c


def grpc_kwargs(server, tenant=None):
    kwargs = {"endpoint": server.otlp_grpc, "insecure": True}
    if tenant:
        kwargs["headers"] = {"x-scope-orgid": tenant}
    return kwargs


def http_kwargs(server, path, tenant=None, compression=None):
    kwargs = {"endpoint": f"{server.http}{path}"}
    if tenant:
        kwargs["headers"] = {"X-Scope-OrgID": tenant}
    if compression:
        kwargs["compression"] = compression
    return kwargs


def make_spans(service):
    """A server span with a child client span (attributes, an event, an error)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("checkout.lib", "1.2.3")
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER,
                                      attributes={"http.route": "/cart", "http.response.status_code": 200}):
        with tracer.start_as_current_span("SELECT cart", kind=SpanKind.CLIENT,
                                          attributes={"db.system": "postgresql", "retry": True}) as child:
            child.add_event("cache miss", {"key": "cart:42"})
            child.set_status(Status(StatusCode.ERROR, "timeout"))
    provider.shutdown()
    return memory.get_finished_spans()


def spans_of(conn, service):
    return conn.execute(
        "SELECT name, kind, span_id, parent_span_id, trace_id, attributes, status_code, status_message, "
        "scope_name, scope_version, events, resource_attributes "
        "FROM spans WHERE service = %s ORDER BY start_time", (service,)).fetchall()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_spans(server, conn, transport):
    service = f"checkout-{transport}"
    spans = make_spans(service)
    if transport == "grpc":
        exporter = GrpcSpanExporter(**grpc_kwargs(server))
    else:
        exporter = HttpSpanExporter(**http_kwargs(server, "/v1/traces", compression=Compression.Gzip))
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()

    rows = spans_of(conn, service)
    assert len(rows) == 2, rows
    (root, child) = rows if rows[0][0] == "GET /cart" else rows[::-1]
    name, kind, span_id, parent, trace_id, attributes, status, _, scope, scope_version, _, resource = root
    assert (name, kind, parent, status) == ("GET /cart", "server", None, "unset")
    assert attributes == {"http.route": "/cart", "http.response.status_code": "200"}
    assert (scope, scope_version) == ("checkout.lib", "1.2.3")
    assert resource["service.name"] == service and resource["telemetry.sdk.language"] == "python"
    assert len(trace_id) == 32 and len(span_id) == 16 and trace_id == trace_id.lower()
    c_name, c_kind, _, c_parent, c_trace, c_attrs, c_status, c_message, _, _, c_events, _ = child
    assert (c_name, c_kind, c_parent, c_trace) == ("SELECT cart", "client", span_id, trace_id)
    assert c_attrs == {"db.system": "postgresql", "retry": "true"}
    assert (c_status, c_message) == ("error", "timeout")
    assert [(e["name"], e["attributes"]) for e in c_events] == [("cache miss", {"key": "cart:42"})]


def test_logs_with_trace_context(server, conn):
    memory = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=Resource.create(
        {"service.name": "billing", "k8s.namespace.name": "prod", "host.name": "node-1"}))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    log = logging.getLogger("billing.test")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    tracer_provider = TracerProvider()
    tracer = tracer_provider.get_tracer("billing")
    try:
        with tracer.start_as_current_span("charge") as span:
            log.warning("card declined for order %s", 42, extra={"order.id": "42"})
            ctx = span.get_span_context()
        log.info("no span here")
    finally:
        log.removeHandler(handler)
    records = memory.get_finished_logs()
    assert len(records) == 2

    half = [records[0]], [records[1]]
    grpc_exporter = GrpcLogExporter(**grpc_kwargs(server))
    http_exporter = HttpLogExporter(**http_kwargs(server, "/v1/logs"))
    assert grpc_exporter.export(half[0]) == LogRecordExportResult.SUCCESS
    assert http_exporter.export(half[1]) == LogRecordExportResult.SUCCESS
    grpc_exporter.shutdown()
    http_exporter.shutdown()

    rows = conn.execute(
        "SELECT line, severity, trace_id, span_id, labels, structured_metadata FROM logs "
        "WHERE labels['service_name'] = 'billing' ORDER BY timestamp").fetchall()
    assert [r[0] for r in rows] == ["card declined for order 42", "no span here"]
    line, severity, trace_id, span_id, labels, metadata = rows[0]
    assert severity == "warn"
    assert trace_id == format(ctx.trace_id, "032x") and span_id == format(ctx.span_id, "016x")
    # The SDK adds a random service.instance.id; Loki indexes it too.
    assert labels.pop("service_instance_id")
    assert labels == {"service_name": "billing", "k8s_namespace_name": "prod"}
    assert metadata["host_name"] == "node-1"
    assert metadata["order_id"] == "42"
    assert metadata["severity_text"] == "WARN"
    assert metadata["scope_name"] == "billing.test"
    assert (rows[1][1], rows[1][2]) == ("info", None)


def export_metrics(server, transport, data):
    if transport == "grpc":
        exporter = GrpcMetricExporter(**grpc_kwargs(server))
    else:
        exporter = HttpMetricExporter(**http_kwargs(server, "/v1/metrics"))
    assert exporter.export(data) == MetricExportResult.SUCCESS
    exporter.shutdown()


def make_metrics(service):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create(
        {"service.name": service, "service.namespace": "shop", "service.instance.id": "i-1"}))
    meter = provider.get_meter("shop.meter")
    counter = meter.create_counter("app.requests", unit="{request}")
    histogram = meter.create_histogram("app.latency", unit="ms")
    updown = meter.create_up_down_counter("app.queue.size")
    gauge = meter.create_gauge("app.temperature", unit="Cel")
    counter.add(3, {"http.method": "GET"})
    counter.add(2, {"http.method": "POST"})
    for v in (4, 7, 120):
        histogram.record(v, {"route": "/cart"})
    updown.add(5)
    updown.add(-2)
    gauge.set(21.5)
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_metrics(server, conn, transport):
    service = f"metrics-{transport}"
    data = make_metrics(service)
    export_metrics(server, transport, data)

    job = f"shop/{service}"

    def series(metric):
        rows = conn.execute(
            "SELECT labels, value FROM samples WHERE metric = %s AND labels['job'] = %s", (metric, job)).fetchall()
        return rows

    totals = {r[0]["http_method"]: r[1] for r in series("app_requests_total")}
    assert totals == {"GET": 3.0, "POST": 2.0}
    assert all(r[0]["instance"] == "i-1" for r in series("app_requests_total"))
    buckets = {r[0]["le"]: r[1] for r in series("app_latency_milliseconds_bucket")}
    assert buckets["5"] == 1.0 and buckets["10"] == 2.0 and buckets["+Inf"] == 3.0, buckets
    assert [r[1] for r in series("app_latency_milliseconds_sum")] == [131.0]
    assert [r[1] for r in series("app_latency_milliseconds_count")] == [3.0]
    assert [r[1] for r in series("app_queue_size")] == [3.0]
    assert [r[1] for r in series("app_temperature_celsius")] == [21.5]
    info = series("target_info")
    assert len(info) == 1 and info[0][1] == 1.0
    assert info[0][0]["telemetry_sdk_language"] == "python"
    assert "service_name" not in info[0][0]


def prom_query(server, query):
    url = server.http + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_exponential_histograms_become_native_histograms(server, transport):
    """An exponential-bucket histogram from the SDK is one native histogram
    series, which PromQL reads like Prometheus' OTLP receiver stores it."""
    service = f"exphist-{transport}"
    reader = InMemoryMetricReader()
    view = View(instrument_name="app.payload", aggregation=ExponentialBucketHistogramAggregation(max_scale=3))
    provider = MeterProvider(metric_readers=[reader], views=[view],
                             resource=Resource.create({"service.name": service}))
    histogram = provider.get_meter("shop.meter").create_histogram("app.payload", unit="By")
    for v in (1, 3, 3, 40):
        histogram.record(v)
    data = reader.get_metrics_data()
    provider.shutdown()
    export_metrics(server, transport, data)

    selector = f'app_payload_bytes{{job="{service}"}}'
    raw = prom_query(server, selector)
    assert len(raw) == 1 and "histogram" in raw[0] and "value" not in raw[0], raw
    _, h = raw[0]["histogram"]
    assert (h["count"], h["sum"]) == ("4", "47"), h
    # Every observation sits in one bucket whose bounds contain it.
    counted = sum(float(b[3]) for b in h["buckets"])
    assert counted == 4.0
    assert prom_query(server, f"histogram_count({selector})")[0]["value"][1] == "4"
    assert prom_query(server, f"histogram_sum({selector})")[0]["value"][1] == "47"
    median = float(prom_query(server, f"histogram_quantile(0.5, {selector})")[0]["value"][1])
    assert 2.5 <= median <= 3.5, median


def post(server, path, body, content_type, headers=None):
    req = urllib.request.Request(server.http + path, data=body, method="POST",
                                 headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def test_otlp_json_with_hex_ids_and_partial_success(server, conn):
    now = time.time_ns()
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "name": "json span", "kind": 2,
            "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000),
            "attributes": [{"key": "n", "value": {"intValue": "7"}}]}
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeSpans": [{"spans": [{**span, "spanId": "eee19b7ec3c1b174"},
                                  {**span, "spanId": "0000000000000000", "name": "zero id"}]}]}]}
    status, content_type, reply = post(server, "/v1/traces", gzip.compress(json.dumps(body).encode()),
                                       "application/json", {"Content-Encoding": "gzip"})
    assert (status, content_type) == (200, "application/json"), reply
    partial = json.loads(reply)["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1 and "all zeros" in partial["errorMessage"], partial
    rows = conn.execute("SELECT trace_id, span_id, kind, attributes FROM spans WHERE service = 'json-svc'").fetchall()
    assert rows == [("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "server", {"n": "7"})]


def test_malformed_requests_are_refused(server):
    garbage = b"\x0a\xff\xff\xff\x0f"
    status, content_type, _ = post(server, "/v1/traces", garbage, "application/x-protobuf")
    assert (status, content_type) == (400, "application/x-protobuf")
    status, _, reply = post(server, "/v1/logs", b"{not json", "application/json")
    assert status == 400 and b"not valid OTLP JSON" in reply, reply
    status, _, _ = post(server, "/v1/metrics", b"x", "text/plain")
    assert status == 415

    with grpc.insecure_channel(server.otlp_grpc) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as e:
            export(garbage, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
        with pytest.raises(grpc.RpcError) as e:
            export(b"", metadata=(("x-scope-orgid", "a|b"),), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "x-scope-orgid" in e.value.details()


def storage(server):
    with urllib.request.urlopen(server.http + "/debug/storage") as resp:
        return json.loads(resp.read())["tenants"]


def test_tenants_are_separate(server, conn):
    grpc_spans = make_spans("tenant-grpc")
    http_spans = make_spans("tenant-http")
    grpc_exporter = GrpcSpanExporter(**grpc_kwargs(server, tenant="team-b"))
    http_exporter = HttpSpanExporter(**http_kwargs(server, "/v1/traces", tenant="team-b"))
    assert grpc_exporter.export(grpc_spans) == SpanExportResult.SUCCESS
    assert http_exporter.export(http_spans) == SpanExportResult.SUCCESS
    grpc_exporter.shutdown()
    http_exporter.shutdown()
    # The Postgres session is tenant `anonymous`: team-b's spans are not in its tables.
    count = conn.execute("SELECT count(*) FROM spans WHERE service LIKE 'tenant-%'").fetchone()[0]
    assert count == 0
    assert storage(server)["team-b"]["spans"]["head_rows"] == 4
