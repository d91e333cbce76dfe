"""Prometheus metrics, structured logs with redaction, OpenTelemetry spans."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import auth


def _sample(text: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_metrics_count_requests_by_route_template(client, admin_key, tenant_a):
    labels = {"route": "/api/tenants/{tenant_id}", "method": "GET", "status": "200"}
    before = _sample((await client.get("/metrics")).text, "gasworks_http_requests_total", labels)
    for _ in range(2):
        r = await client.get(f"/api/tenants/{tenant_a.tenant_id}", headers=auth(admin_key))
        assert r.status_code == 200
    text = (await client.get("/metrics")).text
    assert _sample(text, "gasworks_http_requests_total", labels) == before + 2
    assert tenant_a.tenant_id not in text  # templates, never raw paths
    assert "gasworks_http_request_duration_seconds_bucket" in text


async def test_metrics_count_unmatched_and_errors(client):
    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    before = _sample((await client.get("/metrics")).text, "gasworks_http_requests_total", labels)
    await client.get("/nothing/here/123")
    text = (await client.get("/metrics")).text
    assert _sample(text, "gasworks_http_requests_total", labels) == before + 1
    assert "/nothing/here/123" not in text
    assert _sample(text, "gasworks_errors_total", {"code": "NOT_FOUND"}) >= 1


async def test_metrics_count_auth_failures(client):
    before = _sample((await client.get("/metrics")).text, "gasworks_auth_failures_total", {})
    await client.get("/api/me")
    after = (await client.get("/metrics")).text
    assert _sample(after, "gasworks_auth_failures_total", {"reason": "missing"}) >= 1
    assert before >= 0


# --- logs -----------------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Any:
    from gasworks.observability.logging import configure_logging

    buf = io.StringIO()
    configure_logging(json=True, level="INFO", stream=buf)
    yield buf
    configure_logging(json=False, level="WARNING")


def _lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_log_redacts_secret_fields_and_key_material(log_stream):
    from gasworks.observability.logging import get_logger

    key = "gw_" + "A" * 12 + "_" + "s" * 40
    get_logger("t").info(
        "calling provider",
        api_key="sk-live-123",
        password="hunter2",
        authorization=f"Bearer {key}",
        note=f"user pasted {key} and Bearer abc.def-ghi in a message",
        tokens=42,
    )
    (line,) = _lines(log_stream)
    raw = log_stream.getvalue()
    for secret in ("sk-live-123", "hunter2", "s" * 40, "abc.def-ghi"):
        assert secret not in raw
    assert line["api_key"] == "**********"
    assert line["tokens"] == 42  # token counts are not secrets
    assert line["event"] == "calling provider"


def test_log_redacts_secrets_in_nested_values(log_stream):
    from gasworks.observability.logging import get_logger

    get_logger("t").info("cfg", config={"database": {"password": "p4ss"}, "list": ["Bearer xyz1"]})
    raw = log_stream.getvalue()
    assert "p4ss" not in raw
    assert "xyz1" not in raw


async def test_request_logs_carry_request_and_tenant_id_but_never_the_key(
    client, tenant_a, log_stream
):
    r = await client.get("/api/me", headers={**auth(tenant_a.viewer), "X-Request-ID": "log-test-1"})
    assert r.status_code == 200
    secret = tenant_a.viewer.split("_")[2]
    assert secret not in log_stream.getvalue()
    access = [ln for ln in _lines(log_stream) if ln.get("event") == "http.request"]
    assert access, log_stream.getvalue()
    assert access[-1]["requestId"] == "log-test-1"
    assert access[-1]["tenantId"] == tenant_a.tenant_id
    assert access[-1]["route"] == "/api/me"
    assert access[-1]["status"] == 200


def test_access_line_is_the_line_structlog_writes_with_the_same_redaction(log_stream):
    """The access line is rendered without structlog's processors (issue #19): the same keys
    in the same order, the same values, the bound context redacted alike."""
    import structlog

    from gasworks.observability.logging import access_log, get_logger

    key = "gw_" + "A" * 12 + "_" + "s" * 40
    structlog.contextvars.bind_contextvars(
        requestId="r-1", tenantId="ten_1", api_key="sk-live-1", note=f"Bearer {key}", n=3
    )
    try:
        get_logger("gasworks.http").info(
            "http.request", method="POST", route="/v1/chat/completions", status=201, durationMs=1.5
        )
        access_log().write("POST", "/v1/chat/completions", 201, 1.5)
    finally:
        structlog.contextvars.clear_contextvars()
    via_structlog, fast = _lines(log_stream)
    assert "sk-live-1" not in log_stream.getvalue() and "s" * 40 not in log_stream.getvalue()
    assert fast.pop("timestamp").endswith("Z") and via_structlog.pop("timestamp")
    assert list(fast.items()) == list(via_structlog.items())
    assert fast["api_key"] == "**********" and fast["status"] == 201


async def test_access_lines_written_in_one_loop_turn_keep_their_order_with_other_lines() -> None:
    """Into a stream over a binary buffer the access lines are flushed once per loop turn;
    a line written meanwhile by structlog does not overtake them."""
    import subprocess
    import sys

    code = (
        "import asyncio\n"
        "from gasworks.observability.logging import access_log, configure_logging, get_logger\n"
        "configure_logging(json=True)\n"
        "async def main():\n"
        "    access_log().write('GET', '/a', 200, 1.0)\n"
        "    get_logger('t').warning('between')\n"
        "    access_log().write('GET', '/b', 200, 1.0)\n"
        "    await asyncio.sleep(0)\n"
        "    access_log().write('GET', '/c', 200, 1.0)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = [json.loads(ln) for ln in out.stderr.splitlines() if ln.startswith("{")]
    assert [ln.get("route", ln["event"]) for ln in lines] == ["/a", "between", "/b", "/c"]


async def test_access_log_can_be_turned_off_while_metrics_keep_counting(
    runtime, tenant_a, log_stream
):
    from gasworks.api.app import create_app

    app = create_app(
        settings=runtime.settings.model_copy(update={"access_log": False}), runtime=runtime
    )
    labels = {"route": "/api/me", "method": "GET", "status": "200"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        before = _sample((await c.get("/metrics")).text, "gasworks_http_requests_total", labels)
        r = await c.get("/api/me", headers={**auth(tenant_a.viewer), "X-Request-ID": "quiet-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "quiet-1"
        after = _sample((await c.get("/metrics")).text, "gasworks_http_requests_total", labels)
    assert after == before + 1
    assert not [ln for ln in _lines(log_stream) if ln.get("event") == "http.request"]


async def test_request_ids_are_generated_when_absent_or_invalid(client):
    ids = set()
    for headers in ({}, {}, {"X-Request-ID": "bad id with spaces"}):
        rid = (await client.get("/healthz", headers=headers)).headers["x-request-id"]
        assert len(rid) == 32 and int(rid, 16) >= 0  # 128 random bits, hex
        ids.add(rid)
    assert len(ids) == 3


def test_log_redaction_masks_key_material_only_where_it_appears(log_stream):
    from gasworks.observability.logging import get_logger

    key = "gw_" + "B" * 8 + "_" + "t" * 30
    get_logger("t").info(
        "scrub", plain="nothing secret here", mixed=f"Bearer {key}", bare=key, count=3
    )
    (line,) = _lines(log_stream)
    assert line["plain"] == "nothing secret here"
    assert line["mixed"] == "Bearer **********"
    assert line["bare"] == "gw_**********"
    assert line["count"] == 3


async def test_crash_is_logged_with_request_id(client, app, log_stream):
    @app.get("/test/boom")
    async def boom() -> None:
        raise ValueError("kaboom")

    r = await client.get("/test/boom", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    crashed = [ln for ln in _lines(log_stream) if ln.get("event") == "request.crashed"]
    assert crashed and crashed[0]["requestId"] == "boom-1"
    assert "kaboom" in crashed[0]["exception"]


# --- traces ---------------------------------------------------------------------------------


async def test_request_produces_an_otel_span(runtime, tenant_a):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from gasworks.api.app import create_app
    from gasworks.observability.tracing import tracer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(runtime=runtime, tracer_provider=provider)

    @app.get("/test/traced")
    async def traced() -> dict[str, str]:
        with tracer().start_as_current_span("inner-work"):
            return {"ok": "yes"}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        assert (await c.get("/api/me", headers=auth(tenant_a.viewer))).status_code == 200
        assert (await c.get("/test/traced")).status_code == 200
        assert (await c.get("/healthz")).status_code == 200
        chat = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
        r = await c.post("/v1/chat/completions", json=chat, headers=auth(tenant_a.viewer))
        assert r.status_code == 200  # served by the fast path in front of the router

    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert "GET /api/me" in names
    gateway = next(s for s in spans if s.name == "POST /v1/chat/completions")
    assert gateway.attributes["http.status_code"] == 200
    assert not any("healthz" in n for n in names)  # probes are not traced
    me = next(s for s in spans if s.name == "GET /api/me")
    assert me.attributes["http.status_code"] == 200
    inner = next(s for s in spans if s.name == "inner-work")
    outer = next(s for s in spans if s.name == "GET /test/traced")
    assert inner.context.trace_id == outer.context.trace_id
    assert inner.parent.span_id == outer.context.span_id
    provider.shutdown()


async def test_no_request_spans_without_an_exporter_even_with_a_global_provider(
    runtime, tenant_a, monkeypatch
):
    """Without an OTLP endpoint nothing traces requests: not gasworks, and not FastAPI's own
    telemetry (which newer FastAPI versions switch on when a global provider exists)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from gasworks.api.app import create_app

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # an embedding application installed its own global provider
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    assert runtime.settings.otel_exporter_otlp_endpoint is None
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        assert (await c.get("/api/me", headers=auth(tenant_a.viewer))).status_code == 200
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


async def test_graphql_requests_are_counted_under_their_route(client, admin_key):
    labels = {"route": "/graphql", "method": "POST", "status": "200"}
    before = _sample((await client.get("/metrics")).text, "gasworks_http_requests_total", labels)
    r = await client.post("/graphql", json={"query": "{ me { role } }"}, headers=auth(admin_key))
    assert r.status_code == 200
    after = _sample((await client.get("/metrics")).text, "gasworks_http_requests_total", labels)
    assert after == before + 1


def test_otlp_exporter_is_attached_only_when_an_endpoint_is_set(tmp_path):
    from gasworks.observability.tracing import build_provider
    from gasworks.settings import Settings

    provider, exporting = build_provider(Settings(home=tmp_path))
    assert exporting is False
    provider.shutdown()
    provider, exporting = build_provider(
        Settings(home=tmp_path, otel_exporter_otlp_endpoint="http://127.0.0.1:4318")
    )
    assert exporting is True
    assert provider.resource.attributes["service.name"] == "gasworks"
    provider.shutdown()


# --- process ------------------------------------------------------------------------------


async def test_app_start_freezes_startup_objects_once(runtime, monkeypatch):
    """Objects alive after start-up leave the collected generations (no long GC pauses)."""
    import gc

    from gasworks.api import app as app_module

    monkeypatch.setattr(app_module, "_frozen", False)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    app = app_module.create_app(runtime=runtime)
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
        assert frozen > 0
    again = app_module.create_app(runtime=runtime)
    async with again.router.lifespan_context(again):
        assert gc.get_freeze_count() <= frozen  # once per process: the new app stays unfrozen


async def test_provider_calls_workflow_nodes_and_prompt_resolution_have_spans(runtime, admin_key):
    """Spans of gasworks' own work under the request span, carrying workflowId, modelId and
    requestId (the request's ``x-request-id``)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from gasworks.api.app import create_app
    from gasworks.workflows.demos import demo_document

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(runtime=runtime, tracer_provider=provider)
    h = auth(admin_key)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gasworks.test") as c:
        await c.post("/api/workflows", json=demo_document("chatbot"), headers=h)
        r = await c.post(
            "/api/workflows/demo-chatbot/runs", json={"input": {"message": "hi"}}, headers=h
        )
        assert r.status_code in (200, 201) and r.json()["status"] == "succeeded", r.text
        request_id = r.headers["x-request-id"]
    spans = exporter.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    (call,) = by_name["gasworks.provider_call"]
    assert call.attributes["gasworks.modelId"] == "demo"
    assert call.attributes["gasworks.workflowId"] == "demo-chatbot"
    assert call.attributes["gasworks.requestId"] == request_id
    nodes = {s.attributes["gasworks.nodeId"]: s for s in by_name["gasworks.workflow_node"]}
    assert set(nodes) == {"memory", "answer", "reply"}
    assert all(s.attributes["gasworks.workflowId"] == "demo-chatbot" for s in nodes.values())
    (resolve,) = by_name["gasworks.prompt_resolve"]
    assert resolve.attributes["gasworks.modelId"] == "demo"
    assert resolve.attributes["gasworks.workflowId"] == "demo-chatbot"
    assert resolve.parent.span_id == nodes["answer"].context.span_id
    request = next(s for s in spans if s.name == "POST /api/workflows/{slug}/runs")
    assert nodes["memory"].context.trace_id == request.context.trace_id
    provider.shutdown()
